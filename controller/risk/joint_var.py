"""Value at risk of a book in several currencies, on joint historical scenarios (pure).

A joint scenario is one past UTC day on which *every* asset moved: each asset's move from its close
of the day before to its close of that day (``mᵢ = Sᵢ,₁ / Sᵢ,₀ − 1``, a close being the day's last
observation, as in :mod:`controller.risk.var`), and its implied vol's relative change where it is
known on both days (0 elsewhere).  Only days every asset has are kept, and only moves between two
such days that follow one another: a day one asset misses removes the two moves that touch it, so
the assets' moves always come from the same dates and a gap never poses as one day.

The book's P&L in a scenario is the sum of each currency's P&L (USD) in it — each revalued in full
by the caller (:meth:`controller.risk.scenarios.Revaluation.pnl_usd` of that currency's positions on
that asset's moves), or, for a book of perpetuals and collateral only, in closed form::

    P&Lₛ = Σᵢ Δ_usd,ᵢ · mₛ,ᵢ

and VaR and ES are :func:`controller.risk.var.var_es`'s (the ``level`` quantile of the losses with
numpy's linear interpolation; ES the mean loss at or beyond it), both positive USD.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce

import numpy as np

from controller.risk.var import DAY_S, DailyCloses, HistoricalScenarios, quantile, var_es

Revalue = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (moves, vol shifts) → P&L in USD per scenario


@dataclass(frozen=True, eq=False)
class JointScenarios:
    assets: tuple[str, ...]
    days: tuple[str, ...]  # the UTC date (YYYY-MM-DD) each scenario's moves ended on
    price_moves: np.ndarray  # (scenarios, assets), relative: −0.05 is −5 %
    vol_shifts: np.ndarray  # (scenarios, assets), relative change of the implied vol, 0 where unknown

    def __len__(self) -> int:
        return len(self.days)

    def of(self, asset: str) -> HistoricalScenarios:
        """One asset's column: its moves on the joint dates, for the single-currency machinery."""
        i = self.assets.index(asset)
        return HistoricalScenarios(self.days, self.price_moves[:, i].copy(), self.vol_shifts[:, i].copy())


@dataclass(frozen=True)
class JointVarFigures:
    level: float
    var_usd: float
    es_usd: float
    worst_days: tuple[str, ...]  # the days of the worst scenarios for the whole book, worst first
    scenarios: int
    var_scenario: int  # the scenario whose loss is the VaR's order statistic (the least at or beyond it)
    var_pnl_by_asset: dict[str, float]  # each currency's P&L (USD) in that scenario
    standalone_var_usd: dict[str, float]  # each currency's VaR on its own, on the same days


def joint_daily_scenarios(
    *,
    times_s: Mapping[str, np.ndarray],
    index: Mapping[str, np.ndarray],
    implied: Mapping[str, np.ndarray | None] | None = None,
    window_days: int = 365,
) -> JointScenarios:
    """Joint one-day scenarios from each asset's index history (epoch seconds; USD; implied vol
    decimal, NaN where unknown); the last ``window_days`` joint moves are kept."""
    assets = tuple(times_s)
    if set(index) != set(assets) or (implied is not None and not set(implied) <= set(assets)):
        raise ValueError("times_s, index and implied must name the same assets")
    days, closes, vols = {}, {}, {}
    for a in assets:
        t, s = np.asarray(times_s[a], dtype=float), np.asarray(index[a], dtype=float)
        v = None if implied is None else implied.get(a)
        v = np.full(s.shape, np.nan) if v is None else np.asarray(v, dtype=float)
        if not t.shape == s.shape == v.shape:
            raise ValueError(f"{a}: times, index and implied must have the same length")
        day = np.floor(t / DAY_S).astype(np.int64)
        last = np.flatnonzero(np.append(np.diff(day) != 0, True))  # the last observation of each day
        days[a], closes[a], vols[a] = day[last], s[last], v[last]
    return _joint(assets, days, closes, vols, window_days)


def joint_scenarios_from_closes(*, closes: Mapping[str, DailyCloses], window_days: int) -> JointScenarios:
    """Joint scenarios from each currency's :class:`~controller.risk.var.DailyCloses` (the loop's
    state): every day but each history's last, which is today and not complete."""
    assets = tuple(closes)
    days = {a: np.asarray(c.days[:-1], dtype=np.int64) for a, c in closes.items()}
    prices = {a: np.asarray(c.closes[:-1], dtype=float) for a, c in closes.items()}
    vols = {a: np.asarray(c.implied[:-1], dtype=float) for a, c in closes.items()}
    return _joint(assets, days, prices, vols, window_days)


