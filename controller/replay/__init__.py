"""Research on history: the real controller replayed on market data, and the figures that compare runs.

* :mod:`.run` — :func:`replay`: the controller and its baselines on the in-process simulator;
* :mod:`.metrics` — volatility, tracking error, drawdown and turnover of replayed runs, from the log;
* :mod:`.evaluate` — one candidate configuration replayed and measured over windows of time;
* :mod:`.walkforward`, :mod:`.calibrate`, :mod:`.engines` — ``levctl calibrate``: walk-forward
  folds, the Optuna studies, and where their trials run (here, local processes, a Dask cluster);
* :mod:`.tomlout` — a configuration written back as TOML.

Names are imported from their module on first use: reading figures from a log (``levctl report``)
does not load the controller.
"""

import importlib
from typing import Any

_EXPORTS = {
    "ROLES": "run",
    "ReplayOutcome": "run",
    "ReplayRun": "run",
    "replay": "run",
    "RunComparison": "metrics",
    "compare_replays": "metrics",
    "comparison_rows": "metrics",
    "equity_figures": "metrics",
    "calibrate": "calibrate",
    "Calibration": "calibrate",
    "CalibrationError": "walkforward",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
