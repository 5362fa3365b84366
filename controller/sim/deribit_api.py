"""The Deribit v2 JSON-RPC subset that ccxt's ``deribit`` class uses, answered from the engine.

Shapes follow the replies documented in ccxt's ``deribit.py`` (copied there from real Deribit
answers).  Query values arrive as strings; they are parsed here, and a bad one is answered with
Deribit's ``invalid_arguments`` (11029) naming the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from controller.sim.engine import SimExchange
from controller.sim.listing import Listed, is_futures_expiry
from controller.sim.model import SimError, SimOrder, SimQuote, SimTrade
from pricing.instruments import deribit_expiry_code

PERPETUAL_EXPIRY_MS = 32503708800000  # Deribit's "never" for the perpetual
Params = Mapping[str, str]


def ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


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
                "fee_precision": 4,
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
        return ticker_json(listed, self.engine.quote(listed.name), self.engine.now)

    def _book_summary_by_currency(self, params: Params) -> list[dict[str, Any]]:
        currency = _required(params, "currency")
        if currency != self.engine.config.currency:
            return []
        kind = params.get("kind")
        listed = {x.name: x for x in self.engine.instruments(kind=kind)}
        return [book_summary_json(listed[q.name], q, self.engine.now) for q in self.engine.quotes(kind=kind)]

    def _book_summary_by_instrument(self, params: Params) -> list[dict[str, Any]]:
        listed = self.engine.instrument(_required(params, "instrument_name"))
        return [book_summary_json(listed, self.engine.quote(listed.name), self.engine.now)]

    def _funding_rate_value(self, params: Params) -> float:
        listed = self.engine.instrument(_required(params, "instrument_name"))
        if not listed.is_perpetual:
            raise SimError(11029, "invalid_arguments", reason="funding applies to the perpetual only")
        # The simulator answers the 8-hour rate in force now, whatever window is asked for.
        return self.engine.market().funding_8h

    def _index_price(self, params: Params) -> dict[str, float]:
        index = self.engine.market().index
        return {"index_price": index, "estimated_delivery_price": index}

    def _volatility_index(self, params: Params) -> dict[str, Any]:
        _required(params, "currency")
        vol = self.engine.market().atm_vol * 100.0
        stamp = ms(self.engine.now)
        return {"data": [[stamp, vol, vol, vol, vol]], "continuation": None}

    def _auth(self, params: Params) -> dict[str, Any]:
        """``client_credentials`` only; the key's scope is what a Deribit key with "account read",
        "trade read + write" and "wallet read" ticked reports.  The credentials themselves are checked
        on every private call (HMAC), not here: the simulator holds one key."""
        if params.get("grant_type") != "client_credentials" or not params.get("client_id"):
            raise SimError(11029, "invalid_arguments", reason="grant_type client_credentials with client_id")
        scope = "connection mainaccount account:read trade:read_write wallet:read"
        return {"access_token": "sim-token", "expires_in": 900, "refresh_token": "sim-refresh",
                "scope": scope, "token_type": "bearer"}  # fmt: skip

    # ----------------------------------------------------------------- private: account
    def _account_summary(self, params: Params) -> dict[str, Any]:
        currency = _required(params, "currency")
        if currency != self.engine.config.currency:
            raise SimError(11029, "invalid_arguments", reason=f"currency {currency!r}")
        return account_json(self.engine)

    def _account_summaries(self, params: Params) -> dict[str, Any]:
        return {"id": 1, "email": "sim@levctl.invalid", "summaries": [account_json(self.engine)]}

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
        name = _required(params, "instrument_name")
        self.engine.instrument(name)
        for view in self.engine.position_views():
            if view.listed.name == name:
                return position_json(view, self.engine)
        raise SimError(11029, "invalid_arguments", reason=f"no position in {name}")

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

    def _open_orders_by_currency(self, params: Params) -> list[dict[str, Any]]:
        if _required(params, "currency") != self.engine.config.currency:
            return []
        return [order_json(o, self.engine) for o in self.engine.open_orders()]

    def _open_orders_by_instrument(self, params: Params) -> list[dict[str, Any]]:
        name = _required(params, "instrument_name")
        return [order_json(o, self.engine) for o in self.engine.open_orders(name=name)]


# --------------------------------------------------------------------- JSON shapes
def instrument_json(x: Listed, engine: SimExchange) -> dict[str, Any]:
    currency = engine.config.currency
    base: dict[str, Any] = {
        "instrument_name": x.name,
        "kind": x.kind,
        "is_active": True,
        "base_currency": currency,
        "counter_currency": "USD",
        "settlement_currency": currency,
        "tick_size": x.tick_size,
        "min_trade_amount": x.min_amount,
        "contract_size": x.contract_size,
        "maker_commission": x.maker_fee,
        "taker_commission": x.taker_fee,
        "block_trade_commission": x.taker_fee,
        "creation_timestamp": ms(x.created_at),
        "expiration_timestamp": PERPETUAL_EXPIRY_MS if x.expiry is None else ms(x.expiry),
        "price_index": f"{currency.lower()}_usd",
        "rfq": False,
    }
    if x.kind == "option":
        base.update(
            quote_currency=currency,
            strike=x.strike,
            option_type="call" if x.is_call else "put",
            settlement_period=_settlement_period(x, engine),
            instrument_type="reversed",
        )
    else:
        base.update(
            quote_currency="USD",
            future_type="reversed",
            instrument_type="reversed",
            max_leverage=50,
            max_liquidation_commission=engine.config.fees.liquidation,
            settlement_period="perpetual" if x.is_perpetual else _settlement_period(x, engine),
        )
    return base


def _settlement_period(x: Listed, engine: SimExchange) -> str:
    assert x.expiry is not None
    return "month" if is_futures_expiry(x.expiry, engine.config.listing) else "week"


def _underlying_index(x: Listed, engine: SimExchange) -> str:
    assert x.expiry is not None
    currency = engine.config.currency
    if is_futures_expiry(x.expiry, engine.config.listing):
        return f"{currency}-{deribit_expiry_code(x.expiry)}"
    return f"SYN.{currency}-{deribit_expiry_code(x.expiry)}"


def ticker_json(x: Listed, q: SimQuote, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "instrument_name": x.name,
        "timestamp": ms(now),
        "state": "open",
        "mark_price": q.mark_price,
        "index_price": q.index_price,
        "last_price": q.mark_price,
        "best_bid_price": q.best_bid or 0.0,
        "best_ask_price": q.best_ask or 0.0,
        "best_bid_amount": 0.0 if q.best_bid is None else 100.0,
        "best_ask_amount": 0.0 if q.best_ask is None else 100.0,
        "min_price": q.mark_price * 0.9,
        "max_price": q.mark_price * 1.1,
        "settlement_price": q.mark_price,
        "open_interest": 0.0,
        "stats": {"volume": 0.0, "high": q.mark_price, "low": q.mark_price, "price_change": 0.0},
        "estimated_delivery_price": q.index_price,
    }
    if x.kind == "option":
        body.update(
            _option_fields(q),
            bid_iv=round((q.mark_iv or 0.0) * 100.0 - 1.0, 4),
            ask_iv=round((q.mark_iv or 0.0) * 100.0 + 1.0, 4),
            greeks={"delta": q.delta, "gamma": q.gamma, "vega": q.vega, "theta": q.theta, "rho": 0.0},
        )
    elif x.is_perpetual:
        body.update(funding_8h=q.funding_8h, current_funding=q.funding_8h, interest_value=0.0)
    return body


def _option_fields(q: SimQuote) -> dict[str, Any]:
    """What Deribit adds for an option: its forward and mark IV (in percent)."""
    return {
        "underlying_price": q.underlying_price,
        "underlying_index": "index_price",
        "interest_rate": 0.0,
        "mark_iv": round((q.mark_iv or 0.0) * 100.0, 4),
    }


def book_summary_json(x: Listed, q: SimQuote, now: datetime) -> dict[str, Any]:
    bid = q.best_bid
    ask = q.best_ask
    body: dict[str, Any] = {
        "instrument_name": x.name,
        "base_currency": x.instrument.underlying,
        "quote_currency": x.instrument.underlying if x.kind == "option" else "USD",
        "mark_price": q.mark_price,
        "bid_price": bid,
        "ask_price": ask,
        "mid_price": None if bid is None or ask is None else (bid + ask) / 2.0,
        "last": q.mark_price,
        "high": q.mark_price,
        "low": q.mark_price,
        "volume": 0.0,
        "open_interest": 0.0,
        "price_change": 0.0,
        "estimated_delivery_price": q.index_price,
        "creation_timestamp": ms(now),
    }
    if x.kind == "option":
        body.update(_option_fields(q))
    elif x.is_perpetual:
        body.update(funding_8h=q.funding_8h, current_funding=q.funding_8h)
    return body


def account_json(engine: SimExchange) -> dict[str, Any]:
    a = engine.account()
    currency = engine.config.currency
    return {
        "currency": currency,
        "balance": a.balance,
        "equity": a.equity,
        "margin_balance": a.equity,
        "initial_margin": a.initial_margin,
        "maintenance_margin": a.maintenance_margin,
        "projected_initial_margin": a.initial_margin,
        "projected_maintenance_margin": a.maintenance_margin,
        "available_funds": a.available_funds,
        "available_withdrawal_funds": max(0.0, min(a.balance, a.available_funds)),
        "total_pl": a.realised_pnl + a.unrealised_pnl,
        "session_upl": a.unrealised_pnl,
        "session_rpl": a.realised_pnl,
        "session_funding": a.funding,
        "futures_pl": 0.0,
        "options_pl": 0.0,
        "options_value": a.options_value,
        "options_delta": a.options_delta,
        "options_gamma": a.options_gamma,
        "options_vega": a.options_vega,
        "options_theta": a.options_theta,
        "delta_total": a.delta_total,
        "fee_balance": 0.0,
        "margin_model": "segregated_sm",
        "portfolio_margining_enabled": False,
        "cross_collateral_enabled": False,
        "limits": {"matching_engine": 20, "non_matching_engine": 200},
    }


def position_json(view: Any, engine: SimExchange) -> dict[str, Any]:
    book, listed, q = view.book, view.listed, view.quote
    size = book.size
    body: dict[str, Any] = {
        "instrument_name": listed.name,
        "kind": listed.kind,
        "direction": "buy" if size > 0 else "sell" if size < 0 else "zero",
        "size": size,
        "size_currency": size if listed.kind == "option" else size / q.mark_price,
        "average_price": book.average_price,
        "mark_price": q.mark_price,
        "index_price": q.index_price,
        "settlement_price": q.mark_price,
        "floating_profit_loss": book.unrealised(q.mark_price),
        "realized_profit_loss": book.realised_pnl,
        "total_profit_loss": book.realised_pnl + book.unrealised(q.mark_price),
        "initial_margin": view.initial_margin,
        "maintenance_margin": view.maintenance_margin,
        "open_orders_margin": 0.0,
        "delta": view.delta,
        "leverage": 50 if listed.kind != "option" else None,
        "estimated_liquidation_price": None,
        "interest_value": 0.0,
    }
    if listed.kind == "option":
        body.update(
            gamma=view.gamma,
            vega=view.vega,
            theta=view.theta,
            average_price_usd=book.average_price * q.underlying_price,
            mark_iv=round((q.mark_iv or 0.0) * 100.0, 4),
            underlying_price=q.underlying_price,
        )
    elif listed.is_perpetual:
        body.update(realized_funding=book.funding)
    return body


def order_json(o: SimOrder, engine: SimExchange) -> dict[str, Any]:
    listed = engine.listed.get(o.name)
    contract = listed.contract_size if listed is not None else 1.0
    return {
        "order_id": o.order_id,
        "instrument_name": o.name,
        "direction": o.direction,
        "amount": o.amount,
        "contracts": o.amount / contract,
        "filled_amount": o.filled,
        "price": "market_price" if o.price is None else o.price,
        "average_price": o.average_price,
        "order_state": o.state,
        "order_type": o.order_type,
        "label": o.label,
        "post_only": o.post_only,
        "reduce_only": o.reduce_only,
        "time_in_force": "good_til_cancelled",
        "creation_timestamp": ms(o.created),
        "last_update_timestamp": ms(o.updated),
        "commission": o.commission,
        "api": True,
        "web": False,
        "is_liquidation": o.label == "liquidation",
        "replaced": False,
        "max_show": o.amount,
        "mmp": False,
        "risk_reducing": False,
    }


def trade_json(t: SimTrade, o: SimOrder, currency: str) -> dict[str, Any]:
    return {
        "trade_id": t.trade_id,
        "order_id": t.order_id,
        "instrument_name": t.name,
        "direction": t.direction,
        "amount": t.amount,
        "price": t.price,
        "fee": t.fee,
        "fee_currency": currency,
        "liquidity": t.liquidity,
        "timestamp": ms(t.time),
        "index_price": t.index_price,
        "mark_price": t.mark_price,
        "order_type": o.order_type,
        "state": o.state,
        "label": o.label,
        "tick_direction": 0,
        "trade_seq": int(t.trade_id.split("-")[-1]),
    }


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise SimError(11029, "invalid_arguments", reason=f"missing parameter {name}")
    return value


def _number(params: Params, name: str) -> float:
    raw = _required(params, name)
    try:
        value = float(raw)
    except ValueError:
        raise SimError(11029, "invalid_arguments", reason=f"{name} is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise SimError(11029, "invalid_arguments", reason=f"{name} must be finite")
    return value


def _flag(params: Params, name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise SimError(11029, "invalid_arguments", reason=f"{name} must be true or false")
    return raw == "true"
