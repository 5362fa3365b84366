"""Execution: the way out of a decision — recommendations, or orders that are never sent twice.

* :class:`DryRunExecutor` holds no venue at all: it can only record recommendations, so a dry run
  cannot send an order by construction.
* :class:`OrderExecutor` sends each planned order once, written ahead: the pre-trade gate first,
  then the intent committed to the journal (``sending``, with Deribit's ``valid_until`` in the
  exchange's clock), then the request, then every outcome as a transition (:mod:`controller.orders`).
  If the intent cannot be written, nothing is sent (:class:`~controller.journal.JournalError`
  propagates and the controller halts).  A reply settles the order; an error reply rejects it; a
  timeout, a lost or unreadable reply leaves it ``unknown`` — in flight, never resent.
* :class:`Resolver` settles orders in flight, at every cycle and at start-up, by their label
  (``get_order_state_by_label``), then their fills (trades carrying the label), then the position
  (it moved by exactly the order's amount, and no other order could have moved it), and finally
  the clock: once the exchange's time is past ``valid_until`` by the margin, "not found" is proof
  that the order never reached the matching engine.  Until then, "not found yet" proves nothing.

Labels are deterministic, ``{prefix}-{run}-{cycle}-{leg}`` (:func:`order_label`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from controller.journal import Journal
from controller.orders import (
    Ambiguous,
    NotFound,
    OrderState,
    Outcome,
    Refused,
    Reported,
    TrackedOrder,
    advance,
    describe,
)
from controller.risk import Decision, Denial, InFlightOrder
from controller.venues import (
    AccessDeniedError,
    AccountSnapshot,
    OrderReport,
    OrderRequest,
    OrderStatus,
    OrderType,
    TradeReport,
    Venue,
    VenueError,
    send_outcome,
)

Event = tuple[str, str, str]  # (level, kind, message)
Gate = Callable[[TrackedOrder], Denial | None]


class OrderReader(Protocol):
    """What resolving an order needs of a venue: reads only (a dry run's read-only venue will do)."""

    def get_order(self, *, order_id: str | None = None, label: str | None = None) -> OrderReport | None: ...

    def trades_by_label(self, label: str, instrument: str) -> list[TradeReport]: ...

    def server_time(self) -> datetime: ...


@dataclass
class ExecutionReport:
    orders: list[TrackedOrder] = field(default_factory=list)  # sent this cycle, as they stand now
    unsent: list[TrackedOrder] = field(default_factory=list)  # recommendations and denials
    events: list[Event] = field(default_factory=list)
    halt: str | None = None  # a refusal no repetition can fix (credentials): stop trading

    @property
    def all_orders(self) -> list[TrackedOrder]:
        return [*self.orders, *self.unsent]


def order_label(prefix: str, run_key: str, cycle: int, leg: int) -> str:
    """``{prefix}-{run}-{cycle}-{leg}``; the run key is the run id plus its start time in base 36, so
    labels stay unique on an exchange even when a fresh decision log starts counting runs at 1 again."""
    return f"{prefix}-{run_key}-{cycle}-{leg}"


class DryRunExecutor:
    """Records the decision's orders as recommendations. It has no venue: nothing can be sent."""

    sends_orders = False

    def execute(self, planned: list[TrackedOrder], *, gate: Gate) -> ExecutionReport:
        report = ExecutionReport()
        for order in planned:
            report.unsent.append(replace(order, state=OrderState.RECOMMENDED, resolved_by="dry-run"))
        return report


class Resolver:
    """Settles orders in flight by what the venue can tell of them; every step journaled."""

    def __init__(
        self,
        venue: OrderReader,
        journal: Journal,
        *,
        clock: Callable[[], datetime],
        valid_margin_s: float,
    ) -> None:
        self.venue = venue
        self.journal = journal
        self.clock = clock
        self.valid_margin_s = valid_margin_s

    def resolve(
        self, order: TrackedOrder, events: list[Event], *, position: float | None = None
    ) -> TrackedOrder:
        """Look ``order`` up once; ``position`` is the exchange's size now, when this order alone could
        have moved it (then a move by exactly its amount means it filled)."""
        try:
            outcome = self._learn(order, position)
        except AccessDeniedError:
            raise  # not a lookup problem: the controller halts
        except VenueError as exc:
            events.append(("warning", "order_lookup_failed", f"{order.label}: {exc}"))
            return order
        return self.record(order, outcome, events)

    def record(self, order: TrackedOrder, outcome: Outcome, events: list[Event]) -> TrackedOrder:
        """Advance ``order`` by ``outcome`` and commit the transition (JournalError propagates)."""
        after = advance(order, outcome, at=self.clock())
        if after.state == order.state and after.lookups != order.lookups and after.lookups > 1:
            detail = f"not found (lookup {after.lookups}); outcome still unknown"
        else:
            detail = _detail(outcome)
        after = self.journal.record_transition(order, after, detail=detail)
        if after.state != order.state:
            events.append(
                (_level(order, after), f"order_{after.state.value}", f"{describe(after)}: {detail}")
            )
        return after

    def _learn(self, order: TrackedOrder, position: float | None) -> Outcome:
        if order.exchange_order_id:
            found = self.venue.get_order(order_id=order.exchange_order_id)
            if found is not None:
                return Reported.from_report(found, via="id")
        found = self.venue.get_order(label=order.label)
        if found is not None:
            return Reported.from_report(found, via="label")
        trades = self.venue.trades_by_label(order.label, order.instrument)
        if trades:
            return _from_trades(order, trades)
        if (
            position is not None
            and order.position_before is not None
            and abs(position - order.position_before - order.signed_amount) <= 1e-9 * max(1.0, order.amount)
        ):
            return Reported(OrderStatus.FILLED, order.amount, None, None, None, via="position")
        margin = timedelta(seconds=self.valid_margin_s)
        return NotFound(server_time=self.venue.server_time(), margin=margin)


class OrderExecutor:
    """Sends orders to a venue (testnet, live, or the simulator's paper account)."""

    sends_orders = True

    def __init__(
        self,
        venue: Venue,
        journal: Journal,
        *,
        clock: Callable[[], datetime],
        order_timeout_s: float,
        valid_for_s: float,
        valid_margin_s: float,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        poll_s: float = 0.25,
    ) -> None:
        self.venue = venue
        self.journal = journal
        self.clock = clock
        self.order_timeout_s = order_timeout_s
        self.valid_for_s = valid_for_s
        self.sleep = sleep
        self.monotonic = monotonic
        self.poll_s = poll_s
        self.resolver = Resolver(venue, journal, clock=clock, valid_margin_s=valid_margin_s)

    def execute(self, planned: list[TrackedOrder], *, gate: Gate) -> ExecutionReport:
        report = ExecutionReport()
        for order in planned:
            denial = gate(order)
            if denial is not None:
                report.unsent.append(
                    replace(order, state=OrderState.DENIED, error=denial.reason, resolved_by="gate")
                )
                report.events.append(("warning", "order_denied", f"{order.label}: {denial.reason}"))
                continue
            report.orders.append(self._send_once(order, report))
            if report.halt:
                break
        return report

    def _send_once(self, order: TrackedOrder, report: ExecutionReport) -> TrackedOrder:
        try:
            valid_until = self.venue.server_time() + timedelta(seconds=self.valid_for_s)
        except VenueError as exc:
            report.events.append(("warning", "order_not_sent", f"{order.label}: no exchange clock: {exc}"))
            return replace(order, state=OrderState.DENIED, error=str(exc), resolved_by="clock")
        order = self.journal.record_intent(replace(order, valid_until=valid_until))
        request = OrderRequest(
            instrument=order.instrument,
            side=order.side,
            amount=order.amount,
            label=order.label,
            type=OrderType.MARKET,
            reduce_only=order.reduce_only,
            valid_until=valid_until,
        )
        outcome: Outcome
        try:
            outcome = Reported.from_report(self.venue.place_order(request), via="reply")
        except Exception as exc:  # whatever happened, the intent is journaled: classify, never resend
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, VenueError) else str(exc)
            outcome = Refused(message) if send_outcome(exc) == "rejected" else Ambiguous(message)
            if isinstance(exc, AccessDeniedError):
                report.halt = str(exc)
        order = self.resolver.record(order, outcome, report.events)
        if order.state is OrderState.OPEN:
            order = self._follow(order, report)
        return order

    def _follow(self, order: TrackedOrder, report: ExecutionReport) -> TrackedOrder:
        """Poll an acknowledged order until it is final or the deadline passes (then it stays in flight)."""
        deadline = self.monotonic() + self.order_timeout_s
        while order.in_flight and self.monotonic() < deadline:
            self.sleep(self.poll_s)
            order = self.resolver.resolve(order, report.events)
        return order

    def settle(self, order: TrackedOrder, events: list[Event], *, position: float | None) -> TrackedOrder:
        """Resolve an order in flight; cancel one left resting past the order timeout."""
        order = self.resolver.resolve(order, events, position=position)
        age = (self.clock() - order.created_at).total_seconds()
        if order.state is OrderState.OPEN and order.exchange_order_id and age > self.order_timeout_s:
            try:
                cancelled = self.venue.cancel_order(order.exchange_order_id)
            except VenueError as exc:
                events.append(("warning", "order_cancel_failed", f"{order.label}: {exc}"))
                return order
            order = self.resolver.record(order, Reported.from_report(cancelled, via="cancel"), events)
        return order


