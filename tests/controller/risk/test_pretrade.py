"""The pre-trade gate: one test per refusal, and an order it lets through."""

from __future__ import annotations

import pytest

from controller.risk import PlannedOrder, PolicySettings, RiskSettings, RiskState, assess, check
from controller.venues import Side
from tests.controller.snapshots import NOW, perp_spec, snapshot

SETTINGS = PolicySettings(max_order_usd=100_000.0, hard_cap=3.0)


def report(perp_usd: float = 0.0):
    """10 BTC at 80,000: equity 800,000 USD, delta 800,000 USD + the perpetual's."""
    risk, _ = assess(
        snapshot(perp_usd=perp_usd), RiskSettings(sigma_sources=("index",)), RiskState(), now=NOW
    )
    return risk


def order(amount: float, delta_usd_change: float) -> PlannedOrder:
    side = Side.BUY if delta_usd_change > 0 else Side.SELL
    return PlannedOrder("BTC-PERPETUAL", side, amount, False, amount, delta_usd_change)


def gate(planned, *, perp_usd=0.0, reducing=False, kill=False, lot=10.0):
    return check(
        planned,
        report=report(perp_usd),
        spec=perp_spec(lot),
        settings=SETTINGS,
        reducing=reducing,
        kill_switch=kill,
    )


def test_a_sized_order_passes():
    assert gate(order(50_000, 50_000)) is None


def test_the_kill_switch_refuses_everything():
    denial = gate(order(50_000, 50_000), kill=True)
    assert denial is not None and "kill switch" in denial.reason


@pytest.mark.parametrize("amount", [15.0, 5.0, 10_000.5])
def test_an_amount_off_the_lot_is_refused(amount):
    denial = gate(order(amount, amount))
    assert denial is not None and "whole number of lots of 10" in denial.reason


def test_a_notional_over_the_maximum_is_refused_but_a_lot_of_rounding_is_not():
    assert gate(order(100_010, 100_010)) is None  # one lot of rounding over the cap
    denial = gate(order(120_000, 120_000))
    assert denial is not None and "exceeds the maximum order of 100,000 USD" in denial.reason


def test_an_order_past_the_hard_cap_is_refused_unless_it_reduces():
    # delta 800,000 + 1,500,000 = 2.3 M = 2.9x; one more 100,000 takes it past 3x
    denial = gate(order(100_000, 100_000), perp_usd=1_560_000)
    assert denial is not None and "beyond the hard cap 3x" in denial.reason
    assert gate(order(100_000, -100_000), perp_usd=1_560_000) is None  # reduces |Δ|


def test_while_reducing_only_orders_that_reduce_pass():
    denial = gate(order(50_000, 50_000), reducing=True)
    assert denial is not None and "would not reduce" in denial.reason
    assert gate(order(50_000, -50_000), reducing=True) is None
