"""The order state machine: every transition the table allows, every one it forbids, and the clock rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controller.orders import (
    FINAL,
    IN_FLIGHT,
    TRANSITIONS,
    Ambiguous,
    InvalidTransition,
    NotFound,
    OrderState,
    Refused,
    Reported,
    TrackedOrder,
    advance,
    describe,
)
from controller.venues import OrderStatus, Side

T0 = datetime(2026, 1, 2, 8, tzinfo=UTC)
VALID_UNTIL = T0 + timedelta(seconds=15)
MARGIN = timedelta(seconds=5)


def order(state: OrderState, **changes) -> TrackedOrder:
    base = TrackedOrder(
        label="lv-1abcd-7-0",
        run_id=1,
        cycle_n=7,
        instrument="BTC-PERPETUAL",
        side=Side.BUY,
        amount=10_000.0,
        reduce_only=False,
        state=state,
        created_at=T0,
        updated_at=T0,
        valid_until=VALID_UNTIL,
        position_before=-50_000.0,
    )
    return replace(base, **changes)


def reported(status: OrderStatus, filled: float = 0.0) -> Reported:
    return Reported(
        status, filled, 90_000.0 if filled else None, 0.00005 if filled else None, "SIM-9", "label"
    )


# one outcome per target state it can produce (from a state where that target is allowed)
OUTCOMES = {
    OrderState.OPEN: reported(OrderStatus.OPEN),
    OrderState.FILLED: reported(OrderStatus.FILLED, 10_000.0),
    OrderState.CANCELLED: reported(OrderStatus.CANCELLED, 3_000.0),
    OrderState.REJECTED: Refused("not_enough_funds 10009"),
    OrderState.UNKNOWN: Ambiguous("the request timed out"),
}


@pytest.mark.parametrize("source", list(OrderState))
@pytest.mark.parametrize("target", list(OUTCOMES))
def test_every_reported_outcome_is_allowed_exactly_where_the_table_says(source, target):
    outcome = OUTCOMES[target]
    if (source, target) in TRANSITIONS:
        assert advance(order(source), outcome, at=T0).state is target
    else:
        with pytest.raises(InvalidTransition, match=f"from {source.value} to {target.value}"):
            advance(order(source), outcome, at=T0)


def test_final_states_never_move_and_in_flight_ones_always_can():
    assert {OrderState.SENDING, OrderState.UNKNOWN, OrderState.OPEN} == IN_FLIGHT
    assert not [pair for pair in TRANSITIONS if pair[0] in FINAL - {OrderState.NOT_PLACED}]
    for state in IN_FLIGHT:
        assert any(source is state for source, _ in TRANSITIONS)


def test_a_reply_settles_the_intent():
    filled = advance(order(OrderState.SENDING), reported(OrderStatus.FILLED, 10_000.0), at=T0)
    assert filled.state is OrderState.FILLED and not filled.in_flight
    assert filled.filled_amount == 10_000.0 and filled.exchange_order_id == "SIM-9"
    assert filled.resolved_by == "label" and filled.avg_price == 90_000.0


def test_an_error_reply_rejects_and_a_timeout_leaves_it_unknown():
    rejected = advance(order(OrderState.SENDING), Refused("not_enough_funds"), at=T0)
    assert rejected.state is OrderState.REJECTED and rejected.error == "not_enough_funds"
    unknown = advance(order(OrderState.SENDING), Ambiguous("timed out"), at=T0)
    assert unknown.state is OrderState.UNKNOWN and unknown.in_flight and unknown.signed_unfilled == 10_000.0


@pytest.mark.parametrize("seconds_past", [0.0, 1.0, 4.999])
def test_not_found_before_valid_until_plus_the_margin_proves_nothing(seconds_past):
    looked = advance(
        order(OrderState.UNKNOWN, lookups=2),
        NotFound(VALID_UNTIL + timedelta(seconds=seconds_past), MARGIN),
        at=T0,
    )
    assert looked.state is OrderState.UNKNOWN and looked.lookups == 3 and looked.in_flight


def test_not_found_after_valid_until_plus_the_margin_is_proof_it_was_never_placed():
    proven = advance(
        order(OrderState.UNKNOWN), NotFound(VALID_UNTIL + MARGIN + timedelta(seconds=0.001), MARGIN), at=T0
    )
    assert proven.state is OrderState.NOT_PLACED and proven.resolved_by == "valid_until"
    assert not proven.in_flight and proven.signed_unfilled == 0.0


def test_an_intent_found_at_restart_is_unknown_until_the_clock_proves_otherwise():
    early = advance(order(OrderState.SENDING), NotFound(T0 + timedelta(seconds=1), MARGIN), at=T0)
    assert early.state is OrderState.UNKNOWN
    late = advance(order(OrderState.SENDING), NotFound(T0 + timedelta(minutes=5), MARGIN), at=T0)
    assert late.state is OrderState.NOT_PLACED


def test_without_valid_until_not_found_never_becomes_proof():
    looked = advance(
        order(OrderState.UNKNOWN, valid_until=None), NotFound(T0 + timedelta(days=30), MARGIN), at=T0
    )
    assert looked.state is OrderState.UNKNOWN


def test_an_acknowledged_order_that_cannot_be_found_stays_open():
    looked = advance(
        order(OrderState.OPEN, filled_amount=2_000.0), NotFound(T0 + timedelta(days=1), MARGIN), at=T0
    )
    assert looked.state is OrderState.OPEN and looked.lookups == 1 and looked.signed_unfilled == 8_000.0


def test_an_order_proven_never_placed_that_appears_after_all_becomes_what_it_is():
    appeared = advance(order(OrderState.NOT_PLACED), reported(OrderStatus.FILLED, 10_000.0), at=T0)
    assert appeared.state is OrderState.FILLED


def test_a_sell_counts_negative_while_unsettled():
    sell = order(OrderState.UNKNOWN, side=Side.SELL)
    assert sell.signed_amount == -10_000.0 and sell.signed_unfilled == -10_000.0


def test_describe_names_the_order_its_state_and_its_lookups():
    text = describe(order(OrderState.UNKNOWN, lookups=3))
    assert text.startswith("lv-1abcd-7-0 buy 10,000 BTC-PERPETUAL unknown since 2026-01-02 08:00:00 UTC")
    assert "looked up 3 time(s)" in text
