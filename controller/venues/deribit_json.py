"""Turn Deribit-shaped replies into the venue protocol's data (shared by the ccxt and sim venues).

Every figure the controller relies on is checked: a missing, non-numeric or non-finite value
raises :class:`MalformedReplyError` naming the field and the instrument, so bad exchange data is
never priced as if it were good.  Deribit quotes ``mark_iv`` in percent; here it becomes a decimal.

What the real replies hold (tests/fixtures/deribit/FINDINGS.md) decides where each figure is read:

* an option position carries neither its forward nor its mark IV: they come from its line of the
  book summary or, for an option missing from it, from its ticker (:mod:`.option_marks`);
* an order's fee is the sum of its trades' ``fee`` (signed: a maker rebate is negative); the
  order itself carries no ``commission`` in current replies;
* ``floating_profit_loss`` is the P&L since the last daily settlement, ``total_profit_loss`` the
  P&L since entry;
* ``estimated_delivery_price`` may be the string ``"expired"``, and book-summary lines have no
  ``index_price``;
* a price is on the tick in force at that price (``tick_size_steps``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from controller.venues.base import (
    AccountSnapshot,
    ChainQuote,
    ExchangeGreeks,
    InstrumentSpec,
    PositionSnapshot,
    Quote,
)
from controller.venues.errors import MalformedReplyError, UnknownInstrumentError
from controller.venues.option_marks import has_option_marks, implied_mark_ivs, mark_iv_from_price
from pricing import InstrumentNameError, IVReason, Option, parse_deribit_name

Json = Mapping[str, Any]
# get_volatility_index_data's units are not published (FINDINGS §5): the method's example reads as
# a fraction (0.21), the index channel's and the DVOL history as percent (129.36, 55).  A close at
# or above this is percent, below it a fraction: no market has a 300 % index or a 3 % one.
VOL_INDEX_PERCENT_FROM = 3.0


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
    out = _finite_floats(values)
    if out is not None:
        return out
    for value, field in zip(values, fields, strict=True):
        number(value, field if name is None else f"{name}.{field}")
    raise AssertionError("unreachable: a value failed in bulk but passed alone")  # pragma: no cover


def _finite_floats(values: list[Any]) -> list[float] | None:
    """The values as floats when every one is a finite number, else None (one pass, no names)."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return out if all(map(math.isfinite, out)) else None


def index_of(info: Json, name: str) -> float | None:
    """The index of a ticker: ``index_price``, else ``estimated_delivery_price`` — which is the
    string ``"expired"`` on an expiring instrument (then there is none); book lines have neither."""
    for key in ("index_price", "estimated_delivery_price"):
        value = info.get(key)
        if value is not None and value != "expired":
            return number(value, f"{name}.{key}")
    return None


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
        tick_size_steps=_tick_steps(info.get("tick_size_steps"), name),
    )


def _tick_steps(raw: Any, name: str) -> tuple[tuple[float, float], ...]:
    """``tick_size_steps``: a list of ``{above_price, tick_size}`` (the schema's one object accepted too)."""
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list):
        raise MalformedReplyError(f"exchange reply: {name}.tick_size_steps is not a list ({raw!r})")
    steps = []
    for i, step in enumerate(items):
        what = f"{name}.tick_size_steps[{i}]"
        if not isinstance(step, Mapping):
            raise MalformedReplyError(f"exchange reply: {what} is not an object ({step!r})")
        steps.append((number(step.get("above_price"), f"{what}.above_price"), _tick(step, what)))
    return tuple(sorted(steps))


def _tick(step: Json, what: str) -> float:
    tick = number(step.get("tick_size"), f"{what}.tick_size")
    if tick <= 0:
        raise MalformedReplyError(f"exchange reply: {what}.tick_size must be positive ({tick!r})")
    return tick


def parse_quote(info: Json, observed_at: datetime) -> Quote:
    name = str(info.get("instrument_name"))
    iv = info.get("mark_iv")
    return Quote(
        name=name,
        mark_price=number(info.get("mark_price"), f"{name}.mark_price"),
        best_bid=_positive_or_none(info.get("best_bid_price", info.get("bid_price")), f"{name}.bid"),
        best_ask=_positive_or_none(info.get("best_ask_price", info.get("ask_price")), f"{name}.ask"),
        index_price=index_of(info, name),
        underlying_price=optional_number(info.get("underlying_price"), f"{name}.underlying_price"),
        mark_iv=None if iv is None else number(iv, f"{name}.mark_iv") / 100.0,
        observed_at=observed_at,
    )


