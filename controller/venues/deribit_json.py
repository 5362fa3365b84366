"""Turn Deribit-shaped replies into the venue protocol's data (shared by the ccxt and sim venues).

Every figure the controller relies on is checked: a missing, non-numeric or non-finite value
raises :class:`MalformedReplyError` naming the field and the instrument, so bad exchange data is
never priced as if it were good.  Deribit quotes ``mark_iv`` in percent; here it becomes a decimal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from controller.venues.base import (
    AccountSnapshot,
    ChainQuote,
    ExchangeGreeks,
    InstrumentSpec,
    OrderReport,
    OrderStatus,
    OrderType,
    PositionSnapshot,
    Quote,
    Side,
    TradeReport,
)
from controller.venues.errors import MalformedReplyError, UnknownInstrumentError
from pricing import InstrumentNameError, Option, parse_deribit_name

Json = Mapping[str, Any]
_STATUS = {
    "open": OrderStatus.OPEN,
    "untriggered": OrderStatus.OPEN,
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}


def from_ms(value: Any, what: str) -> datetime:
    return datetime.fromtimestamp(number(value, what) / 1000.0, UTC)


def from_us(value: Any, what: str) -> datetime:
    return datetime.fromtimestamp(number(value, what) / 1e6, UTC)


def number(value: Any, what: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise MalformedReplyError(f"exchange reply: {what} is not a number ({value!r})") from None
    if not math.isfinite(result):
        raise MalformedReplyError(f"exchange reply: {what} is not finite ({value!r})")
    return result


def optional_number(value: Any, what: str) -> float | None:
    return None if value is None else number(value, what)


def numbers(values: list[Any], name: str | None, fields: tuple[str, ...] | list[str]) -> list[float]:
    """Many figures of one instrument at once: the values of :func:`number`, checked in one pass.

    Only when something is wrong are they checked one by one, to name the first bad field
    (``name.field``, or the field alone when ``name`` is None).
    """
    try:
        out = [float(v) for v in values]
        if all(map(math.isfinite, out)):
            return out
    except (TypeError, ValueError):
        pass
    for value, field in zip(values, fields, strict=True):
        number(value, field if name is None else f"{name}.{field}")
    raise AssertionError("unreachable: a value failed in bulk but passed alone")  # pragma: no cover


def parse_instrument(info: Json) -> InstrumentSpec | None:
    """An instrument listing; None for kinds the controller does not trade (combos, spot)."""
    name = str(info.get("instrument_name", ""))
    try:
        instrument = parse_deribit_name(name)
    except InstrumentNameError:
        return None
    return InstrumentSpec(
        name=name,
        instrument=instrument,
        tick_size=number(info.get("tick_size"), f"{name}.tick_size"),
        min_amount=number(info.get("min_trade_amount"), f"{name}.min_trade_amount"),
        contract_size=number(info.get("contract_size"), f"{name}.contract_size"),
        inverse=str(info.get("settlement_currency")) == instrument.underlying,
        maker_fee=number(info.get("maker_commission", 0.0), f"{name}.maker_commission"),
        taker_fee=number(info.get("taker_commission", 0.0), f"{name}.taker_commission"),
    )


def parse_quote(info: Json, observed_at: datetime) -> Quote:
    name = str(info.get("instrument_name"))
    iv = info.get("mark_iv")
    return Quote(
        name=name,
        mark_price=number(info.get("mark_price"), f"{name}.mark_price"),
        best_bid=_positive_or_none(info.get("best_bid_price", info.get("bid_price")), f"{name}.bid"),
        best_ask=_positive_or_none(info.get("best_ask_price", info.get("ask_price")), f"{name}.ask"),
        index_price=optional_number(
            info.get("index_price", info.get("estimated_delivery_price")), f"{name}.index_price"
        ),
        underlying_price=optional_number(info.get("underlying_price"), f"{name}.underlying_price"),
        mark_iv=None if iv is None else number(iv, f"{name}.mark_iv") / 100.0,
        observed_at=observed_at,
    )


def parse_chain(summaries: Iterable[Json], fallback_time: datetime) -> tuple[ChainQuote, ...]:
    """Options with a usable mark IV and forward; others (no quote yet) are left out."""
    chain = []
    stamps: dict[Any, datetime] = {}  # a reply's lines share a few timestamps
    for info in summaries:
        name = str(info.get("instrument_name", ""))
        try:
            instrument = parse_deribit_name(name)
        except InstrumentNameError:
            continue
        if not isinstance(instrument, Option):
            continue
        iv, forward = info.get("mark_iv"), info.get("underlying_price")
        if iv is None or forward is None:
            continue
        iv_value, forward_value, mark = numbers([iv, forward, info.get("mark_price")], name, _CHAIN_FIELDS)
        if iv_value <= 0 or forward_value <= 0:
            continue
        stamp = info.get("creation_timestamp")
        observed = stamps.get(stamp)
        if observed is None:
            observed = stamps[stamp] = (
                fallback_time if stamp is None else from_ms(stamp, f"{name}.creation_timestamp")
            )
        chain.append(
            ChainQuote(
                name=name,
                expiry=instrument.expiry,
                strike=instrument.strike,
                is_call=instrument.is_call,
                underlying_price=forward_value,
                mark_iv=iv_value / 100.0,
                mark_price=mark,
                observed_at=observed,
            )
        )
    return tuple(chain)


_CHAIN_FIELDS = ("mark_iv", "underlying_price", "mark_price")
_POSITION_FIELDS = (
    "size",
    "average_price",
    "mark_price",
    "index_price",
    "floating_profit_loss",
    "realized_profit_loss",
)
_OPTION_FIELDS = ("underlying_price", "mark_iv", *_POSITION_FIELDS)
_POSITION_DEFAULTS = {"average_price": 0.0, "floating_profit_loss": 0.0, "realized_profit_loss": 0.0}
_GREEKS = ("delta", "gamma", "vega", "theta")


def parse_position(info: Json, summary: Json | None, observed_at: datetime) -> PositionSnapshot:
    """A position; an option's forward and mark IV come from ``summary`` (its book-summary line)
    when given, else from the position's own reply (the simulator's carries them, Deribit's does not)."""
    name = str(info.get("instrument_name"))
    try:
        instrument = parse_deribit_name(name)
    except InstrumentNameError as exc:
        raise UnknownInstrumentError(
            f"the account holds {name!r}, an instrument the controller cannot price"
        ) from exc
    raw = [info.get(f, _POSITION_DEFAULTS.get(f)) for f in _POSITION_FIELDS]
    fields: tuple[str, ...] = _POSITION_FIELDS
    is_option = isinstance(instrument, Option)
    if is_option:
        source = summary if summary is not None else info
        raw[:0] = (source.get("underlying_price"), source.get("mark_iv"))
        fields = _OPTION_FIELDS
    present = tuple(g for g in _GREEKS if info.get(g) is not None)
    values = numbers(raw + [info[g] for g in present], name, fields + present)  # all checked at once
    underlying, mark_iv = (values[0], values[1] / 100.0) if is_option else (None, None)
    size, average, mark, index, upl, rpl = values[2:8] if is_option else values[:6]
    greeks = dict(zip(present, values[len(fields) :], strict=True))
    return PositionSnapshot(
        name=name,
        instrument=instrument,
        size=size,
        average_price=average,
        mark_price=mark,
        index_price=index,
        underlying_price=underlying,
        mark_iv=mark_iv,
        exchange_greeks=ExchangeGreeks(**greeks),
        unrealized_pnl=upl,
        realized_pnl=rpl,
        observed_at=observed_at,
    )


