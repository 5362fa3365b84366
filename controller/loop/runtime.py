"""Process-wide settings a long-running levctl command applies around its loop."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# CPython's defaults are (700, 10, 10): a collection of the youngest generation every 700 net new
# container objects, and of the whole heap every 100 of those.
CYCLE_GC_THRESHOLDS = (50_000, 50, 100)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Move what start-up built out of the collector's sight and collect reference cycles less often,
    until the block ends (then the previous settings come back).

    A cycle over a big book allocates tens of thousands of containers (reply dicts, records, rows),
    nearly all freed by reference counting as soon as the cycle ends; with the default thresholds
    they still trigger several collections of the whole heap per cycle: about 100 ms of a 10,000-
    position cycle (docs/benchmarks.md).  Reference cycles are still collected, less often.
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