def _from_trades(order: TrackedOrder, trades: list[TradeReport]) -> Reported:
    """An order known only by its fills (it has left the order history): filled, or cancelled part-filled."""
    filled = sum(t.amount for t in trades)
    average = sum(t.amount * t.price for t in trades) / filled
    status = OrderStatus.FILLED if filled >= order.amount * (1 - 1e-9) else OrderStatus.CANCELLED
    return Reported(
        status, filled, average, sum(t.fee_coin for t in trades), trades[0].order_id, via="trades"
    )


def _level(before: TrackedOrder, after: TrackedOrder) -> str:
    if before.state is OrderState.NOT_PLACED:
        return "error"  # proven never placed, and there it is: the clock or the venue broke its word
    if after.state in (OrderState.UNKNOWN, OrderState.REJECTED, OrderState.NOT_PLACED):
        return "warning"
    return "info"


def _detail(outcome: Outcome) -> str:
    if isinstance(outcome, Reported):
        return f"{outcome.status.value} per {outcome.via}, filled {outcome.filled_amount:g}"
    if isinstance(outcome, Refused):
        return f"refused by the venue: {outcome.message}"
    if isinstance(outcome, Ambiguous):
        return f"outcome unknown: {outcome.message}"
    return f"not found at exchange time {outcome.server_time.isoformat()}"


