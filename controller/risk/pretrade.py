"""The pre-trade gate: the last check an order passes before its intent is written and it is sent.

The policy sizes orders; the gate refuses what must never go out, whatever sized it (pure, like the
policy).  A refusal is a :class:`Denial` — *we* refused; an exchange's refusal is a rejection.

* the kill switch is on;
* the amount is not a whole number of lots (ccxt would truncate it silently);
* the notional exceeds the per-cycle maximum (by more than one lot of rounding);
* the order would take |leverage| beyond the hard cap, unless it reduces |Δ|;
* the account is REDUCING and the order would not reduce |Δ|.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controller.risk.assess import RiskReport
from controller.risk.policy import PolicySettings
from controller.venues import InstrumentSpec


class SizedOrder(Protocol):
    """What the gate reads of an order (a PlannedOrder, or the TrackedOrder made of it)."""

    @property
    def amount(self) -> float: ...

    @property
    def notional_usd(self) -> float: ...

    @property
    def delta_usd_change(self) -> float: ...


@dataclass(frozen=True)
class Denial:
    reason: str


def check(
    order: SizedOrder,
    *,
    report: RiskReport,
    spec: InstrumentSpec,
    settings: PolicySettings,
    reducing: bool,
    kill_switch: bool,
) -> Denial | None:
    """None when ``order`` may be sent; otherwise why not."""
    if kill_switch:
        return Denial("the kill switch is on")
    lots = order.amount / spec.min_amount
    if round(lots) < 1 or abs(lots - round(lots)) > 1e-9 * max(1.0, lots):
        return Denial(f"amount {order.amount:g} is not a whole number of lots of {spec.min_amount:g}")
    lot_notional = order.notional_usd / lots
    if order.notional_usd > settings.max_order_usd + lot_notional:
        return Denial(
            f"notional {order.notional_usd:,.0f} USD exceeds the maximum order of "
            f"{settings.max_order_usd:,.0f} USD"
        )
    before = report.delta_usd
    after = before + order.delta_usd_change
    reduces = abs(after) < abs(before)
    if reducing and not reduces:
        return Denial("the account is reducing risk and the order would not reduce |Δ|")
    cap_usd = settings.hard_cap * report.equity_usd
    if abs(after) > cap_usd * (1 + 1e-9) and not reduces:
        return Denial(
            f"the order would take leverage to {abs(after) / report.equity_usd:.2f}x, "
            f"beyond the hard cap {settings.hard_cap:g}x"
        )
    return None
