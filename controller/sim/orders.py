"""Orders on the simulated exchange: what a request must satisfy, and the book that keeps them.

Validation answers with Deribit's error codes: an amount that is not a whole number of lots is
10027 ``non_integer_contract_amount`` on futures and 10021 ``invalid_amount`` on options, a price off
the tick in force at that price (``tick_size_steps``) 10043, a bad argument 11029.  The
book keeps every order ever placed (an order is looked up by id or label long after it closed),
and an index of the open ones: an order only ever leaves "open", so the index is pruned as it is
read and advancing the clock costs O(open orders), not O(every order ever placed).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from datetime import datetime

from controller.sim.listing import Listed
from controller.sim.model import SimError, SimOrder


def validate_order(
    listed: Listed, direction: str, amount: float, order_type: str, price: float | None, label: str
) -> tuple[float, float | None]:
    """The amount rounded to the lot and the price to the tick (None for a market order), or SimError."""
    if direction not in ("buy", "sell"):
        raise SimError(11029, "invalid_arguments", reason=f"direction {direction!r}")
    if order_type not in ("market", "limit"):
        raise SimError(
            11029, "invalid_arguments", reason=f"type {order_type!r} is not supported by the simulator"
        )
    if len(label) > 64:
        raise SimError(11029, "invalid_arguments", reason="label longer than 64 characters")
    if not (amount > 0 and math.isfinite(amount)):
        raise SimError(10021, "invalid_amount", reason=str(amount))
    lots = amount / listed.min_amount
    if abs(lots - round(lots)) > 1e-6:
        reason = f"{amount} is not a multiple of {listed.min_amount}"
        if listed.kind == "future":
            raise SimError(10027, "non_integer_contract_amount", reason=reason)
        raise SimError(10021, "invalid_amount", reason=reason)
    amount = round(lots) * listed.min_amount
    if order_type != "limit":
        return amount, None
    if price is None or not (price > 0 and math.isfinite(price)):
        raise SimError(10023, "invalid_price", reason=str(price))
    tick = listed.tick_at(price)
    ticks = price / tick
    if abs(ticks - round(ticks)) > 1e-6:
        raise SimError(10043, "price_wrong_tick", reason=f"{price} is not a multiple of {tick}")
    return amount, round(ticks) * tick


def reduce_only_amount(listed: Listed, direction: str, amount: float, size: float) -> float:
    """A reduce-only order's amount, clipped to the position it reduces (in whole lots)."""
    reduces = (direction == "sell" and size > 0) or (direction == "buy" and size < 0)
    if not reduces:
        raise SimError(11030, "other_reject", reason="reduce_only order would not reduce the position")
    lots = math.floor(min(amount, abs(size)) / listed.min_amount + 1e-9)
    if lots == 0:
        raise SimError(10021, "invalid_amount", reason="reduce_only amount below the minimum")
    return lots * listed.min_amount


class OrderBook:
    """Every order of the account by id, with indexes by label and of the open ones."""

    def __init__(self, *, id_prefix: str = "") -> None:
        self.id_prefix = id_prefix
        self.orders: dict[str, SimOrder] = {}
        self._open: dict[str, SimOrder] = {}
        self._by_label: dict[str, list[SimOrder]] = {}
        self._ids = itertools.count(1)

    def create(
        self,
        *,
        label: str,
        name: str,
        direction: str,
        amount: float,
        order_type: str,
        price: float | None,
        post_only: bool,
        reduce_only: bool,
        now: datetime,
    ) -> SimOrder:
        order = SimOrder(
            f"{self.id_prefix}SIM-{next(self._ids)}",
            label,
            name,
            direction,
            amount,
            order_type,
            price,
            post_only,
            reduce_only,
            now,
            now,
        )
        self.orders[order.order_id] = order
        self._open[order.order_id] = order
        self._by_label.setdefault(label, []).append(order)
        return order

    def get(self, order_id: str) -> SimOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise SimError(10004, "order_not_found", reason=order_id)
        return order

    def by_label(self, label: str) -> list[SimOrder]:
        return list(self._by_label.get(label, ()))

    def open(self, *, name: str | None = None) -> list[SimOrder]:
        """Open orders in the order they were placed (optionally of one instrument)."""
        return [o for o in self._iter_open() if name is None or o.name == name]

    def has_open(self) -> bool:
        self._prune()
        return bool(self._open)

    def _iter_open(self) -> Iterator[SimOrder]:
        self._prune()
        return iter(list(self._open.values()))

    def _prune(self) -> None:
        """Drop the orders that have left "open" from the index: a pass over the open ones."""
        closed = [k for k, o in self._open.items() if o.state != "open"]
        for order_id in closed:
            del self._open[order_id]
