"""The life of one of our orders: its states, the transitions allowed between them, and :func:`advance`.

Everything here is pure data.  The executor and the loop feed :func:`advance` what they learn from
the venue; the journal stores each state it returns (and the transition) before anything else
happens.  The rules:

* A planned order is refused by the pre-trade gate (``denied``) or recorded as the intent to send
  (``sending``) — committed to the journal *before* the request leaves.
* A reply settles it (``open``, ``filled``, ``cancelled``, ``rejected``).  An error reply means the
  venue refused it (``rejected``).  A timeout, a lost or unreadable reply, a 5xx leaves it
  ``unknown``: it may have reached the matching engine.
* ``sending``, ``unknown`` and ``open`` are in flight: counted in every decision until resolved —
  by its label, its fills, the position, or the clock.  A lookup that finds nothing proves nothing
  until the order's ``valid_until`` (exchange time) has passed by the margin: a request that reaches
  the matching engine later is refused, so only then is "not found" proof (``not_placed``).
* If a "never placed" order shows up after all (a clock far off, a venue that broke its word), it
  moves on to what it really is, and the journal says so loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from controller.venues import OrderReport, OrderStatus, Side


class OrderState(StrEnum):
    RECOMMENDED = "recommended"  # dry run: advice only, never sent
    DENIED = "denied"  # refused by the pre-trade gate: never sent
    SENDING = "sending"  # the intent is in the journal; the request may be on its way
    UNKNOWN = "unknown"  # sent, outcome not known: it may have reached the matching engine
    OPEN = "open"  # acknowledged, resting (or partly filled)
    FILLED = "filled"
    CANCELLED = "cancelled"  # cancelled, possibly after a partial fill
    REJECTED = "rejected"  # the venue said no: never placed
    NOT_PLACED = "not_placed"  # proven never placed: not found after valid_until
    UNRESOLVED = "unresolved"  # written by a levctl without a write-ahead journal (schema < 4)


IN_FLIGHT = frozenset({OrderState.SENDING, OrderState.UNKNOWN, OrderState.OPEN})
FINAL = frozenset(set(OrderState) - IN_FLIGHT)

_S = OrderState
TRANSITIONS: frozenset[tuple[OrderState, OrderState]] = frozenset(
    {
        (_S.SENDING, _S.OPEN),
        (_S.SENDING, _S.FILLED),
        (_S.SENDING, _S.CANCELLED),
        (_S.SENDING, _S.REJECTED),
        (_S.SENDING, _S.UNKNOWN),  # timeout, reset, 5xx, unreadable reply; or a restart finding nothing
        (_S.SENDING, _S.NOT_PLACED),  # a restart after valid_until: the crash came before it left
        (_S.UNKNOWN, _S.UNKNOWN),  # another lookup that found nothing
        (_S.UNKNOWN, _S.OPEN),
        (_S.UNKNOWN, _S.FILLED),
        (_S.UNKNOWN, _S.CANCELLED),
        (_S.UNKNOWN, _S.REJECTED),
        (_S.UNKNOWN, _S.NOT_PLACED),
        (_S.OPEN, _S.OPEN),  # a partial fill, or a lookup that found nothing new
        (_S.OPEN, _S.FILLED),
        (_S.OPEN, _S.CANCELLED),
        (_S.OPEN, _S.REJECTED),
        (_S.NOT_PLACED, _S.OPEN),  # it appeared after all
        (_S.NOT_PLACED, _S.FILLED),
        (_S.NOT_PLACED, _S.CANCELLED),
    }
)

_FROM_VENUE = {
    OrderStatus.OPEN: OrderState.OPEN,
    OrderStatus.FILLED: OrderState.FILLED,
    OrderStatus.CANCELLED: OrderState.CANCELLED,
    OrderStatus.REJECTED: OrderState.REJECTED,
}


class InvalidTransition(ValueError):
    """An outcome that the order's current state does not allow (a bug, or a venue breaking its word)."""