def parse_chain(summaries: Iterable[Json], fallback_time: datetime) -> tuple[ChainQuote, ...]:
    """Options with a forward and a mark IV (given, or implied by the mark price when the line has
    none: :mod:`.option_marks`); lines without a quote yet, or whose mark implies no IV, are left out.

    The figures are read a column at a time (a chain has hundreds to thousands of lines each cycle);
    only when a column holds something that is not a finite number are its lines read one by one, to
    name the first bad figure."""
    lines: list[tuple[str, Option, Json]] = []
    for info in summaries:
        name = str(info.get("instrument_name", ""))
        try:
            instrument = parse_deribit_name(name)
        except InstrumentNameError:
            continue
        if isinstance(instrument, Option) and has_option_marks(info):
            lines.append((name, instrument, info))
    if not lines:
        return ()
    raw_ivs = [info.get("mark_iv") for _, _, info in lines]
    has_iv = np.fromiter((v is not None for v in raw_ivs), dtype=bool, count=len(lines))
    try:
        forward = np.array([info.get("underlying_price") for _, _, info in lines], dtype=float)
        mark = np.array([info.get("mark_price") for _, _, info in lines], dtype=float)
        given = np.array([1.0 if v is None else v for v in raw_ivs], dtype=float)
        readable = bool(np.isfinite(forward).all() and np.isfinite(mark).all() and np.isfinite(given).all())
    except (TypeError, ValueError):
        readable = False
    if not readable:
        for name, _, info in lines:  # raises, naming the line and the figure
            iv = info.get("mark_iv")
            raw = [info.get("underlying_price"), info.get("mark_price")] + ([] if iv is None else [iv])
            numbers(raw, name, _CHAIN_FIELDS[: len(raw)])
    keep = np.flatnonzero((forward > 0) & (~has_iv | (given > 0))).tolist()
    stamps: dict[Any, datetime] = {}  # a reply's lines share a few timestamps
    rows: list[_ChainRow] = []
    columns = (forward[keep].tolist(), mark[keep].tolist(), given[keep].tolist(), has_iv[keep].tolist())
    for i, f, m, v, iv_given in zip(keep, *columns, strict=True):
        name, instrument, info = lines[i]
        stamp = info.get("creation_timestamp")
        observed = stamps.get(stamp)
        if observed is None:
            observed = stamps[stamp] = (
                fallback_time if stamp is None else from_ms(stamp, f"{name}.creation_timestamp")
            )
        rows.append((name, instrument, f, m, v / 100.0 if iv_given else None, observed))
    ivs = _chain_ivs(rows)
    return tuple(
        ChainQuote(name, o.expiry, o.strike, o.is_call, forward, iv, mark, observed)  # positional: 2x faster
        for (name, o, forward, mark, _, observed), iv in zip(rows, ivs, strict=True)
        if iv is not None
    )


_ChainRow = tuple[str, Option, float, float, float | None, datetime]  # name, option, F, mark, IV, time


def _chain_ivs(rows: Sequence[_ChainRow]) -> list[float | None]:
    """Each row's mark IV: the line's own, or implied (in one vectorised pass) from its mark."""
    ivs: list[float | None] = [row[4] for row in rows]
    missing = [i for i, iv in enumerate(ivs) if iv is None]
    if missing:
        vol, reason = implied_mark_ivs(
            [rows[i][1] for i in missing],
            mark_coin=[rows[i][3] for i in missing],
            forward=[rows[i][2] for i in missing],
            as_of=[rows[i][5] for i in missing],
            inverse=True,
        )
        for i, v, r in zip(missing, vol.tolist(), reason.tolist(), strict=True):
            ivs[i] = v if r == IVReason.OK and v > 0 else None
    return ivs


_CHAIN_FIELDS = ("underlying_price", "mark_price", "mark_iv")
_POSITION_FIELDS = ("size", "average_price", "mark_price", "index_price", "realized_profit_loss")
_POSITION_OPTIONAL = ("delta", "gamma", "vega", "theta", "floating_profit_loss", "total_profit_loss")


def parse_position(info: Json, line: Json | None, observed_at: datetime) -> PositionSnapshot:
    """A position; an option's forward and mark IV come from ``line`` (its book-summary line or its
    ticker: Deribit's positions carry neither), or from the position itself if it has them."""
    name = str(info.get("instrument_name"))
    try:
        instrument = parse_deribit_name(name)
    except InstrumentNameError as exc:
        raise UnknownInstrumentError(
            f"the account holds {name!r}, an instrument the controller cannot price"
        ) from exc
    get = info.get
    optional = [get(f) for f in _POSITION_OPTIONAL]
    raw = [
        get("size"),
        get("average_price", 0.0),
        get("mark_price"),
        get("index_price"),
        get("realized_profit_loss", 0.0),
    ]
    values = _checked(raw + [v for v in optional if v is not None], name, optional)
    size, average, mark, index, rpl = values[:5]
    figures: list[float | None] = list(values[5:])
    if len(figures) < len(optional):  # some left out (Deribit's positions have them all)
        given = iter(figures)
        figures = [None if v is None else next(given) for v in optional]
    delta, gamma, vega, theta, session, total = figures
    underlying = mark_iv = None
    if isinstance(instrument, Option):
        underlying, mark_iv = _option_marks(instrument, info, line, observed_at)
    return PositionSnapshot(
        name=name,
        instrument=instrument,
        size=size,
        average_price=average,
        mark_price=mark,
        index_price=index,
        underlying_price=underlying,
        mark_iv=mark_iv,
        exchange_greeks=ExchangeGreeks(delta, gamma, vega, theta),
        unrealized_pnl=(total if total is not None else session or 0.0),  # since entry
        realized_pnl=rpl,
        observed_at=observed_at,
        session_pnl=session,
    )


