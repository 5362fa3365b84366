"""The real ccxt ``deribit`` client against the simulator's HTTP face on 127.0.0.1.

Every unified call the controller uses goes through ccxt's own signing, URL building and
parsing; the answers are checked against the engine's state.
"""

from __future__ import annotations

from datetime import timedelta

import ccxt
import pytest

from controller.sim import SimConfig, SimExchange
from controller.sim.market import StochasticVolParams
from controller.sim.server import SimServer
from tests.controller.conftest import make_client

PERP = "BTC/USD:BTC"


def option_symbol(client, engine: SimExchange, *, call: bool, moneyness: float) -> tuple[str, str]:
    """The listed option nearest to ``moneyness × index`` on the second expiry: (ccxt symbol, name)."""
    index = engine.market().index
    expiries = sorted({x.expiry for x in engine.instruments(kind="option")})
    candidates = [
        x for x in engine.instruments(kind="option") if x.expiry == expiries[1] and x.is_call == call
    ]
    listed = min(candidates, key=lambda x: abs(x.strike - moneyness * index))
    return client.markets_by_id[listed.name][0]["symbol"], listed.name


def test_load_markets_matches_the_listing(client, engine):
    markets = client.load_markets()
    assert len(markets) == len(engine.listed)
    perp = markets[PERP]
    assert perp["swap"] and perp["inverse"] and perp["contractSize"] == 10.0 and perp["id"] == "BTC-PERPETUAL"
    options = [m for m in markets.values() if m["option"]]
    assert options and all(m["settle"] == "BTC" for m in options)
    sample = options[0]
    listed = engine.listed[sample["id"]]
    assert sample["strike"] == listed.strike
    assert sample["expiry"] == int(listed.expiry.timestamp() * 1000)
    assert sample["optionType"] == ("call" if listed.is_call else "put")


def test_balance_is_the_engines_equity(client, engine):
    client.load_markets()
    balance = client.fetch_balance({"code": "BTC"})
    account = engine.account()
    assert balance["BTC"]["total"] == pytest.approx(account.equity)
    assert balance["info"]["maintenance_margin"] == pytest.approx(account.maintenance_margin)


def test_market_orders_on_the_perpetual_and_an_option(client, engine):
    client.load_markets()
    ask = engine.quote("BTC-PERPETUAL").best_ask
    order = client.create_order(PERP, "market", "buy", 30_000, params={"label": "lv-t-1-0"})
    assert order["status"] == "closed" and order["filled"] == 30_000
    assert order["average"] == pytest.approx(ask)
    assert order["info"]["label"] == "lv-t-1-0"
    assert engine.positions["BTC-PERPETUAL"].size == 30_000

    symbol, name = option_symbol(client, engine, call=True, moneyness=1.1)
    bid = engine.quote(name).best_bid
    sold = client.create_order(symbol, "market", "sell", 2.0, params={"label": "lv-t-1-1"})
    assert sold["status"] == "closed" and sold["average"] == pytest.approx(bid)
    assert engine.positions[name].size == -2.0

    positions = {p["info"]["instrument_name"]: p for p in client.fetch_positions(params={"currency": "BTC"})}
    assert (
        positions["BTC-PERPETUAL"]["contracts"] == 30_000
    )  # ccxt: an inverse perp's contracts is its USD size
    view = next(v for v in engine.position_views() if v.listed.name == name)
    info = positions[name]["info"]  # Deribit position greeks only live in info
    assert info["size"] == -2.0
    assert info["delta"] == pytest.approx(view.delta) and info["vega"] == pytest.approx(view.vega)
    assert info["gamma"] == pytest.approx(view.gamma) and info["theta"] == pytest.approx(view.theta)


def test_tickers_and_greeks(client, engine):
    client.load_markets()
    symbol, name = option_symbol(client, engine, call=False, moneyness=0.95)
    ticker = client.fetch_ticker(symbol)
    quote = engine.quote(name)
    assert ticker["markPrice"] == pytest.approx(quote.mark_price)
    assert ticker["info"]["mark_iv"] == pytest.approx(quote.mark_iv * 100, abs=1e-4)
    assert ticker["info"]["greeks"]["delta"] == pytest.approx(quote.delta)
    assert ticker["bid"] < ticker["markPrice"] < ticker["ask"]
    greeks = client.fetch_greeks(symbol)
    assert greeks["vega"] == pytest.approx(quote.vega)
    tickers = client.fetch_tickers(params={"code": "BTC"})
    assert len(tickers) == len(engine.listed)
    summary = tickers[symbol]["info"]
    assert summary["underlying_price"] == pytest.approx(quote.underlying_price)


