"""The simulated exchange engine: market, listing, orders, margin, funding, settlement, liquidation."""

from __future__ import annotations

import contextlib
import math
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pricing
from controller.sim import SimConfig, SimError, SimExchange
from controller.sim.margin import MarginParams, future_margins, option_margins
from controller.sim.market import StochasticVolParams, StochasticVolPath

PERP = "BTC-PERPETUAL"


def fresh(**overrides) -> SimExchange:
    return SimExchange(SimConfig(**overrides))


def an_option(engine: SimExchange, *, call: bool, moneyness: float, expiry_rank: int = 1) -> str:
    index = engine.market().index
    expiries = sorted({x.expiry for x in engine.instruments(kind="option")})
    listed = [
        x
        for x in engine.instruments(kind="option")
        if x.expiry == expiries[expiry_rank] and x.is_call == call
    ]
    return min(listed, key=lambda x: abs(x.strike - moneyness * index)).name


# ------------------------------------------------------------------ market


def test_the_path_depends_on_seed_and_time_not_on_how_it_is_asked():
    a, b = fresh(seed=3), fresh(seed=3)
    a.advance(86400 * 5)
    for _ in range(40):
        b.advance(86400 * 5 / 40)
    assert a.now == b.now and a.market() == b.market()
    c = fresh(seed=4)
    c.advance(86400 * 5)
    assert c.market().index != a.market().index


def test_stochastic_vol_path_has_the_stated_dynamics():
    params = StochasticVolParams(jump_intensity=0.0, step_s=3600.0)
    path = StochasticVolPath(seed=1, start=SimConfig().start, params=params)
    hours = 24 * 365 * 4
    states = [path.state_at(path.start + timedelta(hours=h)) for h in range(hours)]
    log_s = np.log([s.index for s in states])
    vols = np.array([s.atm_vol for s in states])
    realised = np.std(np.diff(log_s)) * math.sqrt(24 * 365)
    assert realised == pytest.approx(params.realised_ratio * np.sqrt(np.mean(vols[:-1] ** 2)), rel=0.05)
    assert np.exp(np.mean(np.log(vols))) == pytest.approx(params.vol_mean, rel=0.15)  # mean-reverting
    returns, vol_changes = np.diff(log_s), np.diff(np.log(vols))
    assert np.corrcoef(returns, vol_changes)[0, 1] < -0.3  # vol rises as the price falls


# ------------------------------------------------------------------ listing and quotes


def test_listing_is_deribit_like():
    engine = fresh()
    expiries = sorted({x.expiry for x in engine.instruments() if x.expiry is not None})
    assert len(expiries) >= 6
    assert all(e.weekday() == 4 and (e.hour, e.minute) == (8, 0) for e in expiries)
    assert PERP in engine.listed
    futures = [x for x in engine.instruments(kind="future") if not x.is_perpetual]
    assert futures and all((x.expiry + timedelta(days=7)).month != x.expiry.month for x in futures)
    for x in engine.instruments(kind="option"):
        parsed = pricing.parse_deribit_name(x.name)
        assert (parsed.strike, parsed.is_call, parsed.expiry) == (x.strike, x.is_call, x.expiry)


def test_option_marks_are_black76_at_the_smile():
    engine = fresh()
    for name in (an_option(engine, call=True, moneyness=1.2), an_option(engine, call=False, moneyness=0.8)):
        x, q = engine.listed[name], engine.quote(name)
        t = pricing.year_fraction(start=engine.now, end=x.expiry)
        usd = pricing.black_price(
            forward=q.underlying_price, strike=x.strike, t_years=t, vol=q.mark_iv, is_call=x.is_call
        )
        assert q.mark_price == pytest.approx(float(usd) / q.underlying_price, abs=1e-8)
        assert q.best_bid < q.mark_price < q.best_ask
        for price in (q.best_bid, q.best_ask):
            assert abs(price / x.tick_size - round(price / x.tick_size)) < 1e-6
    put_wing, call_wing = (
        an_option(engine, call=False, moneyness=0.7),
        an_option(engine, call=True, moneyness=1.3),
    )
    assert engine.quote(put_wing).mark_iv > engine.quote(call_wing).mark_iv  # put skew


# ------------------------------------------------------------------ orders


