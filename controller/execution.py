"""Execution: the way out of a decision — recommendations, or orders that are never sent twice.

* :class:`DryRunExecutor` holds no venue at all: it can only record recommendations, so a dry run
  cannot send an order by construction (the loop gives it nothing to send with).
* :class:`OrderExecutor` sends each planned order with a deterministic label
  ``{prefix}-{run}-{cycle}-{leg}`` (see :func:`order_label`).  When the outcome is unknown (a timeout
  or any temporary error),
  it looks the order up by label after a grace period and never resends it in that cycle: an
  order is sent at most once per label, so no order is ever duplicated.  Orders are followed to a
  final state (filled, cancelled, rejected) within a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.risk.policy import Decision, PlannedOrder
from controller.venues import (
    OrderRejectedError,
    OrderRequest,
    OrderState,
    OrderType,
    TemporaryVenueError,
    Venue,
    VenueError,
)


@dataclass(frozen=True)
class OrderOutcome:
    """What became of one planned order (the row the journal writes)."""

    label: str
    planned: PlannedOrder
    status: str  # recommended, filled, open, cancelled, rejected, unknown, error
    state: OrderState | None = None
    error: str | None = None


@dataclass
class ExecutionReport:
    outcomes: list[OrderOutcome] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (level, kind, message)


def order_label(prefix: str, run_key: str, cycle: int, leg: int) -> str:
    """``{prefix}-{run}-{cycle}-{leg}``; the run key is the run id plus its start time in base 36, so
    labels stay unique on an exchange even when a fresh decision log starts counting runs at 1 again."""
    return f"{prefix}-{run_key}-{cycle}-{leg}"


class DryRunExecutor:
    """Records the decision's orders as recommendations. It has no venue: nothing can be sent."""

    sends_orders = False

    def execute(self, decision: Decision, *, labels: list[str]) -> ExecutionReport:
        report = ExecutionReport()
        for label, planned in zip(labels, decision.orders, strict=True):
            report.outcomes.append(OrderOutcome(label, planned, "recommended"))
        return report


class OrderExecutor:
    """Sends orders to a venue (testnet, live, or the simulator's paper account)."""

    sends_orders = True

    def __init__(
        self,
        venue: Venue,
        *,
        order_timeout_s: float,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        grace_s: float = 1.0,
        poll_s: float = 0.25,
    ) -> None:
        self.venue = venue
        self.order_timeout_s = order_timeout_s
        self.sleep = sleep
        self.monotonic = monotonic
        self.grace_s = grace_s
        self.poll_s = poll_s

    def execute(self, decision: Decision, *, labels: list[str]) -> ExecutionReport:
        report = ExecutionReport()
        for label, planned in zip(labels, decision.orders, strict=True):
            report.outcomes.append(self._send_once(label, planned, report))
        return report

    def _send_once(self, label: str, planned: PlannedOrder, report: ExecutionReport) -> OrderOutcome:
        request = OrderRequest(
            instrument=planned.instrument,
            side=planned.side,
            amount=planned.amount,
            label=label,
            type=OrderType.MARKET,
            reduce_only=planned.reduce_only,
        )
        try:
            state = self.venue.place_order(request)
        except OrderRejectedError as exc:
            report.events.append(("warning", "order_rejected", f"{label}: {exc}"))
            return OrderOutcome(label, planned, "rejected", error=str(exc))
        except TemporaryVenueError as exc:
            report.events.append(
                ("warning", "order_outcome_unknown", f"{label}: {exc}; looking it up by label")
            )
            return self._recover(label, planned, report, str(exc))
        except VenueError as exc:
            report.events.append(("error", "order_error", f"{label}: {exc}"))
            return OrderOutcome(label, planned, "error", error=str(exc))
        return self._follow(label, planned, state, report)

    def _recover(
        self, label: str, planned: PlannedOrder, report: ExecutionReport, error: str
    ) -> OrderOutcome:
        """After an ambiguous failure: find the order by label; never send it again."""
        self.sleep(self.grace_s)
        try:
            state = self.venue.get_order(label=label)
        except VenueError as exc:
            report.events.append(("warning", "order_lookup_failed", f"{label}: {exc}"))
            return OrderOutcome(label, planned, "unknown", error=error)
        if state is None:
            report.events.append(
                (
                    "warning",
                    "order_not_placed",
                    f"{label}: not found on the venue; not resent, next cycle re-decides",
                )
            )
            return OrderOutcome(label, planned, "unknown", error=error)
        report.events.append(
            ("info", "order_found_by_label", f"{label}: found as {state.order_id} ({state.status})")
        )
        return self._follow(label, planned, state, report)

    def _follow(
        self, label: str, planned: PlannedOrder, state: OrderState, report: ExecutionReport
    ) -> OrderOutcome:
        deadline = self.monotonic() + self.order_timeout_s
        while not state.status.final and self.monotonic() < deadline:
            self.sleep(self.poll_s)
            try:
                found = self.venue.get_order(order_id=state.order_id)
            except TemporaryVenueError as exc:
                report.events.append(("warning", "order_poll_failed", f"{label}: {exc}"))
                continue
            if found is not None:
                state = found
        if not state.status.final:
            report.events.append(
                ("warning", "order_not_final", f"{label}: still {state.status} after the deadline")
            )
        return OrderOutcome(label, planned, state.status.value, state=state)
