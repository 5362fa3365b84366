"""The real ccxt client against one HTTP simulator serving BTC and ETH (a wallet each, one clock)."""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest

from controller.sim import SimConfig
from controller.sim.multi import MultiSim, currency_config
from controller.sim.server import SimServer
from tests.controller.conftest import Admin, make_client

BTC_PERP, ETH_PERP = "BTC/USD:BTC", "ETH/USD:ETH"


@pytest.fixture
def multi() -> MultiSim:
    base = SimConfig(seed=11, initial_balance=50.0)
    return MultiSim.correlated([currency_config(c, base=base) for c in ("BTC", "ETH")])


@pytest.fixture
def served(multi: MultiSim) -> Iterator[tuple[Any, Admin]]:
    with SimServer(multi, port=0, speed=0.0) as server:
        yield make_client(server.url), Admin(server.url)


def test_ccxt_loads_both_currencies_markets_with_deribits_specs(served, multi):
    client, _ = served
    markets = client.load_markets()
    assert len(markets) == sum(len(e.listed) for e in multi.engines.values())
    eth = markets[ETH_PERP]
    assert eth["id"] == "ETH-PERPETUAL" and eth["inverse"] and eth["settle"] == "ETH"
    assert eth["contractSize"] == 1.0 and eth["precision"]["price"] == 0.05
    assert markets[BTC_PERP]["contractSize"] == 10.0 and markets[BTC_PERP]["precision"]["price"] == 0.5
    eth_options = [m for m in markets.values() if m["option"] and m["base"] == "ETH"]
    assert eth_options and all(m["settle"] == "ETH" for m in eth_options)


def test_ccxt_reads_both_wallets_and_an_eth_order_moves_only_the_eth_one(served, multi):
    client, _ = served
    btc, eth = multi.engine("BTC"), multi.engine("ETH")
    client.load_markets()
    ask = eth.quote("ETH-PERPETUAL").best_ask
    order = client.create_order(ETH_PERP, "market", "buy", 6_000, params={"label": "lv-e-1-0"})
    assert order["status"] == "closed" and order["average"] == pytest.approx(ask)
    assert order["id"].startswith("ETH-")
    assert client.fetch_order(order["id"], ETH_PERP)["filled"] == 6_000

    balance = client.fetch_balance()  # no code: get_account_summaries, one summary per currency
    assert balance["BTC"]["total"] == pytest.approx(btc.account().equity) == pytest.approx(50.0)
    assert balance["ETH"]["total"] == pytest.approx(eth.account().equity)
    assert balance["ETH"]["total"] < 50.0  # the taker fee, paid in ETH
    assert client.fetch_balance({"code": "ETH"})["ETH"]["total"] == pytest.approx(eth.account().equity)

    positions = client.fetch_positions()
    assert [p["info"]["instrument_name"] for p in positions] == ["ETH-PERPETUAL"]
    assert positions[0]["contracts"] == 6_000 and positions[0]["info"]["kind"] == "future"
    assert client.fetch_positions(params={"currency": "BTC"}) == []
    assert btc.positions == {} and btc.orders == {} and btc.balance == 50.0


def test_ccxt_rests_and_cancels_an_eth_order_by_its_id(served, multi):
    client, _ = served
    client.load_markets()
    eth = multi.engine("ETH")
    low = round(eth.quote("ETH-PERPETUAL").mark_price * 0.99 / 0.05) * 0.05
    resting = client.create_order(ETH_PERP, "limit", "buy", 100, low, params={"label": "lv-e-2-0"})
    assert [o["id"] for o in client.fetch_open_orders(params={"currency": "ETH"})] == [resting["id"]]
    assert client.fetch_open_orders(params={"currency": "BTC"}) == []
    cancelled = client.cancel_order(resting["id"], ETH_PERP)
    assert cancelled["status"] == "canceled" and eth.orders[resting["id"]].state == "cancelled"


def test_a_btc_shock_liquidates_only_the_btc_wallet(served, multi):
    """800 coin long on 50 coin in each wallet; BTC falls 3 % (POST /_sim/move with a currency)."""
    client, admin = served
    client.load_markets()
    btc, eth = multi.engine("BTC"), multi.engine("ETH")
    btc_usd = round(800 * btc.market().index / 10) * 10
    eth_usd = round(800 * eth.market().index)
    client.create_order(BTC_PERP, "market", "buy", btc_usd)
    client.create_order(ETH_PERP, "market", "buy", eth_usd)
    eth_before = client.fetch_balance({"code": "ETH"})["ETH"]["total"]

    state = admin.post("/_sim/move", {"currency": "BTC", "price_factor": 0.97})
    assert state["currency"] == "BTC" and any(e["kind"] == "liquidation" for e in state["events"])

    positions = {p["info"]["instrument_name"]: p["contracts"] for p in client.fetch_positions()}
    assert positions["ETH-PERPETUAL"] == eth_usd and positions.get("BTC-PERPETUAL", 0) < btc_usd
    assert client.fetch_balance({"code": "ETH"})["ETH"]["total"] == pytest.approx(eth_before)
    everything = admin.get("/_sim/state")["currencies"]
    assert not [e for e in everything["ETH"]["events"] if e["kind"] in ("liquidation", "bankrupt")]


def test_the_admin_clock_and_shocks_move_every_engine(served, multi):
    _, admin = served
    before = {c: e.market().index for c, e in multi.engines.items()}
    state = admin.post("/_sim/advance", {"seconds": 7200})
    assert state["currencies"]["BTC"]["now"] == state["currencies"]["ETH"]["now"] == state["now"]
    assert multi.engine("BTC").now == multi.engine("ETH").now == multi.now
    moved = {c: e.market().index for c, e in multi.engines.items()}
    admin.post("/_sim/move", {"price_factor": 0.5})  # no currency: every market
    for currency, engine in multi.engines.items():
        assert engine.market().index == pytest.approx(moved[currency] * 0.5)
    assert admin.get("/_sim/state?currency=ETH")["index"] == pytest.approx(moved["ETH"] * 0.5)
    assert before != moved
    with pytest.raises(urllib.error.HTTPError) as refused:
        admin.post("/_sim/move", {"currency": "SOL", "price_factor": 0.9})
    assert refused.value.code == 400