def test_market_orders_fill_at_the_touch_with_fees():
    engine = fresh()
    q = engine.quote(PERP)
    buy = engine.place_order(name=PERP, direction="buy", amount=50_000, label="a")
    assert buy.state == "filled" and buy.average_price == q.best_ask
    assert buy.commission == pytest.approx(50_000 / q.best_ask * 0.0005)
    name = an_option(engine, call=True, moneyness=1.05)
    oq = engine.quote(name)
    sell = engine.place_order(name=name, direction="sell", amount=1.0, label="b")
    assert sell.average_price == oq.best_bid
    assert sell.commission == pytest.approx(min(0.0003, 0.125 * oq.best_bid))


def test_limit_orders_rest_and_fill_when_the_market_reaches_them():
    engine = fresh()
    mark = engine.quote(PERP).mark_price
    buy = engine.place_order(
        name=PERP,
        direction="buy",
        amount=1000,
        order_type="limit",
        price=round(mark * 0.97 / 0.5) * 0.5,
        label="l",
    )
    assert buy.state == "open" and engine.positions == {}
    engine.shock(price_factor=0.95)
    assert buy.state == "filled" and buy.trades[0].liquidity == "M" and buy.commission == 0.0
    assert engine.positions[PERP].size == 1000


def test_post_only_and_reduce_only_are_honoured():
    engine = fresh()
    ask = engine.quote(PERP).best_ask
    with pytest.raises(SimError) as crossed:
        engine.place_order(
            name=PERP, direction="buy", amount=10, order_type="limit", price=ask, post_only=True
        )
    assert crossed.value.code == 11054
    repriced = engine.place_order(
        name=PERP,
        direction="buy",
        amount=10,
        order_type="limit",
        price=ask,
        post_only=True,
        reject_post_only=False,
    )
    assert repriced.state == "open" and repriced.price == engine.quote(PERP).best_bid
    with pytest.raises(SimError) as nothing_to_reduce:
        engine.place_order(name=PERP, direction="sell", amount=10, reduce_only=True)
    assert nothing_to_reduce.value.code == 11030
    engine.place_order(name=PERP, direction="buy", amount=100, label="long")
    clipped = engine.place_order(name=PERP, direction="sell", amount=500, reduce_only=True, label="close")
    assert clipped.amount == 100 and engine.positions[PERP].size == 0.0


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"name": "BTC-1JAN20", "amount": 10}, 10020),
        ({"amount": 15}, 10027),
        ({"amount": -10}, 10021),
        ({"amount": 10, "order_type": "limit", "price": 90_000.2}, 10043),
        ({"amount": 10, "order_type": "stop_market"}, 11029),
        ({"amount": 10, "direction": "hold"}, 11029),
        ({"amount": 10, "label": "x" * 65}, 11029),
    ],
)
def test_invalid_orders_carry_deribits_codes(kwargs, code):
    engine = fresh()
    args = {"name": PERP, "direction": "buy", **kwargs}
    with pytest.raises(SimError) as caught:
        engine.place_order(**args)
    assert caught.value.code == code
    assert engine.orders == {} and engine.positions == {}


def test_insufficient_margin_is_rejected_and_changes_nothing():
    engine = fresh(initial_balance=1.0)
    before = engine.ledger()
    with pytest.raises(SimError) as caught:
        engine.place_order(name=PERP, direction="sell", amount=5_000_000, label="big")
    assert caught.value.code == 10009
    assert engine.ledger() == before and engine.positions == {}
    # reducing orders need no margin
    engine.place_order(name=PERP, direction="buy", amount=20_000, label="ok")
    engine.place_order(name=PERP, direction="sell", amount=20_000, label="flat")


def test_cancel_and_lookups():
    engine = fresh()
    order = engine.place_order(
        name=PERP, direction="sell", amount=10, order_type="limit", price=200_000.0, label="lbl"
    )
    assert engine.orders_by_label("lbl") == [order] and engine.open_orders() == [order]
    engine.cancel(order.order_id)
    with pytest.raises(SimError) as again:
        engine.cancel(order.order_id)
    assert again.value.code == 11044
    with pytest.raises(SimError) as missing:
        engine.order("SIM-0")
    assert missing.value.code == 10004


def uncached_account(engine: SimExchange):
    """The account computed afresh: the engine's caches of marks, views and figures dropped."""
    engine._quotes.clear()
    engine._views = engine._account = engine._market = None
    return engine.account()


