"""The ccxt venue over the simulator's HTTP face: snapshots, orders, and faults at the boundary."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from controller.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET
from controller.venues import (
    FatalVenueError,
    MalformedReplyError,
    OrderRejectedError,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TemporaryVenueError,
)
from controller.venues.ccxt_deribit import CcxtVenue, CcxtVenueSettings
from controller.venues.sim import SimVenue

SNAPSHOT_METHODS = [
    "private/get_account_summary",
    "private/get_positions",
    "public/get_book_summary_by_currency",
    "public/ticker",
    "public/get_funding_rate_value",
]


def make_venue(server, engine, *, secret=DEFAULT_API_SECRET, timeout_ms=5000, **settings):
    return CcxtVenue(
        CcxtVenueSettings(rest_url=server.url, timeout_ms=timeout_ms, **settings),
        api_key=DEFAULT_API_KEY,
        api_secret=secret,
        clock=lambda: engine.now,
    )


def test_snapshot_reads_the_account(server, engine):
    venue = make_venue(server, engine)
    venue.place_order(OrderRequest("BTC-PERPETUAL", Side.SELL, 100_000, "lv-a-1-0"))
    snap = venue.snapshot()
    account = engine.account()
    assert snap.equity_coin == pytest.approx(account.equity)
    assert snap.maintenance_margin_coin == pytest.approx(account.maintenance_margin)
    assert snap.index_price == pytest.approx(engine.market().index)
    assert snap.funding_rate_8h == pytest.approx(
        engine.funding_between(engine.now - timedelta(hours=8), engine.now)
    )
    assert snap.hedge.name == "BTC-PERPETUAL" and snap.hedge.best_bid < snap.hedge.best_ask
    (perp,) = snap.positions
    assert perp.size == -100_000 and perp.exchange_greeks.delta == pytest.approx(-100_000 / perp.mark_price)
    assert len(snap.chain) == len(engine.instruments(kind="option"))
    assert all(0.05 < c.mark_iv < 5 for c in snap.chain)
    assert snap.server_time == engine.now and snap.rest_calls == 5


def test_the_two_venues_see_the_same_account(server, engine):
    http_venue = make_venue(server, engine, use_vol_index=True)
    local = SimVenue(engine, use_vol_index=True)
    name = sorted(n for n in http_venue.load_instruments() if n.endswith("-P"))[20]
    http_venue.place_order(OrderRequest(name, Side.SELL, 1.5, "lv-b-1-0"))
    local.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 20_000, "lv-b-1-1"))
    a, b = http_venue.snapshot(), local.snapshot()
    assert a.positions == b.positions
    assert a.chain == b.chain
    assert (a.equity_coin, a.index_price, a.vol_index) == (b.equity_coin, b.index_price, b.vol_index)
    assert a.vol_index == pytest.approx(engine.market().atm_vol)
    assert a.rest_calls == b.rest_calls == 6


def test_snapshot_costs_the_same_calls_for_1_and_200_positions(server, engine, admin):
    venue = make_venue(server, engine)
    venue.load_instruments()
    venue.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 10_000, "lv-c-0"))
    admin.clear_requests()
    small = venue.snapshot()
    one_position = admin.methods()
    options = sorted(x.name for x in engine.instruments(kind="option"))[:199]
    for i, name in enumerate(options):  # 199 long options + the perpetual = 200 positions
        engine.place_order(name=name, direction="buy", amount=0.1, label=f"lv-c-{i + 1}")
    admin.clear_requests()
    big = venue.snapshot()
    two_hundred = admin.methods()
    assert len(small.positions) == 1 and len(big.positions) == 200
    assert one_position == two_hundred == SNAPSHOT_METHODS
    assert len(two_hundred) <= 6 and big.rest_calls == small.rest_calls == 5


def test_orders_by_id_and_label_and_cancel(server, engine):
    venue = make_venue(server, engine)
    mark = engine.quote("BTC-PERPETUAL").mark_price
    limit = round(mark * 0.95 / 0.5) * 0.5
    placed = venue.place_order(
        OrderRequest("BTC-PERPETUAL", Side.BUY, 5000, "lv-d-7-0", OrderType.LIMIT, limit)
    )
    assert placed.status is OrderStatus.OPEN and placed.label == "lv-d-7-0" and placed.price == limit
    assert venue.get_order(order_id=placed.order_id) == placed
    assert venue.get_order(label="lv-d-7-0").order_id == placed.order_id
    assert venue.get_order(label="never-sent") is None
    assert venue.get_order(order_id="SIM-424242") is None
    assert [o.order_id for o in venue.open_orders()] == [placed.order_id]
    cancelled = venue.cancel_order(placed.order_id)
    assert cancelled.status is OrderStatus.CANCELLED and venue.open_orders() == []


def test_wrong_secret_is_a_fatal_error_without_the_secret(server, engine):
    secret = "wrong-secret-value-123"
    venue = make_venue(server, engine, secret=secret)
    with pytest.raises(FatalVenueError) as caught:
        venue.snapshot()
    message = str(caught.value)
    assert "API credentials" in message and "LEVCTL_API_KEY" in message
    assert secret not in message and secret not in repr(caught.value.__cause__ or "")


@pytest.mark.parametrize(
    ("fault", "explanation"),
    [
        ({"kind": "rate_limit"}, "rate limited"),
        ({"kind": "http", "status": 503}, "not available"),
        ({"kind": "http", "status": 502}, "not available"),
        ({"kind": "error", "code": 10041}, "maintenance"),
    ],
)
def test_temporary_faults_become_temporary_errors(server, engine, admin, fault, explanation):
    venue = make_venue(server, engine)
    venue.load_instruments()
    admin.fault(method="private/get_positions", **fault)
    with pytest.raises(TemporaryVenueError, match=explanation):
        venue.snapshot()
    assert venue.snapshot().rest_calls == 5  # the fault was one-shot: the next snapshot is whole


def test_a_hung_request_times_out_as_a_temporary_error(server, engine, admin):
    venue = make_venue(server, engine, timeout_ms=300)
    venue.load_instruments()
    admin.fault(method="public/ticker", kind="delay", seconds=1.5)
    started = time.monotonic()
    with pytest.raises(TemporaryVenueError, match="timed out"):
        venue.snapshot()
    assert time.monotonic() - started < 1.4


def test_rejected_orders_are_fatal_order_errors(server, engine, admin):
    venue = make_venue(server, engine)
    admin.fault(method="private/buy", kind="error", code=10009)
    with pytest.raises(OrderRejectedError, match="not enough funds"):
        venue.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 10, "lv-e-1-0"))
    # ccxt would truncate 15 USD to 10 and send it: the venue refuses before anything is sent
    with pytest.raises(OrderRejectedError, match="not a whole multiple of the lot size 10"):
        venue.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 15, "lv-e-1-1"))
    with pytest.raises(OrderRejectedError, match="tick size"):
        venue.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 10, "lv-e-1-3", OrderType.LIMIT, 50_000.25))
    admin.fault(method="private/sell", kind="error", code=10021)
    with pytest.raises(OrderRejectedError, match="rejected the order"):
        venue.place_order(OrderRequest("BTC-PERPETUAL", Side.SELL, 10, "lv-e-1-4"))
    with pytest.raises(FatalVenueError, match="does not list"):
        venue.place_order(OrderRequest("BTC-1JAN20", Side.BUY, 10, "lv-e-1-2"))
    assert engine.orders == {}
    assert admin.methods().count("private/buy") == 1  # only the injected failure reached the server


# ------------------------------------------------------------------ the exchange's clock, labels, bad replies


def test_server_time_is_the_exchanges_usout_not_the_local_clock(server, engine, admin):
    venue = CcxtVenue(
        CcxtVenueSettings(rest_url=server.url, timeout_ms=5000),
        api_key=DEFAULT_API_KEY,
        api_secret=DEFAULT_API_SECRET,
        clock=lambda: engine.now + timedelta(hours=3),  # a local clock far off
    )
    snap = venue.snapshot()
    assert snap.server_time == engine.now  # every reply's usOut, in virtual time
    assert (snap.taken_at - snap.server_time).total_seconds() == pytest.approx(3 * 3600)
    admin.post("/_sim/advance", {"seconds": 120})
    venue.get_order(label="nothing-here")
    assert venue.server_time() - engine.now < timedelta(seconds=1)


def test_orders_carry_valid_until_and_the_exchange_refuses_them_after_it(server, engine, admin):
    venue = make_venue(server, engine)
    valid = engine.now + timedelta(seconds=15)
    admin.clear_requests()
    venue.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 1_000, "lv-v-1-0", valid_until=valid))
    sent = next(r for r in admin.get("/_sim/requests")["requests"] if r["method"] == "private/buy")
    assert int(sent["params"]["valid_until"]) == int(valid.timestamp() * 1000)
    late = engine.now - timedelta(seconds=1)
    with pytest.raises(TemporaryVenueError, match="13888"):
        venue.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 1_000, "lv-v-2-0", valid_until=late))
    assert engine.orders_by_label("lv-v-2-0") == []  # refused before the matching engine took it


def test_an_order_is_found_by_its_label_and_by_its_fills(server, engine):
    venue = make_venue(server, engine)
    placed = venue.place_order(OrderRequest("BTC-PERPETUAL", Side.SELL, 20_000, "lv-f-1-0"))
    found = venue.get_order(label="lv-f-1-0")
    assert found is not None and found.order_id == placed.order_id and found.status is OrderStatus.FILLED
    assert venue.get_order(label="lv-f-9-9") is None
    (trade,) = venue.trades_by_label("lv-f-1-0", "BTC-PERPETUAL")
    assert trade.order_id == placed.order_id and trade.amount == 20_000 and trade.side is Side.SELL
    assert trade.fee_coin == pytest.approx(placed.fee_coin)
    assert venue.trades_by_label("lv-f-9-9", "BTC-PERPETUAL") == []


@pytest.mark.parametrize(
    ("fault", "call"),
    [
        ({"method": "private/get_positions", "kind": "truncate"}, "snapshot"),
        (
            {"method": "private/get_positions", "kind": "rewrite", "path": "result.0.size", "value": "NaN"},
            "snapshot",
        ),
        (
            {"method": "private/get_positions", "kind": "rewrite", "path": "result.0.size", "value": None},
            "snapshot",
        ),
        (
            {"method": "private/get_account_summary", "kind": "rewrite", "path": "result", "value": []},
            "snapshot",
        ),
        ({"method": "private/buy", "kind": "truncate"}, "buy"),
        ({"method": "private/buy", "kind": "rewrite", "path": "result.order", "value": None}, "buy"),
        (
            {"method": "private/buy", "kind": "rewrite", "path": "result.order.direction", "value": "up"},
            "buy",
        ),
    ],
)
def test_every_reply_we_cannot_read_is_a_malformed_reply_error(server, engine, admin, fault, call):
    venue = make_venue(server, engine)
    venue.place_order(OrderRequest("BTC-PERPETUAL", Side.SELL, 10_000, "lv-m-0-0"))  # a position to rewrite
    admin.fault(**fault)
    with pytest.raises(MalformedReplyError, match=r"could not be read|not a number|not finite"):
        if call == "snapshot":
            venue.snapshot()
        else:
            venue.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 10_000, "lv-m-1-0"))
    if call == "buy":  # the order was placed all the same: a bad reply is not a refusal
        assert len(engine.orders_by_label("lv-m-1-0")) == 1


def test_a_dropped_reply_after_the_order_executed_is_a_temporary_error(server, engine, admin):
    venue = make_venue(server, engine, timeout_ms=1000)
    admin.fault(method="private/buy", kind="drop")
    with pytest.raises(TemporaryVenueError):
        venue.place_order(OrderRequest("BTC-PERPETUAL", Side.BUY, 10_000, "lv-d-1-0"))
    assert engine.orders_by_label("lv-d-1-0")[0].state == "filled"
