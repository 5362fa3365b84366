"""The simulator's replies, shaped like Deribit's: the same field names, types and nesting as the
replies Deribit publishes (tests/fixtures/deribit/, compared field by field in
tests/controller/sim/test_reply_shapes.py).  What is still different is listed in docs/simulator.md.

Deribit's conventions kept here: an option position carries neither ``mark_iv`` nor
``underlying_price`` (they are on its ticker and book-summary line); an order carries no
``commission`` (its fee is in its trades' ``fee``, signed, with ``fee_currency`` and
``liquidity``); a trade's ``label`` is there only when the order had one; a filled market order's
``price`` is the price band's edge it could trade up to; ``floating_profit_loss`` is the P&L since
the last daily settlement and ``total_profit_loss`` since entry; missing quotes are ``null``.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from controller.sim.listing import Listed, is_futures_expiry
from controller.sim.model import PositionView, SimOrder, SimQuote, SimTrade
from controller.sim.quotes import price_band
from pricing.instruments import deribit_expiry_code

if TYPE_CHECKING:
    from controller.sim.engine import SimExchange

PERPETUAL_EXPIRY_MS = 32503708800000  # Deribit's "never" for the perpetual
MARGIN_MODELS = {"standard": "segregated_sm", "portfolio": "segregated_pm"}


def ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def instrument_json(x: Listed, engine: SimExchange) -> dict[str, Any]:
    currency = engine.config.currency
    option = x.kind == "option"
    base: dict[str, Any] = {
        "instrument_name": x.name,
        "instrument_id": zlib.crc32(x.name.encode()) & 0x7FFFFFFF,  # stable, as Deribit's are
        "kind": x.kind,
        "is_active": True,
        "state": "open",
        "base_currency": currency,
        "counter_currency": "USD",
        "settlement_currency": currency,
        "quote_currency": currency if option else "USD",
        "price_index": f"{currency.lower()}_usd",
        "tick_size": x.tick_size,
        "tick_size_steps": [{"above_price": a, "tick_size": t} for a, t in x.tick_size_steps],
        "min_trade_amount": x.min_amount,
        "contract_size": x.contract_size,
        "maker_commission": x.maker_fee,
        "taker_commission": x.taker_fee,
        "block_trade_commission": x.taker_fee / 2.0,
        "block_trade_tick_size": 0.0001 if option else 0.01,
        "block_trade_min_trade_amount": 25 if option else 200000,
        "creation_timestamp": ms(x.created_at),
        "expiration_timestamp": PERPETUAL_EXPIRY_MS if x.expiry is None else ms(x.expiry),
    }
    if option:
        base.update(
            strike=x.strike,
            option_type="call" if x.is_call else "put",
            settlement_period=_settlement_period(x, engine),
        )
    else:
        base.update(
            instrument_type="reversed",
            max_leverage=50,
            max_liquidation_commission=engine.config.fees.liquidation,
            settlement_period="perpetual" if x.is_perpetual else _settlement_period(x, engine),
        )
    return base


def _settlement_period(x: Listed, engine: SimExchange) -> str:
    assert x.expiry is not None
    return "month" if is_futures_expiry(x.expiry, engine.config.listing) else "week"


def underlying_index(x: Listed, engine: SimExchange) -> str:
    """An option's underlying: its expiry's future when one is listed, else the synthetic ``SYN.`` one."""
    assert x.expiry is not None
    currency = engine.config.currency
    future = f"{currency}-{deribit_expiry_code(x.expiry)}"
    return future if future in engine.listed else f"SYN.{future}"


def ticker_json(x: Listed, q: SimQuote, engine: SimExchange) -> dict[str, Any]:
    low, high = price_band(x, q.mark_price, engine.config)
    body: dict[str, Any] = {
        "instrument_name": x.name,
        "timestamp": ms(engine.now),
        "state": "open",
        "mark_price": q.mark_price,
        "index_price": q.index_price,
        "estimated_delivery_price": q.index_price,
        "last_price": q.mark_price,
        "best_bid_price": q.best_bid,
        "best_ask_price": q.best_ask,
        "best_bid_amount": 0.0 if q.best_bid is None else 100.0,
        "best_ask_amount": 0.0 if q.best_ask is None else 100.0,
        "min_price": low,
        "max_price": high,
        "settlement_price": engine.settlement_prices.get(x.name, 0.0),
        "open_interest": 0.0,
        "stats": {"volume": 0.0, "volume_usd": 0.0, "high": None, "low": None, "price_change": None},
    }
    if x.kind == "option":
        body.update(
            _option_fields(x, q, engine),
            bid_iv=round((q.mark_iv or 0.0) * 100.0 - 1.0, 4),
            ask_iv=round((q.mark_iv or 0.0) * 100.0 + 1.0, 4),
            greeks={"delta": q.delta, "gamma": q.gamma, "vega": q.vega, "theta": q.theta, "rho": 0.0},
        )
    elif x.is_perpetual:
        body.update(funding_fields(engine), interest_value=0.0)
    return body


def funding_fields(engine: SimExchange) -> dict[str, float]:
    """The perpetual's ``current_funding`` (the rate in force) and ``funding_8h`` (accrued over 8 h)."""
    now = engine.now
    return {
        "current_funding": engine.funding_rate(),
        "funding_8h": engine.funding_between(now - timedelta(hours=8), now),
    }