def build_snapshot(
    *,
    venue: str,
    currency: str,
    summary: Json,
    positions: Iterable[Json],
    book: Iterable[Json] | None,
    hedge_ticker: Json,
    funding_rate_8h: float | None,
    vol_index: Json | None = None,
    server_times: Mapping[str, datetime],
    taken_at: datetime,
    rest_calls: int,
) -> AccountSnapshot:
    """Assemble one account snapshot from the replies of one cycle's calls.

    ``book`` (the currency's book summary) gives the option chain and the options' forwards and
    mark IVs; None when the chain was not read (then the chain is empty, and the positions' own
    replies must carry those figures, as the simulator's do).
    """
    book = None if book is None else list(book)
    by_name = {} if book is None else {str(b.get("instrument_name")): b for b in book}
    hedge_time = (
        from_ms(hedge_ticker.get("timestamp"), "hedge ticker timestamp")
        if "timestamp" in hedge_ticker
        else (server_times["ticker"])
    )
    hedge = parse_quote(hedge_ticker, hedge_time)
    if hedge.index_price is None or hedge.index_price <= 0:
        raise MalformedReplyError(f"exchange reply: {hedge.name} ticker has no positive index_price")
    parsed_positions = tuple(
        parse_position(p, by_name.get(str(p.get("instrument_name"))), server_times["positions"])
        for p in positions
        if number(p.get("size", 0.0), f"{p.get('instrument_name')}.size") != 0.0
    )
    equity, balance, initial, maintenance, available = numbers(
        [summary.get(f) for f in _ACCOUNT_FIELDS], None, [f"account {f}" for f in _ACCOUNT_FIELDS]
    )
    return AccountSnapshot(
        venue=venue,
        currency=currency,
        taken_at=taken_at,
        server_time=max(server_times.values()),
        equity_coin=equity,
        balance_coin=balance,
        initial_margin_coin=initial,
        maintenance_margin_coin=maintenance,
        available_funds_coin=available,
        index_price=hedge.index_price,
        index_observed_at=hedge.observed_at,
        positions=parsed_positions,
        hedge=hedge,
        chain=() if book is None else parse_chain(book, server_times["book"]),
        funding_rate_8h=funding_rate_8h,
        funding_observed_at=server_times.get("funding"),
        delta_total_coin=optional_number(summary.get("delta_total"), "account delta_total"),
        **_vol_index(vol_index),
        rest_calls=rest_calls,
    )


_ACCOUNT_FIELDS = ("equity", "balance", "initial_margin", "maintenance_margin", "available_funds")


def _vol_index(reply: Json | None) -> dict[str, Any]:
    """The latest close of ``get_volatility_index_data`` (``data`` rows: ms, open, high, low, close)."""
    if reply is None:
        return {}
    rows = reply.get("data") or []
    if not rows:
        raise MalformedReplyError("exchange reply: the volatility index has no data")
    last = max(rows, key=lambda row: row[0])
    return {
        "vol_index": number(last[4], "volatility index close") / 100.0,
        "vol_index_observed_at": from_ms(last[0], "volatility index time"),
    }


def parse_order(info: Json) -> OrderReport:
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
        fee_coin=abs(number(info.get("commission", 0.0), f"order {order_id} commission")),
        created_at=from_ms(info.get("creation_timestamp"), f"order {order_id} creation_timestamp"),
        updated_at=from_ms(
            info.get("last_update_timestamp", info.get("creation_timestamp")), f"order {order_id} update"
        ),
        info=dict(info),
    )


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


def _positive_or_none(value: Any, what: str) -> float | None:
    parsed = optional_number(value, what)
    return parsed if parsed is not None and parsed > 0 else None
