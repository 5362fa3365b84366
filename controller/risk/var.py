"""Value at risk and expected shortfall by full revaluation on historical scenarios (pure).

A scenario is one past day: the index's move from one UTC day's close to the next (``m = S₁/S₀ − 1``,
days that do not follow one another are skipped, so a gap never poses as one day) and, where the
implied volatility is known on both days, its relative change the same day (``σ₁/σ₀ − 1``).  Every
position is revalued under each scenario (Black-76 for options; the caller passes the book's
revaluation), and::

    VaR  = the ``level`` quantile of the losses (linear interpolation between order statistics)
    ES   = the mean of the losses at or beyond VaR

both as positive USD (zero when the book gains in every scenario).  Beside them, the
delta-gamma-vega approximation of the same scenarios::

    P&L ≈ Δ_usd·m + ½·Γ$·100·m² + Σᵢ vegaᵢ·σᵢ·100·shift

(``Γ$`` the dollar gamma per 1 % move, ``vegaᵢ`` USD per vol point, ``σᵢ`` decimal), whose gap to
the full revaluation says how much the book's convexity matters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

DAY_S = 86400.0


@dataclass(frozen=True)
class HistoricalScenarios:
    days: tuple[str, ...]  # the UTC date (YYYY-MM-DD) each scenario's move ended on
    price_moves: np.ndarray  # relative: −0.05 is −5 %
    vol_shifts: np.ndarray  # relative change of the implied volatility, 0 where unknown
    _tails: dict[tuple[float, int], tuple[float, float, int, tuple[int, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )  # linear books: (VaR, ES, VaR scenario, worst) per unit of delta, by (level, sign of delta)

    def __len__(self) -> int:
        return len(self.days)

    def tail(self, level: float, sign: int) -> tuple[float, float, int, tuple[int, ...]]:
        """VaR and ES per USD of delta of a linear book long (+1) or short (−1); computed once per day."""
        key = (level, sign)
        if key not in self._tails:
            losses = -sign * self.price_moves
            q = quantile(losses, level)
            beyond = np.flatnonzero(losses >= q)
            worst = tuple(int(i) for i in np.argsort(-losses, kind="stable")[:3])
            self._tails[key] = (
                q,
                float(np.mean(losses[beyond])),
                int(beyond[np.argmin(losses[beyond])]),
                worst,
            )
        return self._tails[key]


@dataclass(frozen=True)
class VarFigures:
    level: float
    var_usd: float
    es_usd: float
    var_dgv_usd: float  # the delta-gamma-vega approximation of the same scenarios
    es_dgv_usd: float
    worst_days: tuple[str, ...]  # the days of the worst full-revaluation scenarios, worst first
    scenarios: int
    var_scenario: int  # the scenario whose loss is the VaR's order statistic (the first at or beyond it)


def daily_scenarios(
    times_s: np.ndarray, index: np.ndarray, implied: np.ndarray | None = None, *, window_days: int = 365
) -> HistoricalScenarios:
    """One-day scenarios from an index history (and the implied vol beside it, NaN where unknown).

    The close of a UTC day is its last observation; the last ``window_days`` moves between
    consecutive days are kept.
    """
    times_s, index = np.asarray(times_s, dtype=float), np.asarray(index, dtype=float)
    vols = np.full(index.shape, np.nan) if implied is None else np.asarray(implied, dtype=float)
    if times_s.size == 0:
        return HistoricalScenarios((), np.empty(0), np.empty(0))
    day = np.floor(times_s / DAY_S).astype(np.int64)
    last = np.flatnonzero(np.append(np.diff(day) != 0, True))  # the last observation of each day
    day, close, vol = day[last], index[last], vols[last]
    follows = np.diff(day) == 1
    moves = (close[1:] / close[:-1] - 1.0)[follows]
    shift = vol[1:] / vol[:-1] - 1.0
    shifts = np.where(np.isfinite(shift), shift, 0.0)[follows]
    ends = day[1:][follows]
    keep = slice(max(0, moves.size - window_days), None)
    days = tuple(_utc_date(int(d)) for d in ends[keep])
    return HistoricalScenarios(days, moves[keep], shifts[keep])


def quantile(values: np.ndarray, level: float) -> float:
    """``np.quantile(values, level)`` (linear interpolation between order statistics, numpy's
    default and its rounding) from a partial sort: a tenth of its cost on a year of scenarios."""
    n = values.size
    h = (n - 1) * level
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    part = np.partition(values, (lo, hi))
    a, b, t = float(part[lo]), float(part[hi]), h - lo
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1.0 - t)


@lru_cache(maxsize=8192)
def _utc_date(day: int) -> str:
    """YYYY-MM-DD of an epoch day (cached: the window's days are relabelled every day that completes)."""
    return datetime.fromtimestamp(day * DAY_S, UTC).strftime("%Y-%m-%d")


def var_es(pnl: np.ndarray, *, level: float = 0.99) -> tuple[float, float]:
    """(VaR, ES) of a P&L sample, positive USD; zero where the sample never loses."""
    losses = -np.asarray(pnl, dtype=float)
    if losses.size == 0:
        raise ValueError("VaR needs at least one scenario")
    if not 0.5 < level < 1:
        raise ValueError(f"the VaR level must be in (0.5, 1), got {level}")
    var = quantile(losses, level)
    es = float(np.mean(losses[losses >= var]))
    return max(var, 0.0), max(es, 0.0)


def linear_var(scenarios: HistoricalScenarios, *, delta_usd: float, level: float = 0.99) -> VarFigures:
    """VaR and ES of a book without options, whose P&L is ``Δ_usd · m`` exactly (coin collateral and
    inverse futures included: see docs/risk-and-policy.md): the same figures as :func:`historical_var`
    at the cost of one multiplication a cycle."""
    if len(scenarios) == 0:
        raise ValueError("VaR needs at least one historical scenario")
    if not 0.5 < level < 1:
        raise ValueError(f"the VaR level must be in (0.5, 1), got {level}")
    q, es, at, worst = scenarios.tail(level, 1 if delta_usd >= 0 else -1)
    size = abs(delta_usd)
    var, shortfall = max(size * q, 0.0), max(size * es, 0.0)
    return VarFigures(
        level=level,
        var_usd=var,
        es_usd=shortfall,
        var_dgv_usd=var,
        es_dgv_usd=shortfall,
        worst_days=tuple(scenarios.days[i] for i in worst),
        scenarios=len(scenarios),
        var_scenario=at,
    )


def historical_var(
    revalue: Callable[[np.ndarray, np.ndarray], np.ndarray],
    scenarios: HistoricalScenarios,
    *,
    delta_usd: float,
    dollar_gamma_usd: float,
    vega_by_relative_vol_usd: float,
    level: float = 0.99,
) -> VarFigures:
    """VaR and ES of a book: ``revalue(price_moves, vol_shifts)`` is its P&L (USD) per scenario.

    ``vega_by_relative_vol_usd`` is ``Σ vegaᵢ·σᵢ·100``: the P&L of a relative vol shift of 1 (+100 %).
    """
    if len(scenarios) == 0:
        raise ValueError("VaR needs at least one historical scenario")
    moves, shifts = scenarios.price_moves, scenarios.vol_shifts
    pnl = np.asarray(revalue(moves, shifts), dtype=float)
    approx = delta_usd * moves + 0.5 * dollar_gamma_usd * 100.0 * moves**2 + vega_by_relative_vol_usd * shifts
    var, es = var_es(pnl, level=level)
    var_dgv, es_dgv = var_es(approx, level=level)
    worst = np.argsort(pnl, kind="stable")[:3]
    losses = -pnl
    tail = np.flatnonzero(losses >= quantile(losses, level))
    at_var = tail[np.argmin(losses[tail])]  # the least loss at or beyond the VaR
    return VarFigures(
        level=level,
        var_usd=var,
        es_usd=es,
        var_dgv_usd=var_dgv,
        es_dgv_usd=es_dgv,
        worst_days=tuple(scenarios.days[i] for i in worst),
        scenarios=len(scenarios),
        var_scenario=int(at_var),
    )


@dataclass(frozen=True)
class DailyCloses:
    """The last observation of each UTC day — index and implied vol — kept for the scenarios.

    The scenarios are the moves between *completed* days (today's close is not in yet); they are
    rebuilt only when a day completes, not every cycle.
    """

    days: tuple[int, ...] = ()  # epoch days
    closes: tuple[float, ...] = ()
    implied: tuple[float, ...] = ()  # decimal, NaN where unknown
    scenarios: HistoricalScenarios = field(
        default_factory=lambda: HistoricalScenarios((), np.empty(0), np.empty(0))
    )


def record_close(
    history: DailyCloses, *, at: datetime, index: float, implied: float | None, window_days: int
) -> DailyCloses:
    """Today's latest observation added; a new day completes the last one and rebuilds the scenarios."""
    day = int(at.timestamp() // DAY_S)
    vol = float("nan") if implied is None else implied
    if history.days and day == history.days[-1]:
        return replace(history, closes=(*history.closes[:-1], index), implied=(*history.implied[:-1], vol))
    if history.days and day < history.days[-1]:
        return history  # a clock going back: keep what is known
    keep = window_days + 2  # the completed days the window needs, and today
    days, closes, vols = (
        (*history.days, day)[-keep:],
        (*history.closes, index)[-keep:],
        (*history.implied, vol)[-keep:],
    )
    done = len(days) - 1  # every day but today
    scenarios = daily_scenarios(
        np.asarray(days[:done], dtype=float) * DAY_S,
        np.asarray(closes[:done]),
        np.asarray(vols[:done]),
        window_days=window_days,
    )
    return DailyCloses(days, closes, vols, scenarios)
