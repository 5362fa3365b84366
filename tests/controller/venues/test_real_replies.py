"""Deribit's own published replies (tests/fixtures/deribit/, cited per file in SOURCES.md) through the
parser and through the ccxt venue.

The ccxt venue is pointed at a stub on 127.0.0.1 that answers each JSON-RPC method with its fixture,
so ccxt's real request, parsing and error mapping run on real replies, not on the simulator's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pytest

from controller.venues import (
    AccessDeniedError,
    MalformedReplyError,
    OrderRejectedError,
    OrderRequest,
    OrderStatus,
    Side,
    check_order,
)
from controller.venues.ccxt_deribit import CcxtVenue, CcxtVenueSettings
from controller.venues.deribit_json import (
    build_snapshot,
    index_of,
    options_without_marks,
    parse_chain,
    parse_instrument,
    parse_position,
)
from controller.venues.deribit_orders import parse_order, parse_trade, trades_fee
from pricing import black_price, parse_deribit_name, year_fraction
from tests.controller.sim.shapes import fixture

NOW = datetime(2024, 3, 22, 12, tzinfo=UTC)


def result(name: str) -> Any:
    return fixture(name)["result"]


# ------------------------------------------------------------------ fees (FINDINGS §2)
def test_a_current_market_order_reply_has_no_commission_and_its_fee_is_its_trades():
    reply = result("private__buy")
    assert "commission" not in reply["order"]
    order = parse_order(reply["order"], reply["trades"])
    assert order.fee_coin == pytest.approx(sum(t["fee"] for t in reply["trades"]))
    assert order.fee_coin == pytest.approx(0.00014757)
    assert order.price == 207.3 and order.average_price == 203.3  # a filled market order's price is a number


def test_an_order_without_its_trades_leaves_the_fee_unknown_until_they_are_read():
    state = result("private__get_order_state")
    assert state["filled_amount"] > 0 and "trades" not in state
    assert parse_order(state).fee_coin is None
    trades = result("private__get_user_trades_by_order")  # a bare array
    assert trades_fee(trades, "order") == pytest.approx(0.00036801)


def test_open_orders_have_no_fee_yet():
    (open_order,) = result("private__get_open_orders_by_currency")
    report = parse_order(open_order)
    assert report.status is OrderStatus.OPEN and report.fee_coin == 0.0 and report.average_price is None


def test_a_2019_reply_still_reads_its_commission():
    reply = result("private__buy.ccxt_2019")
    assert parse_order(reply["order"]).fee_coin == pytest.approx(reply["order"]["commission"])


def test_trade_fees_keep_their_sign():
    option_trade, future_trade = result("private__get_user_trades_by_instrument")["trades"]
    assert parse_trade(option_trade).fee_coin == pytest.approx(0.0004)  # option maker: a cost
    assert parse_trade(future_trade).fee_coin == pytest.approx(-2.1e-7)  # future maker: a rebate
    assert future_trade["liquidity"] == "M"


def test_untriggered_and_cancelled_stop_orders_parse():
    stop = result("private__sell.stop_limit")["order"]
    cancelled = result("private__cancel")
    assert parse_order(stop).status is OrderStatus.OPEN and parse_order(stop).fee_coin == 0.0
    report = parse_order(cancelled)
    assert report.status is OrderStatus.OPEN and report.price is None  # untriggered, "market_price"


# ------------------------------------------------------------------ option positions (FINDINGS §1)
def _option_position(name: str) -> dict[str, Any]:
    """An option position with exactly the fields of Deribit's position schema (no example exists)."""
    perp = result("private__get_positions")[0]
    keep = set(perp) - {"size_currency", "leverage", "realized_funding", "interest_value"}
    keep -= {"estimated_liquidation_price"}  # "added only for futures"
    body = {k: perp[k] for k in keep}
    body.update(instrument_name=name, kind="option", size=-2.0, mark_price=0.0555, average_price=0.06)
    body.update(gamma=0.0001, vega=10.0, theta=-20.0, average_price_usd=2300.0, floating_profit_loss_usd=1.0)
    assert "mark_iv" not in body and "underlying_price" not in body
    return body


def test_an_option_position_takes_forward_and_iv_from_its_ticker():
    ticker = result("public__ticker.option")
    position = _option_position(ticker["instrument_name"]) | {"mark_price": ticker["mark_price"]}
    parsed = parse_position(position, ticker, NOW)
    assert parsed.underlying_price == ticker["underlying_price"]
    assert parsed.mark_iv == pytest.approx(ticker["mark_iv"] / 100.0)


def test_an_option_position_without_a_line_is_named_for_a_ticker_lookup():
    ticker = result("public__ticker.option")
    position = _option_position(ticker["instrument_name"])
    assert options_without_marks([position], result("public__get_book_summary_by_currency.future")) == [
        ticker["instrument_name"]
    ]
    with pytest.raises(MalformedReplyError, match="underlying_price"):
        parse_position(position, None, NOW)


