"""A venue per currency on one two-currency simulator: in process, and over HTTP through ccxt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.sim import SimConfig
from controller.sim.multi import MultiSim, currency_config
from controller.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimServer
from controller.venues import OrderRequest, Side
from controller.venues.ccxt_deribit import CcxtVenue, CcxtVenueSettings
from controller.venues.settings import SimSettings, StartingPosition
from controller.venues.sim import SimSetupError, SimVenue, open_sim_venues

BTC = SimSettings(currency="BTC", hedge_instrument="BTC-PERPETUAL", initial_balance=5.0)
ETH = SimSettings(currency="ETH", hedge_instrument="ETH-PERPETUAL", initial_balance=100.0)


def test_each_venue_reads_and_trades_its_own_currency_on_one_clock():
    venues = open_sim_venues(
        [BTC, ETH], books={"ETH": [StartingPosition(kind="perpetual", size=-3_000.0)]}, rho=0.8
    )
    btc, eth = venues["BTC"], venues["ETH"]
    assert set(eth.load_instruments()) == set(eth.engine.listed) and all(
        n.startswith("ETH-") for n in eth.load_instruments()
    )
    btc.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 1_000.0, "lv-m-1-0"))
    a, b = btc.snapshot(), eth.snapshot()
    assert [p.name for p in a.positions] == ["BTC-PERPETUAL"] and [p.name for p in b.positions] == [
        "ETH-PERPETUAL"
    ]
    assert a.equity_coin == pytest.approx(btc.engine.account().equity) and a.equity_coin < 5.0
    assert b.equity_coin == pytest.approx(eth.engine.account().equity)
    assert b.index_price == pytest.approx(eth.engine.market().index) and b.hedge.name == "ETH-PERPETUAL"
    assert eth.get_order(label="lv-m-1-0") is None  # BTC's order is not on the ETH wallet
    btc.advance(3_600)
    assert btc.now == eth.now and eth.snapshot().taken_at == btc.now


def test_an_eth_venue_over_http_sees_what_the_in_process_one_sees():
    base = SimConfig(seed=4, initial_balance=80.0)
    multi = MultiSim.correlated([currency_config(c, base=base) for c in ("BTC", "ETH")])
    local = SimVenue.on(multi, "ETH", use_vol_index=True)
    with SimServer(multi, port=0, speed=0.0) as server:
        remote = CcxtVenue(
            CcxtVenueSettings(
                rest_url=server.url, currency="ETH", hedge_instrument="ETH-PERPETUAL", use_vol_index=True
            ),
            api_key=DEFAULT_API_KEY,
            api_secret=DEFAULT_API_SECRET,
            clock=lambda: multi.now,
        )
        put = sorted(n for n in remote.load_instruments() if n.endswith("-P"))[10]
        sold = remote.place_order(OrderRequest(put, Side.SELL, 2.0, "lv-h-1-0"))
        local.place_order(OrderRequest("ETH-PERPETUAL", Side.BUY, 500.0, "lv-h-1-1"))
        a, b = remote.snapshot(), local.snapshot()
        assert remote.get_order(order_id=sold.order_id).order_id == sold.order_id
    assert sold.order_id.startswith("ETH-")
    assert a.positions == b.positions and len(a.positions) == 2
    assert a.chain == b.chain and all(c.name.startswith("ETH-") for c in a.chain)
    assert (a.equity_coin, a.index_price, a.vol_index) == (b.equity_coin, b.index_price, b.vol_index)
    assert multi.engine("BTC").positions == {}


def write_history(path, price: float) -> str:
    start = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
    rows = [f"{start + h * 7_200_000},{price * (1 + 0.01 * h)},60,0.0001" for h in range(6)]
    path.write_text("timestamp_ms,index_usd,dvol,funding_rate_8h\n" + "\n".join(rows) + "\n")
    return str(path)


def test_both_currencies_replay_their_own_histories(tmp_path):
    btc = SimSettings(currency="BTC", replay=write_history(tmp_path / "btc.csv", 40_000.0))
    eth = SimSettings(
        currency="ETH", hedge_instrument="ETH-PERPETUAL", replay=write_history(tmp_path / "eth.csv", 2_000.0)
    )
    venues = open_sim_venues([btc, eth])
    assert venues["BTC"].snapshot().index_price == 40_000.0
    venues["ETH"].advance(2 * 7_200)
    assert venues["ETH"].snapshot().index_price == pytest.approx(2_040.0)
    assert venues["BTC"].snapshot().index_price == pytest.approx(40_800.0)
    with pytest.raises(SimSetupError, match="every currency's history or none"):
        open_sim_venues([btc, ETH])
