"""How a loop runs: cycles on a schedule, and the process settings a long-running command applies."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import schedule

# CPython's defaults are (700, 10, 10): a collection of the youngest generation every 700 net new
# container objects, and of the whole heap every 100 of those.
CYCLE_GC_THRESHOLDS = (50_000, 50, 100)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Move what start-up built out of the collector's sight and collect reference cycles less often,
    until the block ends (then the previous settings come back).

    A cycle over a big book allocates tens of thousands of containers (reply dicts, records, rows),
    nearly all freed by reference counting as soon as the cycle ends; with the default thresholds
    they still trigger collections of the whole heap during a cycle: a 10,000-position cycle took
    353–502 ms under the defaults and 336–349 ms with these (docs/benchmarks.md).  Reference
    cycles are still collected, less often.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()  # the config, listing and caches of start-up live for the whole run
    gc.set_threshold(*CYCLE_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def run_on_schedule(
    cycle: Callable[[], Any],
    *,
    done: Callable[[], int],
    interval_s: float,
    cycles: int,
    scheduler: schedule.Scheduler,
    should_stop: Callable[[], bool],
    sleep: Callable[[float], None],
) -> str:
    """Run ``cycle`` every ``interval_s`` until ``cycles`` are done (0: forever) or a stop is asked for.

    One cycle never overlaps the next: ``schedule`` computes the next run after a job ends."""
    scheduler.clear()
    scheduler.every(max(interval_s, 0.001)).seconds.do(cycle)  # type: ignore[arg-type]  # float seconds
    cycle()  # the first cycle at once
    while not (cycles and done() >= cycles):
        if should_stop():
            return "stop requested"
        idle = scheduler.idle_seconds  # read once: it shrinks with the wall clock between two reads
        if idle is not None and idle > 0:
            sleep(min(idle, 0.2))
        scheduler.run_pending()
    return f"{done()} cycles done"