def _option_fields(x: Listed, q: SimQuote, engine: SimExchange) -> dict[str, Any]:
    """What Deribit adds for an option on its ticker and book line: its forward and mark IV (percent)."""
    return {
        "underlying_price": q.underlying_price,
        "underlying_index": underlying_index(x, engine),
        "interest_rate": 0.0,
        "mark_iv": round((q.mark_iv or 0.0) * 100.0, 4),
    }


def book_summary_json(x: Listed, q: SimQuote, engine: SimExchange) -> dict[str, Any]:
    bid, ask = q.best_bid, q.best_ask
    body: dict[str, Any] = {
        "instrument_name": x.name,
        "base_currency": x.instrument.underlying,
        "quote_currency": x.instrument.underlying if x.kind == "option" else "USD",
        "mark_price": q.mark_price,
        "bid_price": bid,
        "ask_price": ask,
        "mid_price": None if bid is None or ask is None else (bid + ask) / 2.0,
        "last": None,
        "high": None,
        "low": None,
        "volume": 0.0,
        "volume_usd": 0.0,
        "open_interest": 0.0,
        "price_change": None,
        "estimated_delivery_price": q.index_price,
        "creation_timestamp": ms(engine.now),
    }
    if x.kind == "option":
        body.update(_option_fields(x, q, engine))
    elif x.is_perpetual:
        body.update(funding_fields(engine))
    return body


def position_json(view: PositionView, engine: SimExchange) -> dict[str, Any]:
    book, listed, q = view.book, view.listed, view.quote
    size = book.size
    option = listed.kind == "option"
    body: dict[str, Any] = {
        "instrument_name": listed.name,
        "kind": listed.kind,
        "direction": "sell" if size < 0 else "buy",
        "size": size,
        "average_price": book.average_price,
        "mark_price": q.mark_price,
        "index_price": q.index_price,
        "settlement_price": engine.settlement_prices.get(listed.name, 0.0),
        "floating_profit_loss": book.session_unrealised(q.mark_price),
        "total_profit_loss": book.unrealised(q.mark_price),
        "realized_profit_loss": book.session_realised,
        "initial_margin": view.initial_margin,
        "maintenance_margin": view.maintenance_margin,
        "open_orders_margin": 0.0,
        "delta": view.delta,
    }
    if option:
        body.update(
            gamma=view.gamma,
            vega=view.vega,
            theta=view.theta,
            average_price_usd=book.average_price * q.underlying_price,
            floating_profit_loss_usd=book.session_unrealised(q.mark_price) * q.index_price,
        )
    else:
        body.update(size_currency=size / q.mark_price, leverage=50, estimated_liquidation_price=None)
        if listed.is_perpetual:
            body.update(realized_funding=book.funding, interest_value=0.0)
    return body


def flat_position_json(listed: Listed, q: SimQuote, engine: SimExchange) -> dict[str, Any]:
    """What ``get_position`` answers for an instrument the account does not hold: a zero position."""
    body = {
        "instrument_name": listed.name,
        "kind": listed.kind,
        "direction": "buy",
        "size": 0.0,
        "average_price": 0.0,
        "mark_price": q.mark_price,
        "index_price": q.index_price,
        "settlement_price": engine.settlement_prices.get(listed.name, 0.0),
        "floating_profit_loss": 0.0,
        "total_profit_loss": 0.0,
        "realized_profit_loss": 0.0,
        "initial_margin": 0.0,
        "maintenance_margin": 0.0,
        "open_orders_margin": 0.0,
        "delta": 0.0,
    }
    if listed.kind != "option":
        body.update(size_currency=0.0, leverage=50, estimated_liquidation_price=None)
        if listed.is_perpetual:
            body.update(interest_value=0.0)
    return body


def order_json(o: SimOrder, engine: SimExchange) -> dict[str, Any]:
    listed = engine.listed.get(o.name)
    contract = listed.contract_size if listed is not None else 1.0
    price = o.price if o.price is not None else o.band_price
    return {
        "order_id": o.order_id,
        "instrument_name": o.name,
        "direction": o.direction,
        "amount": o.amount,
        "contracts": o.amount / contract,
        "filled_amount": o.filled,
        "price": "market_price" if price is None else price,
        "average_price": o.average_price,
        "order_state": o.state,
        "order_type": o.order_type,
        "label": o.label,
        "post_only": o.post_only,
        "reduce_only": o.reduce_only,
        "time_in_force": "good_til_cancelled",
        "creation_timestamp": ms(o.created),
        "last_update_timestamp": ms(o.updated),
        "api": True,
        "web": False,
        "is_liquidation": o.label == "liquidation",
        "is_rebalance": False,
        "replaced": False,
        "max_show": o.amount,
        "mmp": False,
        "risk_reducing": False,
    }


