"""Research on history: the real controller replayed on market data, and the figures that compare runs.

* :mod:`.run` — :func:`replay`: the controller and its baselines on the in-process simulator;
* :mod:`.metrics` — volatility, tracking error, drawdown and turnover of replayed runs, from the log.
"""

from controller.replay.metrics import RunComparison, compare_replays, comparison_rows, equity_figures
from controller.replay.run import ROLES, ReplayOutcome, ReplayRun, replay

__all__ = [
    "ROLES",
    "ReplayOutcome",
    "ReplayRun",
    "RunComparison",
    "compare_replays",
    "comparison_rows",
    "equity_figures",
    "replay",
]
