"""Deribit orders and trades as the venue protocol's reports (shared by the ccxt and sim venues).

An order's fee is its trades' (``trades[].fee``, signed: a maker rebate is negative): current
replies carry no ``commission`` on the order (only 2019-era ones do; tests/fixtures/deribit/
FINDINGS.md §2).  A reply without trades (``get_order_state``, open-order lists) leaves the fee
unknown (None) when something filled; the venue then reads ``get_user_trades_by_order``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.venues.base import OrderReport, OrderStatus, OrderType, Side, TradeReport
from controller.venues.deribit_json import from_ms, number
from controller.venues.errors import MalformedReplyError

Json = Mapping[str, Any]
_STATUS = {
    "open": OrderStatus.OPEN,
    "untriggered": OrderStatus.OPEN,
    "triggered": OrderStatus.OPEN,  # a trigger order that fired: now a live order
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}


def parse_order(info: Json, trades: Sequence[Json] | None = None) -> OrderReport:
    """An order.  Its fee (signed, positive a cost) is the sum of ``trades``' fees — the reply's
    ``trades``, or those ccxt puts in the order (``info["trades"]``) — else the 2019-era order's
    ``commission``; None when the reply gives neither (look it up by the order's trades)."""
    order_id = str(info.get("order_id"))
    state = str(info.get("order_state"))
    if state not in _STATUS:
        raise MalformedReplyError(f"exchange reply: order {order_id} has unknown state {state!r}")
    price = info.get("price")
    average = info.get("average_price")
    return OrderReport(
        order_id=order_id,
        label=info.get("label") or None,
        instrument=str(info.get("instrument_name")),
        side=Side(str(info.get("direction"))),
        type=OrderType.LIMIT if info.get("order_type") == "limit" else OrderType.MARKET,
        amount=number(info.get("amount"), f"order {order_id} amount"),
        filled_amount=number(info.get("filled_amount", 0.0), f"order {order_id} filled_amount"),
        average_price=None
        if average in (None, 0, 0.0)
        else number(average, f"order {order_id} average_price"),
        price=None if price in (None, "market_price") else number(price, f"order {order_id} price"),
        status=_STATUS[state],
        reduce_only=bool(info.get("reduce_only", False)),
        post_only=bool(info.get("post_only", False)),
        fee_coin=_order_fee(info, trades, order_id),
        created_at=from_ms(info.get("creation_timestamp"), f"order {order_id} creation_timestamp"),
        updated_at=from_ms(
            info.get("last_update_timestamp", info.get("creation_timestamp")), f"order {order_id} update"
        ),
        info=dict(info),
    )


def _order_fee(info: Json, trades: Sequence[Json] | None, order_id: str) -> float | None:
    if trades is None and isinstance(info.get("trades"), list):
        trades = info["trades"]
    if trades is not None:
        return trades_fee(trades, f"order {order_id}")
    if info.get("commission") is not None:
        return number(info["commission"], f"order {order_id} commission")
    if number(info.get("filled_amount", 0.0), f"order {order_id} filled_amount") == 0.0:
        return 0.0  # nothing traded, nothing charged
    return None


def trades_fee(trades: Sequence[Json], what: str) -> float:
    """Σ of the trades' ``fee`` (signed: a maker rebate is negative)."""
    return sum(number(t.get("fee", 0.0), f"{what} trade {t.get('trade_id')} fee") for t in trades)


def parse_trade(info: Json) -> TradeReport:
    """One of the account's trades (``get_user_trades_by_*``); the fee keeps its sign (rebates < 0)."""
    trade_id = str(info.get("trade_id"))
    direction = str(info.get("direction"))
    if direction not in ("buy", "sell"):
        raise MalformedReplyError(f"exchange reply: trade {trade_id} has direction {direction!r}")
    return TradeReport(
        trade_id=trade_id,
        order_id=str(info.get("order_id")),
        label=info.get("label") or None,
        instrument=str(info.get("instrument_name")),
        side=Side(direction),
        amount=number(info.get("amount"), f"trade {trade_id} amount"),
        price=number(info.get("price"), f"trade {trade_id} price"),
        fee_coin=number(info.get("fee", 0.0), f"trade {trade_id} fee"),
        time=from_ms(info.get("timestamp"), f"trade {trade_id} timestamp"),
    )
