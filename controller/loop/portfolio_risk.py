"""The whole book's risk each cycle: joint historical VaR/ES on the same dates for every currency,
the named stresses ("correlation goes to 1", "ETH moves 1.5× BTC") and the liquidation cascade
(docs/portfolio.md), with the guards that put every currency in REDUCING (pure: observations in)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.loop.cycles import Observed
from controller.risk import RiskSettings
from controller.risk.joint_var import joint_historical_var, joint_scenarios_from_closes
from controller.risk.scenarios import Revaluation, ScenarioResult
from controller.risk.stress import Revalue, cascade, common_liquidation_move, correlation_one, relative_move


@dataclass(frozen=True)
class BookStressSettings:
    cascade_amplification: float = 0.5  # the liquidation move extended by half again
    cascade_vol_shift: float = 0.5  # implied vols × 1.5 at the cascade point
    beta_lead: str = "BTC"
    betas: Mapping[str, float] | None = None  # default {"ETH": 1.5}
    max_var_fraction: float | None = None  # joint VaR above this share of the book's equity: REDUCING
    min_cascade_distance: float | None = None  # a cascade nearer than this common move: REDUCING


@dataclass(frozen=True)
class BookStress:
    row: dict[str, Any]  # the cycle row's columns and the ``portfolio`` JSON's "risk" part
    reducing: tuple[str, ...]  # guard breaches: every currency only reduces


def book_stress(
    observed: Mapping[str, Observed],
    *,
    sigma: Mapping[str, float],
    risk: RiskSettings,
    settings: BookStressSettings,
) -> BookStress:
    """Joint VaR/ES (once every currency has ``var_min_days`` common days), the named stresses and
    the cascade of the book made of ``observed``'s currencies, in USD."""
    revalue: dict[str, Revalue] = {}
    for c, o in observed.items():
        s = o.snapshot
        reval = Revaluation(
            s.positions, index=s.index_price, equity_coin=s.equity_coin, as_of=s.server_time, rate=risk.rate
        )
        revalue[c] = reval.pnl_usd
    equity = sum(o.report.equity_usd for o in observed.values())
    maintenance = sum(o.snapshot.maintenance_margin_coin * o.snapshot.index_price for o in observed.values())
    delta = {c: o.report.delta_usd for c, o in observed.items()}
    out: dict[str, Any] = {}
    reducing: list[str] = []
    scenarios = joint_scenarios_from_closes(
        closes={c: o.risk_state.history for c, o in observed.items()}, window_days=risk.var_window_days
    )
    if len(scenarios) >= risk.var_min_days:
        var = joint_historical_var(revalue, scenarios, level=risk.var_level)
        out.update(portfolio_var_usd=var.var_usd, portfolio_es_usd=var.es_usd)
        out["var"] = {"level": var.level, "scenarios": var.scenarios, "worst_days": list(var.worst_days),
                      "standalone_var_usd": var.standalone_var_usd}  # fmt: skip
        if settings.max_var_fraction is not None and var.var_usd > settings.max_var_fraction * equity:
            share = f"{settings.max_var_fraction:.0%}"
            reducing.append(f"the book's 1-day VaR {var.var_usd:,.0f} USD is above {share} of its equity")
    horizon = risk.stress_horizon_days
    one = correlation_one(
        delta_usd=delta, sigma=sigma, k=risk.stress_k, horizon_days=horizon, revalue=revalue
    )
    stresses = [{"label": one.worst.label, "pnl_usd": one.worst.pnl_usd, "book_vol_usd": one.book_vol_usd}]
    lead = settings.beta_lead if settings.beta_lead in observed else next(iter(observed))
    betas = {c: b for c, b in (settings.betas or {"ETH": 1.5}).items() if c in observed and c != lead}
    if betas:
        move = risk.stress_k * sigma[lead] * math.sqrt(horizon / 365.0)
        r = relative_move(lead=lead, lead_move=move, betas=betas, revalue=revalue)
        stresses.append({"label": r.label, "pnl_usd": r.pnl_usd})
    out["stresses"] = stresses
    grid = joint_grid({c: o.report.scenarios for c, o in observed.items()})
    if grid is not None:
        out["portfolio_worst_scenario_usd"] = grid.pop("worst_usd")
        out["grid"] = grid
    m_liq = common_liquidation_move(revalue=revalue, equity_usd=equity, maintenance_usd=maintenance)
    fall = cascade(
        liquidation_move=m_liq,
        amplification=settings.cascade_amplification,
        vol_shift=settings.cascade_vol_shift,
        revalue=revalue,
    )
    out.update(cascade_loss_usd=fall.loss_usd, cascade_distance=fall.distance)
    out["cascade"] = {
        "liquidation_move": fall.liquidation_move,
        "cascade_move": fall.cascade_move,
        "loss_usd": fall.loss_usd,
        "distance": fall.distance,
        "reason": fall.reason,
    }
    limit = settings.min_cascade_distance
    if limit is not None and fall.distance is not None and fall.distance < limit:
        reducing.append(
            f"a common move of {fall.liquidation_move:+.0%} would liquidate the book and set off a cascade "
            f"(loss {fall.loss_usd or 0:,.0f} USD): nearer than {limit:.0%}"
        )
    return BookStress(out, tuple(reducing))


def joint_grid(results: Mapping[str, Sequence[ScenarioResult]]) -> dict[str, Any] | None:
    """The book in every currency's i-th scenario at once: each grid is built by the same function
    (Deribit's PM grid at each currency's own range, then SPAN's), so the i-th scenarios are the
    same stress scaled to each currency — the grid under ρ = 1.  The worst weighted book P&L, its
    scenarios and each currency's P&L in it; None when the grids differ in size or are empty."""
    sizes = {len(r) for r in results.values()}
    if len(sizes) != 1 or not (size := sizes.pop()):
        return None
    pnl = np.sum([[r.pnl_usd for r in rs] for rs in results.values()], axis=0)
    weights = np.array([r.scenario.weight for r in next(iter(results.values()))])
    worst = int(np.argmin(pnl * weights))
    return {
        "worst_usd": min(0.0, float(pnl[worst] * weights[worst])),
        "scenarios": size,
        "worst": {
            c: {"label": rs[worst].scenario.label, "pnl_usd": rs[worst].pnl_usd} for c, rs in results.items()
        },
    }
