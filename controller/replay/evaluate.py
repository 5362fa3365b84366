"""One candidate configuration, replayed and measured: what a calibration trial and a study run.

:func:`controller_path` replays the real controller (``replay(roles=("controller",))``, the same code
as ``levctl replay``) into a throw-away decision log and reads back its equity path and trades;
:func:`window_figures` measures that path over windows of time.  The figures are those of
``levctl replay`` (:mod:`.metrics`): the 30-day rolling realised volatility of equity against the
target ``L_base · σ_ref``, its spread, drawdown and trades.  A window is measured on the path as it
ran — a point's 30-day window may reach back before the window's start (into the past, never the
future), so a short window (a stress month) still has figures.

:func:`replay_figures` is the whole-run comparison of ``levctl replay`` for one configuration
(``benchmarks/volatility_study.py`` uses it).
"""

from __future__ import annotations

import math
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.config import Config, build_config, with_values
from controller.replay.metrics import WINDOW_DAYS, YEAR_S, compare_replays
from controller.replay.run import replay
from controller.risk.realised import rolling_realised_vol
from controller.sim.market import ReplayData

FIGURES = ("tracking_error", "vol_ratio", "vol_of_vol", "trades_per_year", "max_drawdown")


@dataclass(frozen=True)
class ControllerPath:
    """The controller's run: equity (USD) at each cycle, the times of its filled orders, how it ended."""

    times_s: np.ndarray
    equity: np.ndarray
    trade_times_s: np.ndarray
    target_vol: float
    status: str  # completed, liquidated, halted

    def rolling(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, 30-day realised vol of equity) over the whole path."""
        return rolling_realised_vol(self.times_s, self.equity, window_s=WINDOW_DAYS * 86400.0)


def configured(config: Config, values: dict[str, Any], *, source: str | None = None) -> Config:
    """``config`` with dotted keys set (``{"policy.band": 0.2}``); a bad combination: ConfigError."""
    raw = with_values(config.file.model_dump(mode="json"), values)
    return build_config(raw, source=source or f"{config.source} with {values}")


def controller_path(config: Config, data: ReplayData) -> ControllerPath:
    """Replay the controller alone over ``data`` (a temporary decision log) and read its path."""
    with tempfile.TemporaryDirectory(prefix="levctl-trial-") as tmp:
        db = Path(tmp) / "trial.db"
        outcome = replay(config, data, db, roles=("controller",))
        run = outcome.runs[0]
        with sqlite3.connect(db) as conn:
            cycles = np.array(
                conn.execute(
                    "select round((julianday(ts) - 2440587.5) * 86400000.0) / 1000.0, equity_usd from cycles "
                    "where run_id = ? and action != 'ERROR' and equity_usd is not null order by id",
                    [run.run_id],
                ).fetchall(),
                dtype=float,
            ).reshape(-1, 2)
            trades = np.array(
                conn.execute(
                    "select round((julianday(ts) - 2440587.5) * 86400000.0) / 1000.0 from orders "
                    "where run_id = ? and status = 'filled'",
                    [run.run_id],
                ).fetchall(),
                dtype=float,
            ).reshape(-1)
    return ControllerPath(
        times_s=cycles[:, 0],
        equity=cycles[:, 1],
        trade_times_s=np.sort(trades),
        target_vol=config.policy.base_leverage * config.risk.reference_vol,
        status=run.status,
    )


def window_figures(path: ControllerPath, windows: list[tuple[float, float]]) -> dict[str, float | None]:
    """The figures of ``path`` over the union of ``windows`` (epoch seconds, ``[start, end)``).

    * ``tracking_error`` — root-mean-square of (30-day vol − target) at the cycles inside;
    * ``vol_of_vol`` — the standard deviation of that 30-day vol there;
    * ``vol_ratio`` — the realised vol of equity over the returns inside, over the target;
    * ``trades_per_year`` — filled orders inside per year of windows (overlaps count once);
      ``max_drawdown`` — the worst drawdown from a peak inside one window.
    """
    windows = merged(windows)  # a stress window inside the training window counts once
    t, equity = path.times_s, path.equity
    roll_t, roll_v = path.rolling()
    in_points = np.zeros(roll_t.size, dtype=bool)
    in_returns = np.zeros(max(t.size - 1, 0), dtype=bool)
    trades, years, drawdown = 0, 0.0, None
    for a, b in windows:
        in_points |= (roll_t >= a) & (roll_t < b)
        in_returns |= (t[:-1] >= a) & (t[1:] < b)
        trades += int(np.count_nonzero((path.trade_times_s >= a) & (path.trade_times_s < b)))
        years += max(min(b, t[-1] if t.size else a) - a, 0.0) / YEAR_S
        inside = equity[(t >= a) & (t < b)]
        if inside.size:
            dd = float(np.max(1.0 - inside / np.maximum.accumulate(inside)))
            drawdown = dd if drawdown is None else max(drawdown, dd)
    vols = roll_v[in_points]
    r = np.diff(np.log(equity))[in_returns] if t.size > 1 else np.empty(0)
    dt = np.diff(t)[in_returns] / YEAR_S if t.size > 1 else np.empty(0)
    vol = math.sqrt(float(np.sum(r * r)) / float(np.sum(dt))) if r.size >= 2 and np.sum(dt) > 0 else None
    target = path.target_vol
    return {
        "tracking_error": float(np.sqrt(np.mean((vols - target) ** 2))) if vols.size else None,
        "vol_ratio": None if vol is None or target <= 0 else vol / target,
        "vol_of_vol": float(np.std(vols)) if vols.size > 1 else None,
        "trades_per_year": float(trades / years) if years > 0 else None,
        "max_drawdown": drawdown,
    }


def merged(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of ``[start, end)`` intervals as disjoint intervals, in order."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def replay_figures(config: Config, data: ReplayData) -> dict[str, Any]:
    """The controller's whole-run figures as ``levctl replay`` prints them, for one configuration."""
    with tempfile.TemporaryDirectory(prefix="levctl-study-") as tmp:
        db = Path(tmp) / "study.db"
        outcome = replay(config, data, db, roles=("controller",))
        (row,) = compare_replays(db, outcome.replay_key)
    f = row.figures
    years = f.years or float("nan")
    return {
        "vol": f.vol,
        "vol_ratio": None if f.vol is None or row.target_vol is None else f.vol / row.target_vol,
        "tracking_error": f.tracking_error,
        "vol_of_vol": f.vol_of_vol,
        "max_drawdown": f.max_drawdown,
        "return_per_year": f.return_annualised,
        "trades_per_year": row.trades / years,
        "turnover_per_year": row.turnover_per_year,
        "fees_usd": row.fees_usd,
        "funding_paid_usd": None if row.funding_usd is None else -row.funding_usd,
        "equity_end_usd": row.equity_end_usd,
    }
