"""Figures that compare replayed runs, computed from the decision log alone.

For one run's cycles (equity in USD at each cycle time):

* ``vol`` — annualised volatility of equity (:func:`controller.risk.realised.realised_vol`, the
  product's one estimator): ``sqrt(Σ r² / Σ Δt)`` over log returns between cycles, Δt in years;
* ``rolling vol`` — the same over each trailing 30-day window, evaluated at every cycle from
  the 30th day on; ``vol_of_vol`` is its standard deviation (how much the risk moves around) and
  ``tracking_error`` its root-mean-square distance from the target ``L_base · σ_ref`` — the
  figure that says whether volatility targeting held the equity's volatility near its target;
* ``worst_day`` — the worst UTC-day return of equity; ``max_drawdown`` from the running peak;
* ``turnover`` — USD notional of the controller's filled orders, and per year as a multiple of
  mean equity; fees and funding in USD from the simulator's ledger (each valued at the index of
  the cycle that booked it); ``share_in_band`` — cycles whose leverage was inside the band.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.risk.realised import realised_vol, rolling_realised_vol

YEAR_S = 365.0 * 86400.0
WINDOW_DAYS = 30.0


@dataclass(frozen=True)
class EquityFigures:
    years: float
    return_annualised: float | None
    vol: float | None
    vol_of_vol: float | None
    tracking_error: float | None
    worst_day: float | None
    max_drawdown: float | None


@dataclass(frozen=True)
class RunComparison:
    replay_key: str
    run_id: int
    role: str
    book: str
    target_vol: float | None
    cycles: int
    equity_start_usd: float | None
    equity_end_usd: float | None
    figures: EquityFigures
    turnover_usd: float
    turnover_per_year: float | None
    fees_usd: float | None
    funding_usd: float | None
    share_in_band: float | None
    trades: int  # the controller's filled orders (a dry run's recommendations are not trades)
    status: str = "completed"  # the run's end: completed, liquidated, halted …


def equity_figures(
    times_s: np.ndarray, equity: np.ndarray, *, target_vol: float | None, window_days: float = WINDOW_DAYS
) -> EquityFigures:
    """The figures of one equity path (``times_s`` in epoch seconds, increasing; ``equity`` > 0)."""
    times_s, equity = np.asarray(times_s, dtype=float), np.asarray(equity, dtype=float)
    if times_s.size < 3 or not np.all(equity > 0):
        return EquityFigures(0.0, None, None, None, None, None, None)
    years = float(times_s[-1] - times_s[0]) / YEAR_S
    vol = realised_vol(times_s, equity)
    _, rolling = rolling_realised_vol(times_s, equity, window_s=window_days * 86400.0)
    peak = np.maximum.accumulate(equity)
    return EquityFigures(
        years=years,
        return_annualised=float((equity[-1] / equity[0]) ** (1.0 / years) - 1.0) if years > 0 else None,
        vol=vol,
        vol_of_vol=float(np.std(rolling)) if rolling.size > 1 else None,
        tracking_error=(
            float(np.sqrt(np.mean((rolling - target_vol) ** 2)))
            if rolling.size and target_vol is not None
            else None
        ),
        worst_day=_worst_day(times_s, equity),
        max_drawdown=float(np.max(1.0 - equity / peak)),
    )


def _worst_day(times_s: np.ndarray, equity: np.ndarray) -> float | None:
    days = np.floor(times_s / 86400.0)
    last_of_day = np.flatnonzero(np.diff(days) != 0)  # the last cycle of each day but the final one
    closes = np.concatenate([equity[last_of_day], equity[-1:]])
    return float(np.min(closes[1:] / closes[:-1] - 1.0)) if closes.size > 1 else None


def compare_replays(
    db: Path, replay_key: str | None = None, *, run_ids: set[int] | None = None
) -> list[RunComparison]:
    """Replayed runs in the log (all, one replay's, or those among ``run_ids``) with their figures."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        if "replays" not in tables:
            return []
        where, args = ("where replay_key = ?", [replay_key]) if replay_key else ("", [])
        replays = [dict(r) for r in conn.execute(f"select * from replays {where} order by id", args)]
        if run_ids is not None:
            replays = [r for r in replays if r["run_id"] in run_ids]
        return [_compare_run(conn, row) for row in replays]


_RUN_ROWS = (
    "select round((julianday(ts) - 2440587.5) * 86400000.0) / 1000.0, equity_usd, "
    "band_low is not null and signed_leverage is not null, signed_leverage between band_low and band_high "
    "from cycles where run_id = ? and action != 'ERROR' and equity_usd is not null order by id"
)
# a run of several currencies: its book, one row per cycle (the currencies' rows share n); a cycle is
# inside the band when every currency with a band is
_BOOK_ROWS = (
    "select round((julianday(min(ts)) - 2440587.5) * 86400000.0) / 1000.0, max(portfolio_equity_usd), "
    "max(band_low is not null and signed_leverage is not null), "
    "min(coalesce(signed_leverage between band_low and band_high, 1)) "
    "from cycles where run_id = ? and action != 'ERROR' and equity_usd is not null group by n order by n"
)


def _compare_run(conn: sqlite3.Connection, replay: dict[str, Any]) -> RunComparison:
    run_id = replay["run_id"]
    columns = {r[1] for r in conn.execute("pragma table_info(cycles)")}
    several = "currency" in columns and (
        conn.execute("select count(distinct currency) from cycles where run_id = ?", [run_id]).fetchone()[0]
        > 1
    )
    rows = conn.execute(_BOOK_ROWS if several else _RUN_ROWS, [run_id]).fetchall()
    times, equity, banded, inside_band = np.array(rows, dtype=float).reshape(-1, 4).T
    figures = equity_figures(times, equity, target_vol=replay["target_vol"])
    banded_rows = banded == 1
    inside = int(np.count_nonzero(banded_rows & (inside_band == 1)))
    banded = banded_rows
    filled = conn.execute(
        "select request from orders where run_id = ? and status = 'filled'", [run_id]
    ).fetchall()
    turnover = sum(json.loads(o["request"] or "{}").get("notional_usd", 0.0) for o in filled)
    ledger = json.loads(replay["ledger"] or "{}")
    mean_equity = float(np.mean(equity)) if equity.size else 0.0
    return RunComparison(
        replay_key=replay["replay_key"],
        run_id=run_id,
        role=replay["role"],
        book=replay["book"],
        target_vol=replay["target_vol"],
        cycles=int(equity.size),
        equity_start_usd=float(equity[0]) if equity.size else None,
        equity_end_usd=float(equity[-1]) if equity.size else None,
        figures=figures,
        turnover_usd=turnover,
        turnover_per_year=(
            turnover / mean_equity / figures.years if mean_equity > 0 and figures.years > 0 else None
        ),
        fees_usd=ledger.get("fees_usd"),
        funding_usd=ledger.get("funding_usd"),
        share_in_band=inside / int(np.count_nonzero(banded)) if banded.any() else None,
        trades=len(filled),
        status=str(conn.execute("select status from runs where id = ?", [run_id]).fetchone()[0] or ""),
    )


def comparison_rows(runs: list[RunComparison]) -> list[dict[str, Any]]:
    """One flat row per run, for tables and JSON."""
    rows = []
    for r in runs:
        f = r.figures
        rows.append(
            {
                "run": r.run_id,
                "book": r.book,
                "role": r.role if r.status in ("completed", "") else f"{r.role} ({r.status})",
                "target vol": r.target_vol,
                "vol": f.vol,
                "vol of vol": f.vol_of_vol,
                "tracking error": f.tracking_error,
                "return / yr": f.return_annualised,
                "worst day": f.worst_day,
                "max drawdown": f.max_drawdown,
                "turnover / yr": r.turnover_per_year,
                "fees USD": r.fees_usd,
                "funding paid USD": None if r.funding_usd is None else -r.funding_usd,
                "in band": r.share_in_band,
                "trades": r.trades,
                "equity end USD": r.equity_end_usd,
            }
        )
    return rows
