"""Options risk beyond delta: recommendations in words and sizes (advice only, never traded).

When the book's dollar gamma, vega or worst scenario loss exceeds its configured limit, the
positions that drive it are named, largest first, with the size to cut each to so that the excess
is covered (positions are reduced, never flipped; sizes round away from zero to the lot).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from controller.risk.assess import RiskReport
from controller.venues import AccountSnapshot


@dataclass(frozen=True)
class AdviceLimits:
    max_dollar_gamma_usd: float | None = None  # |dollar gamma| per 1 % move
    max_vega_usd: float | None = None  # |vega| per vol point
    max_worst_loss_fraction: float | None = None  # worst scenario loss as a share of equity


@dataclass(frozen=True)
class Advice:
    metric: str
    instrument: str
    current_size: float
    suggested_size: float
    text: str

    @property
    def reduce_by(self) -> float:
        return abs(self.current_size) - abs(self.suggested_size)


def options_advice(
    report: RiskReport,
    snapshot: AccountSnapshot,
    limits: AdviceLimits,
    *,
    lot_sizes: Mapping[str, float] | None = None,
) -> tuple[Advice, ...]:
    lots = dict(lot_sizes or {})
    advice: list[Advice] = []
    for metric, unit, total, limit, field in (
        (
            "dollar gamma",
            "USD per 1 %",
            report.dollar_gamma_usd,
            limits.max_dollar_gamma_usd,
            "dollar_gamma_usd",
        ),
        ("vega", "USD per vol point", report.vega_usd, limits.max_vega_usd, "vega_usd"),
    ):
        if limit is not None and abs(total) > limit:
            values = by_position(report, field)
            advice += _cut(metric, unit, total, limit, values.__getitem__, by_position(report, "size"), lots)
    if limits.max_worst_loss_fraction is not None and report.worst_scenario is not None:
        limit_usd = limits.max_worst_loss_fraction * report.equity_usd
        loss = -report.worst_scenario.weighted_pnl_usd
        if loss > limit_usd:
            contribution = report.worst_contributions
            advice += _cut(
                f"worst scenario loss ({report.worst_scenario.scenario.label})",
                "USD",
                -loss,
                limit_usd,
                lambda name: contribution.get(name, 0.0),
                by_position(report, "size"),
                lots,
            )
    return tuple(advice)


def var_advice(
    report: RiskReport, *, limit_usd: float, lot_sizes: Mapping[str, float] | None = None
) -> tuple[Advice, ...]:
    """When VaR exceeds ``limit_usd``: the positions that lose most in the scenario at the VaR, and cuts."""
    if report.var is None or report.var.var_usd <= limit_usd:
        return ()
    shares = report.var_contributions
    return tuple(
        _cut(
            f"1-day {report.var.level:.0%} VaR",
            "USD",
            -report.var.var_usd,
            limit_usd,
            lambda name: shares.get(name, 0.0),
            by_position(report, "size"),
            dict(lot_sizes or {}),
        )
    )


def by_position(report: RiskReport, field: str) -> dict[str, float]:
    """One column of the book's position greeks (``"size"``, ``"vega_usd"`` …) by instrument name."""
    columns = report.book.columns
    return dict(zip(columns.name, getattr(columns, field).tolist(), strict=True))


def _cut(
    metric: str,
    unit: str,
    total: float,
    limit: float,
    contribution: Callable[[str], float],
    sizes: Mapping[str, float],
    lots: Mapping[str, float],
) -> list[Advice]:
    excess = abs(total) - limit
    shares = {name: abs(c) for name in sizes if (c := contribution(name)) * total > 0}
    out = []
    for name in sorted(shares, key=shares.__getitem__, reverse=True):
        if excess <= 0:
            break
        share = shares[name]
        fraction = min(1.0, excess / share)
        size = sizes[name]
        lot = lots.get(name, 0.1)
        cut = min(abs(size), math.ceil(abs(size) * fraction / lot - 1e-9) * lot)
        suggested = math.copysign(abs(size) - cut, size) if abs(size) - cut > 1e-12 else 0.0
        relieved = share * cut / abs(size)
        excess -= relieved
        out.append(
            Advice(
                metric=metric,
                instrument=name,
                current_size=size,
                suggested_size=suggested,
                text=(
                    f"{metric} {total:+,.0f} {unit} exceeds the limit {limit:,.0f}: "
                    f"reduce {name} from {size:+g} to {suggested:+g} "
                    f"(it carries {share / abs(total):.0%} of it; about {relieved:,.0f} less)"
                ),
            )
        )
    return out
