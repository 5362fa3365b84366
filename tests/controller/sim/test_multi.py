"""The two-currency exchange in process: one clock, a wallet per currency, requests routed by currency."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.sim import SimConfig, SimError, SimExchange
from controller.sim.deribit_api import DeribitApi
from controller.sim.deribit_router import BY_CURRENCY, BY_CURRENCY_OR_EVERY, DeribitRouter
from controller.sim.multi import MultiSim, currency_config


def two_currencies(**base: object) -> MultiSim:
    config = SimConfig(**{"seed": 11, "initial_balance": 50.0, **base})  # type: ignore[arg-type]
    return MultiSim.correlated([currency_config(c, base=config) for c in ("BTC", "ETH")], rho=0.8)


@pytest.fixture
def multi() -> MultiSim:
    return two_currencies()


def test_one_clock_for_every_engine(multi):
    btc, eth = multi.engine("BTC"), multi.engine("ETH")
    assert btc.now == eth.now == multi.now
    multi.advance(86400 * 1.5 + 17)
    assert btc.now == eth.now == multi.now
    for engine in (btc, eth):  # each engine reads its own path at the shared time
        assert engine.market().index == engine.path.state_at(multi.now).index
    assert btc.settlement_prices and eth.settlement_prices  # both settled the 08:00 session on the way
    with pytest.raises(ValueError):
        multi.advance_to(multi.now - timedelta(seconds=1))


def test_each_currency_lists_its_own_instruments_with_deribits_specs(multi):
    eth = multi.engine("ETH")
    perp = eth.instrument("ETH-PERPETUAL")
    assert (perp.contract_size, perp.tick_size, perp.min_amount) == (1.0, 0.05, 1.0)
    assert all(name.startswith("ETH-") for name in eth.listed)
    assert all(name.startswith("BTC-") for name in multi.engine("BTC").listed)
    assert 2_000 < eth.market().index < 4_500 and eth.market().atm_vol == pytest.approx(0.75, abs=0.1)


def test_a_single_currency_config_is_unchanged():
    """currency_config is for the multi-currency exchange; SimConfig alone still means what it did."""
    assert SimExchange(SimConfig()).path.state_at(SimConfig().start).index == pytest.approx(90_000.0)
    assert currency_config("BTC").id_prefix == "" and currency_config("ETH").id_prefix == "ETH-"


def test_order_ids_are_unique_across_engines_and_route_back(multi):
    router = DeribitRouter(multi)
    btc = router.call("private/buy", {"instrument_name": "BTC-PERPETUAL", "amount": "100", "type": "market"})
    eth = router.call("private/buy", {"instrument_name": "ETH-PERPETUAL", "amount": "100", "type": "market"})
    btc_id, eth_id = btc["order"]["order_id"], eth["order"]["order_id"]
    assert (btc_id, eth_id) == ("SIM-1", "ETH-SIM-1")
    assert eth["trades"][0]["trade_id"] == "ETH-SIMT-1" and eth["trades"][0]["fee_currency"] == "ETH"
    assert router.call("private/get_order_state", {"order_id": eth_id})["instrument_name"] == "ETH-PERPETUAL"
    trades = router.call("private/get_user_trades_by_order", {"order_id": eth_id})
    assert [t["trade_id"] for t in trades] == ["ETH-SIMT-1"]
    low = round(multi.engine("ETH").quote("ETH-PERPETUAL").mark_price * 0.99 / 0.05) * 0.05
    resting = router.call(
        "private/buy",
        {"instrument_name": "ETH-PERPETUAL", "amount": "10", "type": "limit", "price": f"{low:.2f}"},
    )
    cancelled = router.call("private/cancel", {"order_id": resting["order"]["order_id"]})
    assert cancelled["order_state"] == "cancelled" and multi.engine("BTC").open_orders() == []
    with pytest.raises(SimError) as missing:
        router.call("private/get_order_state", {"order_id": "ETH-SIM-99"})
    assert missing.value.code == 10004


def test_each_request_reaches_its_currencys_engine(multi):
    router = DeribitRouter(multi)
    router.call("private/sell", {"instrument_name": "ETH-PERPETUAL", "amount": "300", "type": "market"})
    eth, btc = multi.engine("ETH"), multi.engine("BTC")
    assert eth.positions["ETH-PERPETUAL"].size == -300 and btc.positions == {}
    assert btc.balance == 50.0 and eth.balance < 50.0  # the taker fee, in ETH
    summary = router.call("private/get_account_summary", {"currency": "ETH"})
    assert summary["currency"] == "ETH" and summary["equity"] == pytest.approx(eth.account().equity)
    summaries = router.call("private/get_account_summaries", {})["summaries"]
    assert [s["currency"] for s in summaries] == ["BTC", "ETH"]
    assert [p["instrument_name"] for p in router.call("private/get_positions", {})] == ["ETH-PERPETUAL"]
    assert router.call("private/get_positions", {"currency": "BTC"}) == []
    index = router.call("public/get_index_price", {"index_name": "eth_usd"})["index_price"]
    assert index == eth.market().index
    assert (
        router.call("public/get_index_price", {"index_name": "btc_usd"})["index_price"] == btc.market().index
    )
    names = {i["instrument_name"] for i in router.call("public/get_instruments", {"currency": "ETH"})}
    assert names == set(eth.listed)
    everything = router.call("public/get_instruments", {})
    assert len(everything) == len(eth.listed) + len(btc.listed)
    assert [c["currency"] for c in router.call("public/get_currencies", {})] == ["BTC", "ETH"]
    book = router.call("public/get_book_summary_by_currency", {"currency": "ETH", "kind": "future"})
    assert {b["instrument_name"] for b in book} == {x.name for x in eth.instruments(kind="future")}
    ticker = router.call("public/ticker", {"instrument_name": "ETH-PERPETUAL"})
    assert ticker["index_price"] == eth.market().index
    vol = router.call(
        "public/get_volatility_index_data",
        {"currency": "ETH", "resolution": "60", "start_timestamp": "0", "end_timestamp": str(10**13)},
    )
    assert vol["data"][-1][4] == pytest.approx(eth.market().atm_vol * 100, abs=1e-6)


@pytest.mark.parametrize("method", sorted(BY_CURRENCY | BY_CURRENCY_OR_EVERY))
def test_an_unknown_currency_is_answered_as_the_single_currency_simulator_answers(multi, method):
    params = {
        "currency": "SOL",
        "label": "x",
        "resolution": "60",
        "start_timestamp": "0",
        "end_timestamp": "1",
    }
    single = DeribitApi(SimExchange(SimConfig(seed=11, initial_balance=50.0)))
    assert _outcome(DeribitRouter(multi), method, params) == _outcome(single, method, params)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("public/ticker", {"instrument_name": "SOL-PERPETUAL"}),
        ("private/buy", {"instrument_name": "SOL-PERPETUAL", "amount": "10", "type": "market"}),
        ("public/ticker", {}),
        ("private/cancel", {"order_id": "SIM-404"}),
        ("public/get_no_such_method", {}),
    ],
)
def test_what_names_no_engine_is_refused_as_before(multi, method, params):
    single = DeribitApi(SimExchange(SimConfig(seed=11, initial_balance=50.0)))
    outcome = _outcome(DeribitRouter(multi), method, params)
    assert outcome == _outcome(single, method, params) and outcome[0] == "error"


def _outcome(api: DeribitApi | DeribitRouter, method: str, params: dict[str, str]) -> tuple[str, object]:
    try:
        reply = api.call(method, params)
    except SimError as exc:
        return "error", (exc.code, exc.message, exc.data)
    return "result", reply if isinstance(reply, list) and not reply else type(reply).__name__


def test_a_shock_moves_one_currency_or_every_one(multi):
    btc, eth = multi.engine("BTC"), multi.engine("ETH")
    before = btc.market().index, eth.market().index
    multi.shock(currency="ETH", price_factor=0.5)
    assert btc.market().index == before[0] and eth.market().index == pytest.approx(before[1] * 0.5)
    multi.shock(price_factor=2.0, vol_shift=0.1)
    assert btc.market().index == pytest.approx(before[0] * 2) and eth.market().index == pytest.approx(
        before[1]
    )
    with pytest.raises(KeyError):
        multi.shock(currency="SOL", price_factor=0.9)


def test_a_shock_liquidates_only_its_own_wallet(multi):
    """800 coin long on 50 coin of equity in each wallet (initial margin 48, maintenance 40): a 3 %
    fall of BTC takes the BTC wallet below maintenance and leaves the ETH wallet alone."""
    btc, eth = multi.engine("BTC"), multi.engine("ETH")
    btc_usd = round(800 * btc.market().index / 10) * 10.0
    eth_usd = float(round(800 * eth.market().index))
    btc.place_order(name="BTC-PERPETUAL", direction="buy", amount=btc_usd)
    eth.place_order(name="ETH-PERPETUAL", direction="buy", amount=eth_usd)
    multi.shock(currency="BTC", price_factor=0.97)
    assert [e for e in btc.events if e.kind == "liquidation"]
    assert btc.positions["BTC-PERPETUAL"].size < btc_usd
    assert not [e for e in eth.events if e.kind in ("liquidation", "bankrupt")]
    assert eth.positions["ETH-PERPETUAL"].size == eth_usd


def test_engines_that_cannot_share_an_exchange_are_refused():
    btc = SimExchange(currency_config("BTC"))
    with pytest.raises(ValueError, match="one engine per currency"):
        MultiSim([btc, SimExchange(currency_config("BTC"))])
    with pytest.raises(ValueError, match="unique"):
        MultiSim([btc, SimExchange(SimConfig(listing=currency_config("ETH").listing))])
    later = currency_config("ETH", base=SimConfig(start=SimConfig().start + timedelta(hours=1)))
    with pytest.raises(ValueError, match="start"):
        MultiSim([btc, SimExchange(later)])
    with pytest.raises(ValueError):
        currency_config("SOL")