@pytest.mark.parametrize(
    "name",
    ["public__get_book_summary_by_currency.option", "public__get_book_summary_by_instrument.option_2024"],
)
def test_a_book_line_without_mark_iv_gives_the_iv_that_reprices_its_mark(name):
    (line,) = result(name)
    assert "mark_iv" not in line
    parsed = parse_position(_option_position(line["instrument_name"]), line, NOW)
    option = parse_deribit_name(line["instrument_name"])
    observed = datetime.fromtimestamp(line["creation_timestamp"] / 1000, UTC)
    usd = black_price(
        forward=line["underlying_price"],
        strike=option.strike,
        t_years=year_fraction(start=observed, end=option.expiry),
        vol=parsed.mark_iv,
        is_call=option.is_call,
    )
    assert float(usd) / line["underlying_price"] == pytest.approx(line["mark_price"], rel=1e-6)
    (quote,) = parse_chain([line], NOW)
    assert quote.mark_iv == pytest.approx(parsed.mark_iv)


# ------------------------------------------------------------------ expired, no index (FINDINGS §3)
def test_an_expired_ticker_has_no_estimated_delivery_price():
    data = fixture("subscription__ticker.option_expired")["params"]["data"]
    assert data["estimated_delivery_price"] == "expired"
    assert index_of(data, data["instrument_name"]) == data["index_price"]
    without_index = {k: v for k, v in data.items() if k != "index_price"}
    assert index_of(without_index, data["instrument_name"]) is None


def test_book_lines_have_no_index_price_and_still_make_a_chain():
    lines = (
        result("public__get_book_summary_by_currency.future")
        + result("public__get_book_summary_by_currency.option")
        + result("public__get_book_summary_by_currency.option_2020")
    )
    assert all("index_price" not in line for line in lines)
    chain = parse_chain(lines, NOW)
    assert sorted(c.name for c in chain) == sorted(
        line["instrument_name"] for line in lines if line["instrument_name"].endswith(("-C", "-P"))
    )


# ------------------------------------------------------------------ P&L (FINDINGS §4)
def test_unrealised_pnl_is_since_entry_and_session_pnl_since_the_settlement():
    (info,) = result("private__get_positions")
    position = parse_position(info, None, NOW)
    assert position.unrealized_pnl == info["total_profit_loss"]
    assert position.session_pnl == info["floating_profit_loss"] == 0
    by_hand = info["size"] * (1 / info["average_price"] - 1 / info["mark_price"])
    assert position.unrealized_pnl == pytest.approx(by_hand, rel=1e-4)


# ------------------------------------------------------------------ volatility index (FINDINGS §5)
def test_the_volatility_index_is_read_in_either_unit():
    reply = result("public__get_volatility_index_data")
    snap = _snapshot(vol_index=reply)
    assert snap.vol_index == pytest.approx(reply["data"][-1][4])  # ≈ 0.21: already a fraction
    percent = {"data": [[row[0], *(v * 100 for v in row[1:])] for row in reply["data"]], "continuation": None}
    assert _snapshot(vol_index=percent).vol_index == pytest.approx(reply["data"][-1][4])


@pytest.mark.parametrize("times", ["integers", "floats", "strings"])
def test_the_volatility_index_is_the_latest_candle_whatever_the_order_and_type_of_its_times(times):
    rows = [list(row) for row in result("public__get_volatility_index_data")["data"]]
    latest = max(rows, key=lambda row: row[0])
    rows = rows[1:] + rows[:1]  # the latest is no longer last
    cast = {"integers": int, "floats": float, "strings": str}[times]
    shuffled = {"data": [[cast(row[0]), *row[1:]] for row in rows], "continuation": None}
    snap = _snapshot(vol_index=shuffled)
    assert snap.vol_index == pytest.approx(latest[4])
    assert snap.vol_index_observed_at == datetime.fromtimestamp(latest[0] / 1000, UTC)


@pytest.mark.parametrize("bad", [float("nan"), None, "soon"])
def test_a_volatility_index_time_that_is_not_a_number_is_named(bad):
    rows = [list(row) for row in result("public__get_volatility_index_data")["data"]]
    rows[0][0] = bad
    with pytest.raises(MalformedReplyError, match="volatility index time"):
        _snapshot(vol_index={"data": rows, "continuation": None})


# ------------------------------------------------------------------ instruments (FINDINGS §7)
def test_tick_size_steps_decide_the_tick_of_a_price():
    spec = parse_instrument(result("public__get_instrument.option"))
    assert spec is not None and spec.tick_size_steps == ((120.0, 0.001), (200.0, 0.003))
    assert spec.tick_at(0.0105) == 0.0005 and spec.tick_at(150.0) == 0.001 and spec.tick_at(201) == 0.003
    check_order(OrderRequest(spec.name, Side.BUY, 1.0, "lv-x", price=150.002), spec)
    with pytest.raises(OrderRejectedError, match=r"tick size 0\.001"):
        check_order(OrderRequest(spec.name, Side.BUY, 1.0, "lv-x", price=150.0005), spec)
    future, perp = (parse_instrument(i) for i in result("public__get_instruments.future"))
    assert future is not None and perp is not None and future.tick_size_steps == perp.tick_size_steps == ()