def test_cached_account_figures_follow_fills_time_shocks_orders_and_settlement():
    engine = fresh(initial_balance=50.0)
    option = an_option(engine, call=False, moneyness=0.95, expiry_rank=0)
    steps = [
        lambda: engine.place_order(name=PERP, direction="buy", amount=20_000, label="a"),
        lambda: engine.place_order(name=option, direction="sell", amount=1.0, label="b"),
        lambda: engine.advance(3600),
        lambda: engine.shock(price_factor=0.97, vol_shift=0.05),
        lambda: engine.place_order(
            name=PERP, direction="buy", amount=5_000, order_type="limit", price=1000.0, label="c"
        ),
        lambda: engine.cancel(engine.orders_by_label("c")[0].order_id),
        lambda: engine.advance(10 * 86400),  # past the first expiry: settlement, a new listing
    ]
    for step in steps:
        step()
        cached = engine.account()
        assert cached == uncached_account(engine)
        assert engine.account() == cached


def test_the_open_order_index_keeps_only_open_orders():
    engine = fresh()
    orders = [
        engine.place_order(
            name=PERP, direction="buy", amount=10, order_type="limit", price=1000.0 + i, label=f"o{i}"
        )
        for i in range(3)
    ]
    resting_margin = engine.account().initial_margin
    assert resting_margin > 0 and engine.book.has_open()
    for order in orders[:2]:
        engine.cancel(order.order_id)
    assert engine.open_orders() == [orders[2]] and list(engine.book._open) == [orders[2].order_id]
    assert 0 < engine.account().initial_margin < resting_margin
    engine.cancel(orders[2].order_id)
    assert not engine.book.has_open() and engine.account().initial_margin == 0.0
    assert len(engine.orders) == 3  # every order can still be looked up


# ------------------------------------------------------------------ margin formulas


def test_margin_formulas():
    p = MarginParams()
    im, mm = future_margins(size_usd=-900_000, mark=90_000, params=p)  # 10 coin
    assert im == pytest.approx(10 * (0.02 + 0.00005 * 10)) and mm == pytest.approx(10 * (0.01 + 0.00005 * 10))
    # short call 10 % out of the money, mark 0.02 coin: IM = max(0.15 - 0.1, 0.1) + 0.02
    im, mm = option_margins(
        size=-2, mark_coin=0.02, underlying=100_000, strike=110_000, is_call=True, params=p
    )
    assert im == pytest.approx(2 * 0.12) and mm == pytest.approx(2 * 0.095)
    # short put 2 % out of the money: IM = 0.15 - 0.02 + mark
    im, mm = option_margins(
        size=-1, mark_coin=0.03, underlying=100_000, strike=98_000, is_call=False, params=p
    )
    assert im == pytest.approx(0.13 + 0.03) and mm == pytest.approx(0.075 + 0.03)
    assert option_margins(size=3, mark_coin=0.03, underlying=1, strike=1, is_call=True, params=p) == (
        0.0,
        0.0,
    )


# ------------------------------------------------------------------ funding, settlement, liquidation


def test_funding_is_paid_by_longs_when_positive():
    # a flat premium of 0.03 %: Deribit's dead band leaves 0.03 % − 0.025 % = 0.005 % per 8 h
    engine = fresh(market=StochasticVolParams(funding_vol=0.0, funding0=0.0003, funding_mean=0.0003))
    engine.place_order(name=PERP, direction="buy", amount=90_000, label="long")
    balance, index = engine.balance, engine.market().index
    engine.advance(3600)  # twelve 5-minute steps
    paid = balance - engine.balance
    assert paid == pytest.approx(90_000 / index * 0.00005 / 8, rel=0.02)
    assert engine.positions[PERP].funding == pytest.approx(-paid)


def test_options_settle_at_expiry_and_new_expiries_are_listed():
    engine = fresh()
    name = an_option(engine, call=True, moneyness=0.9, expiry_rank=0)
    expiry = engine.listed[name].expiry
    engine.place_order(name=name, direction="buy", amount=1.0, label="itm")
    engine.advance_to(expiry + timedelta(minutes=1))
    assert name not in engine.listed and name not in engine.positions
    event = next(e for e in engine.events if e.kind == "settlement" and name in e.message)
    assert event.time == expiry
    assert min(x.expiry for x in engine.instruments() if x.expiry) > expiry
    ledger = engine.ledger()
    assert ledger["equity"] - ledger["start"] == pytest.approx(
        ledger["realised"] + ledger["unrealised"] + ledger["funding"] - ledger["fees"] + ledger["insurance"],
        abs=1e-12,
    )