def test_funding_rate_is_the_funding_accrued_over_the_window():
    """get_funding_rate_value over the 8 hours ccxt is asked for, as Deribit answers it: the sum of
    each moment's rate (the premium less the ±0.025 % dead band) times its share of 8 hours."""
    engine = SimExchange(SimConfig(seed=5, market=StochasticVolParams(funding_vol=0.01)))
    engine.advance(86400)
    end = engine.now
    window = {
        "start_timestamp": int((end - timedelta(hours=8)).timestamp() * 1000),
        "end_timestamp": int(end.timestamp() * 1000),
    }
    with SimServer(engine, port=0, speed=0.0) as server:
        client = make_client(server.url)
        client.load_markets()
        rate = client.fetch_funding_rate(PERP, params=window)
    # by hand: 96 five-minute steps of the path, each at the dead-banded rate of its premium
    premiums = [engine.path.state_at(end - timedelta(minutes=5 * (96 - k))).perp_premium for k in range(96)]
    rates = [max(0.00025, p) + min(-0.00025, p) for p in premiums]
    assert any(r != 0.0 for r in rates) and any(r == 0.0 for r in rates)  # both sides of the band occur
    assert rate["fundingRate"] == pytest.approx(sum(rates) * 300 / 28800, rel=1e-12)


def test_limit_orders_rest_fill_and_cancel(client, engine, admin):
    client.load_markets()
    symbol, name = option_symbol(client, engine, call=True, moneyness=1.0)
    quote = engine.quote(name)
    low = round((quote.mark_price * 0.5) / 0.0005) * 0.0005
    resting = client.create_order(symbol, "limit", "buy", 1.0, low, params={"label": "lv-t-2-0"})
    assert resting["status"] == "open"
    assert [o["id"] for o in client.fetch_open_orders(params={"code": "BTC"})] == [resting["id"]]
    assert client.fetch_order(resting["id"])["status"] == "open"
    cancelled = client.cancel_order(resting["id"])
    assert cancelled["status"] == "canceled"
    assert engine.orders[resting["id"]].state == "cancelled"
    with pytest.raises(ccxt.InvalidOrder):  # Deribit 11044 not_open_order
        client.cancel_order(resting["id"])

    # a sell limit just above the market rests, then fills when the market rises through it
    perp_mark = engine.quote("BTC-PERPETUAL").mark_price
    limit = round(perp_mark * 1.01 / 0.5) * 0.5
    sell = client.create_order(PERP, "limit", "sell", 1000, limit, params={"label": "lv-t-2-1"})
    assert sell["status"] == "open"
    admin.post("/_sim/move", {"price_factor": 1.03})
    filled = client.fetch_order(sell["id"])
    assert filled["status"] == "closed" and filled["average"] == pytest.approx(limit)
    assert engine.positions["BTC-PERPETUAL"].size == -1000


def test_order_errors_map_to_ccxt_exceptions(client, engine):
    client.load_markets()
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order("SIM-999999")
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(PERP, "market", "buy", 500_000_000, params={"label": "lv-t-3-0"})
    with pytest.raises(ccxt.InvalidOrder):  # post-only that would cross: Deribit 11054
        client.create_order(
            PERP,
            "limit",
            "buy",
            10,
            engine.quote("BTC-PERPETUAL").best_ask + 50,
            params={"postOnly": True, "label": "x"},
        )
    assert engine.positions == {}  # nothing traded


def test_the_request_log_lists_json_rpc_methods_in_order(client, admin):
    client.load_markets()
    client.fetch_balance({"code": "BTC"})
    client.fetch_ticker(PERP)
    assert admin.methods() == [
        "public/get_currencies",
        "public/get_instruments",
        "private/get_account_summary",
        "public/ticker",
    ]