def _snapshot(**overrides: Any):
    args = dict(
        venue="fixtures",
        currency="BTC",
        summary=result("private__get_account_summary"),
        positions=result("private__get_positions"),
        book=result("public__get_book_summary_by_currency.future"),
        hedge_ticker=result("public__ticker.perpetual"),
        funding_rate_8h=result("public__get_funding_rate_value"),
        server_times={k: NOW for k in ("summary", "positions", "book", "ticker")},
        taken_at=NOW,
        rest_calls=5,
    )
    return build_snapshot(**(args | overrides))


# ------------------------------------------------------------------ the ccxt venue on real replies
REPLIES = {
    "public/get_time": fixture("public__get_time.ccxt"),
    "public/get_currencies": fixture("public__get_currencies"),
    "public/get_instruments": fixture("public__get_instruments.future")
    | {
        "result": [*result("public__get_instruments.future"), result("public__get_instrument.option")],
    },
    "private/get_account_summary": fixture("private__get_account_summary"),
    "private/get_positions": fixture("private__get_positions"),
    "public/get_book_summary_by_currency": fixture("public__get_book_summary_by_currency.future"),
    "public/ticker": fixture("public__ticker.perpetual"),
    "public/get_funding_rate_value": fixture("public__get_funding_rate_value"),
    "private/get_order_state": fixture("private__get_order_state"),
    "private/get_user_trades_by_order": fixture("private__get_user_trades_by_order"),
}
ERRORS = {
    "unauthorized": (400, fixture("errors__unauthorized_13009")),
    "invalid_params": (400, fixture("errors__invalid_params_-32602")),
}


class _Stub(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, Any]]
    seen: list[str]

    def do_GET(self) -> None:
        method = urlsplit(self.path).path.removeprefix("/api/v2/")
        self.seen.append(method)
        status, body = self.answers.get(method, (404, {"error": {"code": -32601, "message": "no"}}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[tuple[str, dict[str, tuple[int, Any]], list[str]]]:
    answers = {k: (200, v) for k, v in REPLIES.items()}
    seen: list[str] = []
    handler = type("Stub", (_Stub,), {"answers": answers, "seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", answers, seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _venue(url: str) -> CcxtVenue:
    return CcxtVenue(
        CcxtVenueSettings(rest_url=url, timeout_ms=5000), api_key="k", api_secret="s", clock=lambda: NOW
    )


def test_the_ccxt_venue_makes_a_snapshot_of_real_replies(stub):
    url, _, seen = stub
    venue = _venue(url)
    specs = venue.load_instruments()
    assert {"BTC-PERPETUAL", "BTC-29SEP23", "BTC-13JAN23-16000-P"} <= set(specs)
    assert specs["BTC-13JAN23-16000-P"].tick_size_steps == ((120.0, 0.001), (200.0, 0.003))
    seen.clear()
    snap = venue.snapshot()
    summary, (position,) = result("private__get_account_summary"), result("private__get_positions")
    ticker = result("public__ticker.perpetual")
    assert snap.equity_coin == summary["equity"]
    assert snap.maintenance_margin_coin == summary["maintenance_margin"]
    assert snap.index_price == ticker["index_price"]
    assert snap.funding_rate_8h == pytest.approx(result("public__get_funding_rate_value"))
    (perp,) = snap.positions
    assert perp.size == position["size"] and perp.unrealized_pnl == position["total_profit_loss"]
    assert snap.chain == ()  # the futures' book lines hold no option
    # the documentation's examples omit usOut, so the venue asks the exchange's time once (for the
    # funding window); real REST replies carry it and the snapshot stays at 5 calls
    assert snap.rest_calls == len(seen) and [m for m in seen if m != "public/get_time"] == [
        "private/get_account_summary",
        "private/get_positions",
        "public/get_book_summary_by_currency",
        "public/ticker",
        "public/get_funding_rate_value",
    ]


def test_the_ccxt_venue_reads_a_fee_the_order_reply_lacks_from_the_orders_trades(stub):
    url, _, seen = stub
    venue = _venue(url)
    venue.load_instruments()
    report = venue.get_order(order_id="ETH-331562")
    assert report is not None and report.status is OrderStatus.FILLED
    assert report.fee_coin == pytest.approx(0.00036801)
    assert seen[-2:] == ["private/get_order_state", "private/get_user_trades_by_order"]


@pytest.mark.parametrize(
    ("which", "ccxt_error", "ours"),
    [
        ("unauthorized", ccxt.AuthenticationError, AccessDeniedError),
        ("invalid_params", ccxt.BadRequest, None),
    ],
)
def test_published_errors_map_through_ccxt(stub, which, ccxt_error, ours):
    url, answers, _ = stub
    client = ccxt.deribit({"apiKey": "k", "secret": "s", "timeout": 5000})
    client.urls["test"] = {"rest": url}
    client.set_sandbox_mode(True)
    answers["private/get_account_summary"] = ERRORS[which]
    with pytest.raises(ccxt_error):
        client.privateGetGetAccountSummary({"currency": "BTC"})
    if ours is not None:
        venue = _venue(url)
        venue.load_instruments()
        with pytest.raises(ours):
            venue.snapshot()