def in_flight_positions(
    orders: list[TrackedOrder], positions: Mapping[str, float]
) -> dict[str, float | None]:
    """The exchange's position for each order's instrument where that order alone is in flight on it."""
    count: dict[str, int] = {}
    for o in orders:
        count[o.instrument] = count.get(o.instrument, 0) + 1
    return {o.label: positions.get(o.instrument, 0.0) if count[o.instrument] == 1 else None for o in orders}


def plan_orders(
    decision: Decision,
    snapshot: AccountSnapshot,
    *,
    label_prefix: str,
    run_key: str,
    run_id: int,
    n: int,
    now: datetime,
) -> list[TrackedOrder]:
    """The decision's orders as orders to send: labelled, and each with the position it starts from."""
    held = {p.name: p.size for p in snapshot.positions}
    return [
        TrackedOrder(
            label=order_label(label_prefix, run_key, n, leg),
            run_id=run_id,
            cycle_n=n,
            instrument=p.instrument,
            side=p.side,
            amount=p.amount,
            reduce_only=p.reduce_only,
            state=OrderState.SENDING,
            created_at=now,
            updated_at=now,
            notional_usd=p.notional_usd,
            delta_usd_change=p.delta_usd_change,
            position_before=held.get(p.instrument, 0.0),
        )
        for leg, p in enumerate(decision.orders)
    ]


def for_policy(order: TrackedOrder) -> InFlightOrder:
    return InFlightOrder(order.label, order.instrument, order.state.value, order.created_at, describe(order))


def run_key_suffix(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
        if value == 0:
            return out