def test_a_wrong_secret_is_ccxts_authentication_error(server):
    from tests.controller.conftest import make_client

    impostor = make_client(server.url, secret="not-the-secret")
    impostor.load_markets()  # public calls need no signature
    with pytest.raises(ccxt.AuthenticationError, match="13009"):
        impostor.fetch_balance({"code": "BTC"})
    with pytest.raises(ccxt.AuthenticationError):
        impostor.create_order(PERP, "market", "buy", 10, params={"label": "x"})


# ------------------------------------------------------------------ Deribit's own rules over HTTP
def _signed_get(url: str, path: str, *, ts: int, nonce: str, order: tuple[str, ...]) -> tuple[int, dict]:
    """A private GET signed as Deribit documents it, its header parts in the given order."""
    import hashlib
    import hmac
    import json
    import urllib.error
    import urllib.request

    from controller.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET

    payload = f"{ts}\n{nonce}\nGET\n{path}\n\n"
    sig = hmac.new(DEFAULT_API_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    parts = {"id": DEFAULT_API_KEY, "ts": str(ts), "nonce": nonce, "sig": sig}
    header = "deri-hmac-sha256 " + ",".join(f"{k}={parts[k]}" for k in order)
    request = urllib.request.Request(url + path, headers={"Authorization": header})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_deribits_documented_header_order_is_accepted_and_stale_or_replayed_requests_refused(server):
    import time

    path = "/api/v2/private/get_account_summary?currency=BTC"
    now = int(time.time() * 1000)
    documented = ("id", "ts", "nonce", "sig")  # the order of Deribit's own curl example
    status, reply = _signed_get(server.url, path, ts=now, nonce="abc123", order=documented)
    assert status == 200 and reply["result"]["currency"] == "BTC"
    status, reply = _signed_get(server.url, path, ts=now, nonce="abc123", order=documented)
    assert reply["error"]["code"] == 13009 and "already used" in reply["error"]["data"]["reason"]
    stale = now - 61_000  # "valid for 60 seconds since generation"
    status, reply = _signed_get(server.url, path, ts=stale, nonce="fresh", order=("id", "ts", "sig", "nonce"))
    assert reply["error"]["code"] == 13009 and "60 s" in reply["error"]["data"]["reason"]


def test_missing_parameters_are_invalid_params_naming_the_parameter(client):
    with pytest.raises(ccxt.BadRequest, match="-32602") as caught:
        client.publicGetGetBookSummaryByCurrency({})
    assert '"param": "currency"' in str(caught.value)


def test_a_fractional_futures_amount_is_non_integer_contract_amount(client):
    client.load_markets()
    with pytest.raises(ccxt.InvalidOrder, match="non_integer_contract_amount"):
        client.privateGetBuy({"instrument_name": "BTC-PERPETUAL", "amount": 15, "type": "market"})


def test_perpetual_orders_beyond_the_price_band_trade_at_its_edge(client, engine):
    """Deribit's perpetual band is ±1.5 % of the mark: a buy limit above max_price is placed at
    max_price (and fills at the touch); the ticker publishes the band."""
    client.load_markets()
    mark = engine.quote("BTC-PERPETUAL").mark_price
    ticker = client.fetch_ticker(PERP)["info"]
    assert ticker["max_price"] == pytest.approx(mark * 1.015, abs=0.5)
    assert ticker["min_price"] == pytest.approx(mark * 0.985, abs=0.5)
    order = client.create_order(PERP, "limit", "buy", 100, round(mark * 1.10), params={"label": "band"})
    assert order["price"] == pytest.approx(ticker["max_price"])
    assert order["status"] == "closed" and order["average"] < ticker["max_price"]


def test_an_orders_trades_and_fees_through_get_user_trades_by_order(client, engine):
    client.load_markets()
    order = client.create_order(PERP, "market", "sell", 1000, params={"label": "fees"})
    trades = client.fetch_order_trades(order["id"], PERP)
    assert [t["order"] for t in trades] == [order["id"]]
    (sim_trade,) = engine.orders[order["id"]].trades
    assert trades[0]["fee"]["cost"] == pytest.approx(sim_trade.fee) and sim_trade.fee > 0  # taker: a cost
    assert trades[0]["info"]["liquidity"] == "T" and trades[0]["info"]["fee_currency"] == "BTC"
    assert "commission" not in order["info"]