def trade_json(t: SimTrade, o: SimOrder, currency: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "trade_id": t.trade_id,
        "trade_seq": int(t.trade_id.split("-")[-1]),
        "order_id": t.order_id,
        "matching_id": None,
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
        "reduce_only": o.reduce_only,
        "post_only": o.post_only,
        "tick_direction": 0,
    }
    if o.label:
        body["label"] = o.label
    if t.underlying_price is not None:
        body.update(underlying_price=t.underlying_price, iv=t.iv)
    return body


def account_json(engine: SimExchange, *, extended: bool = False) -> dict[str, Any]:
    a = engine.account()
    currency = engine.config.currency
    index_name = f"{currency.lower()}_usd"
    body: dict[str, Any] = {
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
        "futures_pl": _pnl_since_entry(engine, options=False),
        "options_pl": _pnl_since_entry(engine, options=True),
        "session_upl": a.futures_session_upl + a.options_session_upl,
        "session_rpl": a.futures_session_rpl + a.options_session_rpl,
        "futures_session_upl": a.futures_session_upl,
        "futures_session_rpl": a.futures_session_rpl,
        "options_session_upl": a.options_session_upl,
        "options_session_rpl": a.options_session_rpl,
        "options_value": a.options_value,
        "options_delta": a.options_delta,
        "options_gamma": a.options_gamma,
        "options_vega": a.options_vega,
        "options_theta": a.options_theta,
        "options_gamma_map": {index_name: a.options_gamma},
        "options_vega_map": {index_name: a.options_vega},
        "options_theta_map": {index_name: a.options_theta},
        "delta_total": a.delta_total,
        "projected_delta_total": a.delta_total,
        "delta_total_map": {index_name: a.delta_total},
        "estimated_liquidation_ratio": _margin_ratio(a.maintenance_margin, a.equity),
        "estimated_liquidation_ratio_map": {index_name: _margin_ratio(a.maintenance_margin, a.equity)},
        "fee_balance": 0.0,
        "spot_reserve": 0.0,
        "margin_model": MARGIN_MODELS[engine.config.margin_model],
        "portfolio_margining_enabled": engine.config.margin_model == "portfolio",
        "cross_collateral_enabled": False,
        "limits": LIMITS,
    }
    if extended:  # get_account_summary's account fields: those of get_account_summaries but one
        body.update({k: v for k, v in ACCOUNT_FIELDS.items() if k != "block_rfq_self_match_prevention"})
    return body


def _pnl_since_entry(engine: SimExchange, *, options: bool) -> float:
    realised = sum(b.realised_pnl for b in engine.positions.values() if b.is_option == options)
    views = [v for v in engine.position_views() if v.book.is_option == options]
    return realised + sum(v.book.unrealised(v.quote.mark_price) for v in views)


def _margin_ratio(maintenance: float, equity: float) -> float:
    return maintenance / equity if equity > 0 else 0.0


# Deribit's rate limits as get_account_summary reports them (its documented example's figures)
LIMITS = {
    "limits_per_currency": False,
    "non_matching_engine": {"burst": 1500, "rate": 1000},
    "matching_engine": {
        "trading": {"total": {"burst": 250, "rate": 200}},
        "spot": {"burst": 250, "rate": 200},
        "quotes": {"burst": 500, "rate": 500},
        "max_quotes": {"burst": 10, "rate": 10},
        "guaranteed_quotes": {"burst": 2, "rate": 2},
        "cancel_all": {"burst": 250, "rate": 200},
    },
}
# the account's own fields, sent with extended=true (a paper account's)
ACCOUNT_FIELDS = {
    "id": 1,
    "email": "sim@levctl.invalid",
    "username": "levctl-sim",
    "system_name": "levctl-sim",
    "type": "main",
    "creation_timestamp": 1767340800000,
    "referrer_id": None,
    "login_enabled": False,
    "security_keys_enabled": False,
    "mmp_enabled": False,
    "interuser_transfers_enabled": False,
    "self_trading_reject_mode": "cancel_maker",
    "self_trading_extended_to_subaccounts": False,
    "block_rfq_self_match_prevention": False,
}


def fees_json(engine: SimExchange) -> dict[str, Any]:
    """``get_account_summaries``' fee schedule: per index and kind (fixed futures, relative options)."""
    fees = engine.config.fees
    return {
        f"{engine.config.currency.lower()}_usd": {
            kind: {"default": {"type": kind_type, "taker": taker, "maker": maker}, "block_trade": taker / 2.0}
            for kind, kind_type, taker, maker in (
                ("perpetual", "fixed", fees.future_taker, fees.future_maker),
                ("future", "fixed", fees.future_taker, fees.future_maker),
                ("option", "relative", fees.option_rate, fees.option_rate),
            )
        }
    }