def test_settlement_pays_intrinsic_value_in_coin():
    engine = fresh()
    name = an_option(engine, call=False, moneyness=1.1, expiry_rank=0)
    strike, expiry = engine.listed[name].strike, engine.listed[name].expiry
    bought = engine.place_order(name=name, direction="buy", amount=2.0, label="p")
    balance_after_buy = engine.balance
    engine.advance_to(expiry)
    # delivered at the 30-minute average of the index: six 5-minute steps of the path, equally weighted
    steps = [engine.path.state_at(expiry - timedelta(minutes=30 - 5 * k)).index for k in range(6)]
    delivery = sum(steps) / 6
    assert delivery != pytest.approx(engine.market().index, rel=1e-9)  # not the index at 08:00
    assert engine.balance - balance_after_buy == pytest.approx(
        2.0 * max(strike - delivery, 0.0) / delivery, abs=1e-9
    )
    assert bought.state == "filled"


def test_liquidation_when_equity_falls_below_maintenance():
    engine = fresh(initial_balance=1.0)
    engine.place_order(
        name=PERP, direction="sell", amount=2_000_000, label="short"
    )  # ~22 coin short on 1 coin
    engine.shock(price_factor=1.035)  # equity just below maintenance
    kinds = [e.kind for e in engine.events]
    assert "liquidation" in kinds and "bankrupt" not in kinds
    account = engine.account()
    # reduced step by step until the maintenance margin is met, not closed outright
    assert -2_000_000 < engine.positions[PERP].size < 0.0
    assert account.equity >= account.maintenance_margin > 0
    ledger = engine.ledger()
    assert ledger["equity"] - ledger["start"] == pytest.approx(
        ledger["realised"] + ledger["unrealised"] + ledger["funding"] - ledger["fees"] + ledger["insurance"],
        abs=1e-12,
    )


# ------------------------------------------------------------------ conservation

action = st.one_of(
    st.tuples(st.just("perp"), st.sampled_from(["buy", "sell"]), st.integers(1, 300)),
    st.tuples(st.just("future"), st.sampled_from(["buy", "sell"]), st.integers(1, 300)),
    st.tuples(
        st.just("option"),
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 30),
        st.floats(0.7, 1.3),
        st.booleans(),
    ),
    st.tuples(st.just("limit"), st.sampled_from(["buy", "sell"]), st.integers(1, 100), st.floats(0.97, 1.03)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("advance"), st.floats(60, 86400 * 3)),
    st.tuples(st.just("shock"), st.floats(0.85, 1.15), st.floats(-0.1, 0.1)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), actions=st.lists(action, min_size=1, max_size=25))
def test_the_engine_creates_no_money(seed, actions):
    engine = fresh(seed=seed, initial_balance=100.0)
    for act in actions:
        with contextlib.suppress(SimError):  # refused orders change nothing: checked below too
            _apply(engine, act)
        ledger = engine.ledger()
        explained = (
            ledger["realised"]
            + ledger["unrealised"]
            + ledger["funding"]
            - ledger["fees"]
            + ledger["insurance"]
        )
        assert ledger["equity"] - ledger["start"] == pytest.approx(explained, abs=1e-9), act
        assert math.isfinite(ledger["equity"])


def _apply(engine: SimExchange, act: tuple) -> None:
    kind = act[0]
    if kind == "perp":
        engine.place_order(name=PERP, direction=act[1], amount=act[2] * 100.0, label="h")
    elif kind == "future":
        future = next(x.name for x in engine.instruments(kind="future") if not x.is_perpetual)
        engine.place_order(name=future, direction=act[1], amount=act[2] * 100.0, label="h")
    elif kind == "option":
        engine.place_order(
            name=an_option(engine, call=act[4], moneyness=act[3]),
            direction=act[1],
            amount=act[2] / 10.0,
            label="h",
        )
    elif kind == "limit":
        price = round(engine.quote(PERP).mark_price * act[3] / 0.5) * 0.5
        engine.place_order(
            name=PERP, direction=act[1], amount=act[2] * 10.0, order_type="limit", price=price, label="h"
        )
    elif kind == "cancel":
        open_orders = engine.open_orders()
        if open_orders:
            engine.cancel(open_orders[act[1] % len(open_orders)].order_id)
    elif kind == "advance":
        engine.advance(act[1])
    else:
        engine.shock(price_factor=act[1], vol_shift=act[2])
