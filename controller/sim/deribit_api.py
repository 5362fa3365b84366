"""The Deribit v2 JSON-RPC subset that ccxt's ``deribit`` class uses, answered from the engine.

Dispatch and parameters here; the replies' shapes in :mod:`.replies`.  Query values arrive as
strings and are parsed here: a missing or malformed parameter is answered as Deribit does,
``-32602 "Invalid params"`` with ``data: {reason, param}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.sim.engine import SimExchange
from controller.sim.model import SimError
from controller.sim.replies import (
    ACCOUNT_FIELDS,
    account_json,
    book_summary_json,
    fees_json,
    flat_position_json,
    instrument_json,
    ms,
    order_json,
    position_json,
    ticker_json,
    trade_json,
)

__all__ = ["DeribitApi", "instrument_json", "ms"]

Params = Mapping[str, str]
# get_volatility_index_data: Deribit's resolutions (seconds, or "1D"), and rows per reply
RESOLUTIONS = {"1": 1, "60": 60, "3600": 3600, "43200": 43200, "1D": 86400}
MAX_CANDLES = 1000


class DeribitApi:
    """Dispatch ``public/<name>`` and ``private/<name>`` calls to the engine."""

    def __init__(self, engine: SimExchange) -> None:
        self.engine = engine
        self._methods: dict[str, Callable[[Params], Any]] = {
            "public/get_time": lambda p: ms(self.engine.now),
            "public/get_currencies": self._currencies,
            "public/get_instruments": self._instruments,
            "public/ticker": self._ticker,
            "public/get_book_summary_by_currency": self._book_summary_by_currency,
            "public/get_book_summary_by_instrument": self._book_summary_by_instrument,
            "public/get_funding_rate_value": self._funding_rate_value,
            "public/get_index_price": self._index_price,
            "public/get_volatility_index_data": self._volatility_index,
            "public/auth": self._auth,
            "private/get_account_summary": self._account_summary,
            "private/get_account_summaries": self._account_summaries,
            "private/get_positions": self._positions,
            "private/get_position": self._position,
            "private/buy": lambda p: self._order(p, "buy"),
            "private/sell": lambda p: self._order(p, "sell"),
            "private/cancel": self._cancel,
            "private/get_order_state": self._order_state,
            "private/get_order_state_by_label": self._order_state_by_label,
            "private/get_open_orders_by_currency": self._open_orders_by_currency,
            "private/get_open_orders_by_instrument": self._open_orders_by_instrument,
            "private/get_user_trades_by_instrument": self._user_trades_by_instrument,
            "private/get_user_trades_by_order": self._user_trades_by_order,
        }

    def call(self, method: str, params: Params) -> Any:
        handler = self._methods.get(method)
        if handler is None:
            raise SimError(-32601, "Method not found", reason=method)
        return handler(params)

    # ----------------------------------------------------------------- public
    def _currencies(self, params: Params) -> list[dict[str, Any]]:
        currency = self.engine.config.currency
        return [
            {
                "currency": currency,
                "currency_long": {"BTC": "Bitcoin", "ETH": "Ethereum"}.get(currency, currency),
                "coin_type": {"BTC": "BITCOIN", "ETH": "ETHER"}.get(currency, currency),
                "network_currency": currency,
                "network_fee": 0.0001,
                "decimals": {"BTC": 8, "ETH": 6}.get(currency, 8),
                "min_confirmations": 1,
                "min_withdrawal_fee": 0.0001,
                "withdrawal_fee": 0.0001,
                "withdrawal_priorities": [],
            }
        ]

    def _instruments(self, params: Params) -> list[dict[str, Any]]:
        currency = params.get("currency")
        if currency not in (None, "any", self.engine.config.currency):
            return []
        kind = params.get("kind")
        return [instrument_json(x, self.engine) for x in self.engine.instruments() if kind in (None, x.kind)]

    def _ticker(self, params: Params) -> dict[str, Any]:
        listed = self.engine.instrument(_required(params, "instrument_name"))
        return ticker_json(listed, self.engine.quote(listed.name), self.engine)

    def _book_summary_by_currency(self, params: Params) -> list[dict[str, Any]]:
        currency = _required(params, "currency")
        if currency != self.engine.config.currency:
            return []
        kind = params.get("kind")
        listed = {x.name: x for x in self.engine.instruments(kind=kind)}
        return [book_summary_json(listed[q.name], q, self.engine) for q in self.engine.quotes(kind=kind)]

    def _book_summary_by_instrument(self, params: Params) -> list[dict[str, Any]]:
        listed = self.engine.instrument(_required(params, "instrument_name"))
        return [book_summary_json(listed, self.engine.quote(listed.name), self.engine)]

    def _funding_rate_value(self, params: Params) -> float:
        """The funding accrued per unit of the perpetual over ``[start_timestamp, end_timestamp]``."""
        listed = self.engine.instrument(_required(params, "instrument_name"))
        start, end = _time(params, "start_timestamp"), _time(params, "end_timestamp")
        if not listed.is_perpetual:
            raise SimError(11029, "invalid_arguments", reason="funding applies to the perpetual only")
        return self.engine.funding_between(start, end) if end > start else 0.0

    def _index_price(self, params: Params) -> dict[str, float]:
        _required(params, "index_name")
        index = self.engine.market().index
        return {"index_price": index, "estimated_delivery_price": index}

    def _volatility_index(self, params: Params) -> dict[str, Any]:
        """Candles ``[ms, open, high, low, close]`` of the 30-day ATM volatility (percent, as DVOL)."""
        _required(params, "currency")
        start, end = _time(params, "start_timestamp"), min(_time(params, "end_timestamp"), self.engine.now)
        resolution = _required(params, "resolution")
        if resolution not in RESOLUTIONS:
            raise SimError(-32602, "Invalid params", reason="invalid resolution", param="resolution")
        step = timedelta(seconds=RESOLUTIONS[resolution])
        first = datetime.fromtimestamp(
            math.ceil(start.timestamp() / step.total_seconds()) * step.total_seconds(), UTC
        )
        count = max(0, math.floor((end - first) / step) + 1)
        skip = max(0, count - MAX_CANDLES)
        rows = self._candles([first + i * step for i in range(skip, count)], step)
        return {"data": rows, "continuation": ms(first + skip * step) if skip else None}

    def _candles(self, starts: list[datetime], step: timedelta) -> list[list[float]]:
        """One candle per start: the path is constant between its changes, so the vol is read once at
        the first start and at each change inside the window; each candle opens at the vol in force at
        its start, and only the candles a change falls inside need their high, low and close moved."""
        if not starts:
            return []
        now, path = self.engine.now, self.engine.path
        points: list[datetime] = [starts[0]]
        stop, last_start = min(starts[-1] + step, now), starts[-1]
        while (t := path.next_change_after(points[-1])) is not None and (t < stop or t <= last_start):
            points.append(t)  # every change inside a candle, or at a candle's start (the last may be now)
        vols = [round(self.engine.vol_at(x) * 100.0, 6) for x in points]
        first_ms, step_ms, count = ms(starts[0]), round(step.total_seconds() * 1000), len(starts)
        offsets = [ms(x) - first_ms for x in points]
        rows: list[list[float]] = []
        for k, v in enumerate(vols):  # the candles starting at or after change k and before change k + 1
            until = count if k + 1 == len(vols) else min(count, -(-offsets[k + 1] // step_ms))
            rows.extend([first_ms + i * step_ms, v, v, v, v] for i in range(len(rows), until))
        for k in range(1, len(vols)):
            if offsets[k] % step_ms:  # strictly inside candle i (the last candle ends at now, not later)
                row = rows[offsets[k] // step_ms]
                row[2], row[3], row[4] = max(row[2], vols[k]), min(row[3], vols[k]), vols[k]
        return rows

    def _auth(self, params: Params) -> dict[str, Any]:
        """``client_credentials`` only; the key's scope is what a Deribit key with "account read",
        "trade read + write" and "wallet read" ticked reports.  The credentials themselves are checked
        on every private call (HMAC), not here: the simulator holds one key."""
        if params.get("grant_type") != "client_credentials" or not params.get("client_id"):
            raise SimError(11029, "invalid_arguments", reason="grant_type client_credentials with client_id")
        scope = "connection mainaccount account:read trade:read_write wallet:read"
        return {"access_token": "sim-token", "expires_in": 900, "refresh_token": "sim-refresh",
                "scope": scope, "enabled_features": [], "token_type": "bearer"}  # fmt: skip

    # ----------------------------------------------------------------- private: account
    def _account_summary(self, params: Params) -> dict[str, Any]:
        currency = _required(params, "currency")
        if currency != self.engine.config.currency:
            raise SimError(-32602, "Invalid params", reason="invalid currency", param="currency")
        return account_json(self.engine, extended=_flag(params, "extended"))

    def _account_summaries(self, params: Params) -> dict[str, Any]:
        summary = {**account_json(self.engine), "fees": fees_json(self.engine)}
        extended = _flag(params, "extended")
        fields = ACCOUNT_FIELDS if extended else {k: ACCOUNT_FIELDS[k] for k in ("id", "email")}
        return {**fields, "summaries": [summary]}

    def _positions(self, params: Params) -> list[dict[str, Any]]:
        currency = params.get("currency")
        if currency not in (None, "any", self.engine.config.currency):
            return []
        kind = params.get("kind")
        return [
            position_json(v, self.engine)
            for v in self.engine.position_views()
            if kind in (None, v.listed.kind)
        ]

    def _position(self, params: Params) -> dict[str, Any]:
        listed = self.engine.instrument(_required(params, "instrument_name"))
        for view in self.engine.position_views():
            if view.listed.name == listed.name:
                return position_json(view, self.engine)
        return flat_position_json(listed, self.engine.quote(listed.name), self.engine)

    # ----------------------------------------------------------------- private: orders
    def _order(self, params: Params, direction: str) -> dict[str, Any]:
        if "valid_until" in params:
            valid_until = _number(params, "valid_until")
            if ms(self.engine.now) > valid_until:
                # Deribit: the matching engine takes the request only before valid_until
                raise SimError(
                    13888,
                    "timed_out",
                    reason=f"valid_until {valid_until:.0f} passed before the matching engine took it",
                )
        order = self.engine.place_order(
            name=_required(params, "instrument_name"),
            direction=direction,
            amount=_number(params, "amount"),
            order_type=params.get("type", "limit"),
            price=_number(params, "price") if "price" in params else None,
            label=params.get("label", ""),
            reduce_only=_flag(params, "reduce_only"),
            post_only=_flag(params, "post_only"),
            reject_post_only=_flag(params, "reject_post_only"),
        )
        return {
            "order": order_json(order, self.engine),
            "trades": [trade_json(t, order, self.engine.config.currency) for t in order.trades],
        }

    def _cancel(self, params: Params) -> dict[str, Any]:
        return order_json(self.engine.cancel(_required(params, "order_id")), self.engine)

    def _order_state(self, params: Params) -> dict[str, Any]:
        return order_json(self.engine.order(_required(params, "order_id")), self.engine)

    def _order_state_by_label(self, params: Params) -> list[dict[str, Any]]:
        label = _required(params, "label")
        return [order_json(o, self.engine) for o in self.engine.orders_by_label(label)]

    def _user_trades_by_instrument(self, params: Params) -> dict[str, Any]:
        name = _required(params, "instrument_name")
        count = int(_number(params, "count")) if "count" in params else 10
        trades = [(t, o) for o in self.engine.orders.values() if o.name == name for t in o.trades]
        trades.sort(key=lambda pair: int(pair[0].trade_id.split("-")[-1]), reverse=True)
        if params.get("sorting", "desc") == "asc":
            trades.reverse()
        currency = self.engine.config.currency
        return {
            "trades": [trade_json(t, o, currency) for t, o in trades[:count]],
            "has_more": len(trades) > count,
        }

    def _user_trades_by_order(self, params: Params) -> list[dict[str, Any]]:
        """The order's trades, a bare array as Deribit answers it (oldest first)."""
        order = self.engine.order(_required(params, "order_id"))
        return [trade_json(t, order, self.engine.config.currency) for t in order.trades]

    def _open_orders_by_currency(self, params: Params) -> list[dict[str, Any]]:
        if _required(params, "currency") != self.engine.config.currency:
            return []
        return [order_json(o, self.engine) for o in self.engine.open_orders()]

    def _open_orders_by_instrument(self, params: Params) -> list[dict[str, Any]]:
        name = _required(params, "instrument_name")
        return [order_json(o, self.engine) for o in self.engine.open_orders(name=name)]


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise SimError(-32602, "Invalid params", reason="must be present", param=name)
    return value


def _number(params: Params, name: str) -> float:
    raw = _required(params, name)
    try:
        value = float(raw)
    except ValueError:
        raise SimError(-32602, "Invalid params", reason=f"not a number: {raw!r}", param=name) from None
    if not math.isfinite(value):
        raise SimError(-32602, "Invalid params", reason="must be finite", param=name)
    return value


def _time(params: Params, name: str) -> datetime:
    return datetime.fromtimestamp(_number(params, name) / 1000.0, UTC)


def _flag(params: Params, name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise SimError(-32602, "Invalid params", reason="must be true or false", param=name)
    return raw == "true"