def _joint(
    assets: tuple[str, ...],
    days: Mapping[str, np.ndarray],
    closes: Mapping[str, np.ndarray],
    vols: Mapping[str, np.ndarray],
    window_days: int,
) -> JointScenarios:
    if not assets:
        raise ValueError("joint scenarios need at least one asset")
    common = reduce(np.intersect1d, (days[a] for a in assets))
    follows = np.diff(common) == 1
    moves, shifts = [], []
    for a in assets:
        at = np.searchsorted(days[a], common)
        close, vol = closes[a][at], vols[a][at]
        moves.append((close[1:] / close[:-1] - 1.0)[follows])
        shift = vol[1:] / vol[:-1] - 1.0
        shifts.append(np.where(np.isfinite(shift), shift, 0.0)[follows])
    keep = slice(max(0, int(follows.sum()) - window_days), None)
    ends = common[1:][follows][keep]
    return JointScenarios(
        assets,
        tuple(datetime.fromtimestamp(int(d) * DAY_S, UTC).strftime("%Y-%m-%d") for d in ends),
        np.column_stack(moves)[keep],
        np.column_stack(shifts)[keep],
    )


def joint_var(
    pnl_by_asset: Mapping[str, np.ndarray], scenarios: JointScenarios, *, level: float = 0.99
) -> JointVarFigures:
    """VaR and ES of the book whose P&L (USD) in each joint scenario is the sum of ``pnl_by_asset``."""
    if len(scenarios) == 0:
        raise ValueError("VaR needs at least one joint historical scenario")
    if set(pnl_by_asset) != set(scenarios.assets):
        raise ValueError(f"P&L for {sorted(pnl_by_asset)}, scenarios for {sorted(scenarios.assets)}")
    columns = {a: np.asarray(pnl_by_asset[a], dtype=float) for a in scenarios.assets}
    if any(c.shape != (len(scenarios),) for c in columns.values()):
        raise ValueError(f"each asset's P&L must have one value per scenario ({len(scenarios)})")
    pnl = np.sum(list(columns.values()), axis=0)
    var, es = var_es(pnl, level=level)
    losses = -pnl
    tail = np.flatnonzero(losses >= quantile(losses, level))
    at_var = int(tail[np.argmin(losses[tail])])
    return JointVarFigures(
        level=level,
        var_usd=var,
        es_usd=es,
        worst_days=tuple(scenarios.days[i] for i in np.argsort(pnl, kind="stable")[:3]),
        scenarios=len(scenarios),
        var_scenario=at_var,
        var_pnl_by_asset={a: float(c[at_var]) for a, c in columns.items()},
        standalone_var_usd={a: var_es(c, level=level)[0] for a, c in columns.items()},
    )


def joint_historical_var(
    revalue: Mapping[str, Revalue], scenarios: JointScenarios, *, level: float = 0.99
) -> JointVarFigures:
    """VaR and ES by full revaluation: ``revalue[asset](moves, vol_shifts)`` is that currency's P&L
    (USD) under its own column of the joint scenarios."""
    pnl = {
        a: revalue[a](scenarios.price_moves[:, i], scenarios.vol_shifts[:, i])
        for i, a in enumerate(scenarios.assets)
    }
    return joint_var(pnl, scenarios, level=level)


def linear_joint_pnl(scenarios: JointScenarios, *, delta_usd: Mapping[str, float]) -> np.ndarray:
    """``P&Lₛ = Σᵢ Δ_usd,ᵢ · mₛ,ᵢ``: exact for perpetuals, futures and coin collateral."""
    return scenarios.price_moves @ np.array([delta_usd[a] for a in scenarios.assets], dtype=float)


def linear_joint_var(
    scenarios: JointScenarios, *, delta_usd: Mapping[str, float], level: float = 0.99
) -> JointVarFigures:
    """:func:`joint_var` of a book without options, from each currency's Δ_usd."""
    pnl = {a: scenarios.price_moves[:, i] * delta_usd[a] for i, a in enumerate(scenarios.assets)}
    return joint_var(pnl, scenarios, level=level)
