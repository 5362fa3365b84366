"""The loop's garbage-collector settings apply inside the block only."""

from __future__ import annotations

import gc

from controller.loop.runtime import CYCLE_GC_THRESHOLDS, fewer_collections


def test_fewer_collections_inside_the_block_and_the_previous_settings_after_it():
    before = gc.get_threshold()
    survivor = [object() for _ in range(10)]
    with fewer_collections():
        assert gc.get_threshold() == CYCLE_GC_THRESHOLDS
        assert gc.get_freeze_count() >= len(survivor)  # start-up's objects are out of the collector's sight
        cycle: list[object] = []
        cycle.append(cycle)  # a reference cycle made in the loop is still collected
        del cycle
        assert gc.collect() >= 1
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