def _held(info: Json) -> bool:
    """A position line with a size other than zero (a bad size is refused, naming it)."""
    size = info.get("size", 0.0)
    if type(size) is float or type(size) is int:  # a NaN or infinite size is named by parse_position
        return size != 0
    return numbers([size], str(info.get("instrument_name")), ("size",))[0] != 0.0


def _checked(values: list[Any], name: str, optional: list[Any]) -> list[float]:
    """A position's figures as floats in one pass; else the first bad one named (``name.field``)."""
    out = _finite_floats(values)
    if out is not None:
        return out
    fields = _POSITION_FIELDS + tuple(
        f for f, v in zip(_POSITION_OPTIONAL, optional, strict=True) if v is not None
    )
    return numbers(values, name, fields)  # raises, naming the field


def _option_marks(
    option: Option, info: Json, line: Json | None, observed_at: datetime
) -> tuple[float, float]:
    """(forward, mark IV decimal) of an option position: from its line, else from its own reply."""
    source = line if has_option_marks(line) else info
    assert source is not None
    name = option.name
    iv = source.get("mark_iv")
    figure = ("mark_price", "underlying_price") if iv is None else ("mark_iv", "underlying_price")
    value, forward = numbers([source.get(figure[0]), source.get("underlying_price")], name, figure)
    if forward <= 0:
        raise MalformedReplyError(f"exchange reply: {name}.underlying_price is not positive ({forward!r})")
    if iv is not None:
        return forward, value / 100.0
    mark = value
    stamp = source.get("timestamp", source.get("creation_timestamp"))
    as_of = observed_at if stamp is None else from_ms(stamp, f"{name}.timestamp")
    return forward, mark_iv_from_price(option, mark_coin=mark, forward=forward, as_of=as_of)


def options_without_marks(positions: Iterable[Json], book: Iterable[Json] | None) -> list[str]:
    """The option positions whose forward and mark IV the book summary does not give (none read, or
    the option missing from it): each needs its ticker, one request apiece."""
    lines = {} if book is None else {str(b.get("instrument_name")): b for b in book}
    names = []
    for p in positions:
        name = str(p.get("instrument_name"))
        try:
            is_option = isinstance(parse_deribit_name(name), Option)
        except InstrumentNameError:
            continue  # refused by name when the snapshot is built
        if is_option and p.get("size") not in (0, 0.0) and not has_option_marks(lines.get(name)):
            names.append(name)
    return names


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
    option_tickers: Mapping[str, Json] | None = None,
    server_times: Mapping[str, datetime],
    taken_at: datetime,
    rest_calls: int,
) -> AccountSnapshot:
    """Assemble one account snapshot from the replies of one cycle's calls.

    ``book`` (the currency's book summary) gives the option chain and the options' forwards and
    mark IVs; None when the chain was not read (then the chain is empty).  ``option_tickers`` are
    the tickers of the option positions the book summary does not cover
    (:func:`options_without_marks`).
    """
    book = None if book is None else list(book)
    lines: dict[str, Json] = {} if book is None else {str(b.get("instrument_name")): b for b in book}
    lines.update(option_tickers or {})
    hedge_time = (
        from_ms(hedge_ticker.get("timestamp"), "hedge ticker timestamp")
        if "timestamp" in hedge_ticker
        else (server_times["ticker"])
    )
    hedge = parse_quote(hedge_ticker, hedge_time)
    if hedge.index_price is None or hedge.index_price <= 0:
        raise MalformedReplyError(f"exchange reply: {hedge.name} ticker has no positive index_price")
    parsed_positions = tuple(
        parse_position(p, lines.get(str(p.get("instrument_name"))), server_times["positions"])
        for p in positions
        if _held(p)
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
    """The latest close of ``get_volatility_index_data`` (``data`` rows: ms, open, high, low, close),
    as a decimal whichever unit it came in (:data:`VOL_INDEX_PERCENT_FROM`)."""
    if reply is None:
        return {}
    rows = reply.get("data") or []
    if not rows:
        raise MalformedReplyError("exchange reply: the volatility index has no data")
    times = [row[0] if isinstance(row, list) and row else None for row in rows]
    if all(type(t) is int for t in times):  # the usual reply (integer ms): compared as they are
        last = rows[max(range(len(rows)), key=lambda i: int(times[i] or 0))]
    else:
        last = max(rows, key=lambda row: number(row[0], "volatility index time"))
    close = number(last[4], "volatility index close")
    if close <= 0:
        raise MalformedReplyError(f"exchange reply: the volatility index close is not positive ({close!r})")
    return {
        "vol_index": close / 100.0 if close >= VOL_INDEX_PERCENT_FROM else close,
        "vol_index_observed_at": from_ms(last[0], "volatility index time"),
    }


def _positive_or_none(value: Any, what: str) -> float | None:
    parsed = optional_number(value, what)
    return parsed if parsed is not None and parsed > 0 else None