@dataclass(frozen=True)
class TrackedOrder:
    """One of our orders as the journal knows it."""

    label: str
    run_id: int
    cycle_n: int
    instrument: str
    side: Side
    amount: float  # venue units
    reduce_only: bool
    state: OrderState
    created_at: datetime  # when the intent was recorded (the controller's clock)
    updated_at: datetime
    notional_usd: float = 0.0
    delta_usd_change: float = 0.0
    valid_until: datetime | None = None  # exchange time after which the matching engine refuses it
    position_before: float | None = None  # the exchange's position in the instrument at the intent
    exchange_order_id: str | None = None
    filled_amount: float = 0.0
    avg_price: float | None = None
    fee_coin: float | None = None
    lookups: int = 0  # lookups that found nothing
    error: str | None = None
    resolved_by: str | None = None  # reply, id, label, trades, position, valid_until, gate, dry-run …
    row_id: int | None = None  # the journal's row

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT

    @property
    def signed_amount(self) -> float:
        return self.amount if self.side is Side.BUY else -self.amount

    @property
    def signed_unfilled(self) -> float:
        """What could still change the position: the whole amount while the outcome is unknown."""
        if self.state in (OrderState.SENDING, OrderState.UNKNOWN):
            return self.signed_amount
        if self.state is OrderState.OPEN:
            remaining = max(self.amount - self.filled_amount, 0.0)
            return remaining if self.side is Side.BUY else -remaining
        return 0.0


# --------------------------------------------------------------------- what can be learnt of an order
@dataclass(frozen=True)
class Reported:
    """The venue reported the order: in a reply to the send, or to a lookup (by id, label, trades …)."""

    status: OrderStatus
    filled_amount: float
    avg_price: float | None
    fee_coin: float | None
    order_id: str | None
    via: str

    @classmethod
    def from_report(cls, report: OrderReport, *, via: str) -> Reported:
        return cls(
            report.status, report.filled_amount, report.average_price, report.fee_coin, report.order_id, via
        )


@dataclass(frozen=True)
class Refused:
    """An error reply: the venue refused the request, nothing was placed."""

    message: str


@dataclass(frozen=True)
class Ambiguous:
    """No answer to trust: a timeout, a reset, a 5xx, a reply we could not read."""

    message: str


@dataclass(frozen=True)
class NotFound:
    """A lookup (by label, then by its fills) found nothing; ``server_time`` is the exchange's clock."""

    server_time: datetime
    margin: timedelta  # how far past valid_until before "not found" is proof (skew and latency)


Outcome = Reported | Refused | Ambiguous | NotFound


def advance(order: TrackedOrder, outcome: Outcome, *, at: datetime) -> TrackedOrder:
    """The order after ``outcome``; raises :class:`InvalidTransition` where the state forbids it."""
    if isinstance(outcome, Reported):
        target = _FROM_VENUE[outcome.status]
        changes: dict[str, object] = {
            "filled_amount": outcome.filled_amount,
            "resolved_by": outcome.via,
        }
        if outcome.order_id:
            changes["exchange_order_id"] = outcome.order_id
        if outcome.avg_price is not None:
            changes["avg_price"] = outcome.avg_price
        if outcome.fee_coin is not None:
            changes["fee_coin"] = outcome.fee_coin
    elif isinstance(outcome, Refused):
        target, changes = OrderState.REJECTED, {"error": outcome.message, "resolved_by": "reply"}
    elif isinstance(outcome, Ambiguous):
        target, changes = OrderState.UNKNOWN, {"error": outcome.message}
    else:
        target, changes = _not_found(order, outcome)
    _check(order.state, target)
    return replace(order, state=target, updated_at=at, **changes)  # type: ignore[arg-type]


def _not_found(order: TrackedOrder, outcome: NotFound) -> tuple[OrderState, dict[str, object]]:
    if order.state is OrderState.OPEN:  # acknowledged orders do not vanish: keep looking
        return OrderState.OPEN, {"lookups": order.lookups + 1}
    expired = order.valid_until is not None and outcome.server_time > order.valid_until + outcome.margin
    if expired:
        return OrderState.NOT_PLACED, {"lookups": order.lookups + 1, "resolved_by": "valid_until"}
    return OrderState.UNKNOWN, {"lookups": order.lookups + 1}


def _check(source: OrderState, target: OrderState) -> None:
    if (source, target) not in TRANSITIONS:
        raise InvalidTransition(f"an order cannot go from {source.value} to {target.value}")


def describe(order: TrackedOrder) -> str:
    """One line for events and reasons: ``lv-12ab-7-0 buy 10,000 BTC-PERPETUAL unknown since 08:00:01``."""
    since = order.created_at.strftime("%Y-%m-%d %H:%M:%S")
    looked = f", looked up {order.lookups} time(s)" if order.lookups else ""
    return (
        f"{order.label} {order.side.value} {order.amount:,.10g} {order.instrument} "
        f"{order.state.value} since {since} UTC{looked}"
    )
