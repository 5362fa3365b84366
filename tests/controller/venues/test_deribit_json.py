"""Parsing Deribit-shaped replies: good data in, bad data named, never silently priced."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from controller.venues import MalformedReplyError, OrderStatus, OrderType, Side, UnknownInstrumentError
from controller.venues.deribit_json import build_snapshot, parse_chain, parse_position
from controller.venues.deribit_orders import parse_order

NOW = datetime(2026, 1, 2, 8, tzinfo=UTC)
SUMMARY = {
    "equity": 10.0,
    "balance": 10.0,
    "initial_margin": 0.1,
    "maintenance_margin": 0.05,
    "available_funds": 9.9,
}
TICKER = {
    "instrument_name": "BTC-PERPETUAL",
    "timestamp": 1767340800000,
    "mark_price": 90_000.0,
    "index_price": 89_990.0,
    "best_bid_price": 89_995.0,
    "best_ask_price": 90_005.0,
}
OPTION_SUMMARY = {
    "instrument_name": "BTC-30JAN26-90000-C",
    "mark_price": 0.04,
    "mark_iv": 55.0,
    "underlying_price": 90_200.0,
    "creation_timestamp": 1767340800000,
}


def snapshot(**overrides):
    args = dict(
        venue="t",
        currency="BTC",
        summary=SUMMARY,
        positions=[],
        book=[OPTION_SUMMARY],
        hedge_ticker=TICKER,
        funding_rate_8h=0.0001,
        server_times={"summary": NOW, "positions": NOW, "book": NOW, "ticker": NOW},
        taken_at=NOW,
        rest_calls=5,
    )
    args.update(overrides)
    return build_snapshot(**args)


def test_a_good_snapshot():
    snap = snapshot()
    assert snap.index_price == 89_990.0 and snap.equity_usd == pytest.approx(899_900.0)
    assert snap.margin_ratio == pytest.approx(0.005)
    (option,) = snap.chain
    assert option.mark_iv == pytest.approx(0.55) and option.strike == 90_000 and option.is_call


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("equity", None, "account equity is not a number"),
        ("equity", "NaN", "account equity is not finite"),
        ("maintenance_margin", "abc", "account maintenance_margin is not a number"),
    ],
)
def test_bad_account_figures_are_named(field, value, message):
    with pytest.raises(MalformedReplyError, match=message):
        snapshot(summary={**SUMMARY, field: value})


def test_a_ticker_without_index_is_refused():
    with pytest.raises(MalformedReplyError, match="no positive index_price"):
        snapshot(hedge_ticker={**TICKER, "index_price": 0.0})


def test_a_position_with_a_nan_mark_is_refused_by_name():
    position = {
        "instrument_name": "BTC-PERPETUAL",
        "size": -1000.0,
        "average_price": 90_000.0,
        "mark_price": float("nan"),
        "index_price": 90_000.0,
    }
    with pytest.raises(MalformedReplyError, match=r"BTC-PERPETUAL\.mark_price is not finite"):
        parse_position(position, None, NOW)


def test_an_option_position_takes_forward_and_iv_from_the_book_summary():
    position = {
        "instrument_name": "BTC-30JAN26-90000-C",
        "size": -2.0,
        "average_price": 0.05,
        "mark_price": 0.04,
        "index_price": 90_000.0,
        "delta": -0.9,
        "vega": -180.0,
    }
    parsed = parse_position(position, OPTION_SUMMARY, NOW)
    assert parsed.underlying_price == 90_200.0 and parsed.mark_iv == pytest.approx(0.55)
    assert parsed.exchange_greeks.delta == -0.9 and parsed.exchange_greeks.gamma is None
    with pytest.raises(MalformedReplyError, match="underlying_price"):
        parse_position(position, None, NOW)  # no forward anywhere: refuse rather than guess


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("size", "1e999", r"BTC-30JAN26-90000-C\.size is not finite"),
        ("index_price", None, r"BTC-30JAN26-90000-C\.index_price is not a number"),
        ("gamma", "x", r"BTC-30JAN26-90000-C\.gamma is not a number"),
        ("mark_iv", float("inf"), r"BTC-30JAN26-90000-C\.mark_iv is not finite"),
    ],
)
def test_the_first_bad_figure_of_a_position_is_named(field, value, message):
    # figures are converted in bulk; a failure is traced back to its field
    position = {
        "instrument_name": "BTC-30JAN26-90000-C",
        "size": -2.0,
        "mark_price": 0.04,
        "index_price": 90_000.0,
        "underlying_price": 90_200.0,
        "mark_iv": 55.0,
        "gamma": 1e-5,
        field: value,
    }
    with pytest.raises(MalformedReplyError, match=message):
        parse_position(position, None, NOW)


def test_without_the_book_summary_the_chain_is_empty_and_positions_carry_their_own_figures():
    position = {
        "instrument_name": "BTC-30JAN26-90000-C",
        "size": -2.0,
        "mark_price": 0.04,
        "index_price": 90_000.0,
        "underlying_price": 90_100.0,  # as the simulator's get_positions gives them
        "mark_iv": 54.0,
    }
    snap = snapshot(positions=[position], book=None)
    assert snap.chain == ()
    (option,) = snap.positions
    assert option.underlying_price == 90_100.0 and option.mark_iv == pytest.approx(0.54)
    with_book = snapshot(positions=[position])  # the book summary's figures win when it was read
    assert with_book.positions[0].underlying_price == 90_200.0 and len(with_book.chain) == 1


def test_flat_positions_are_left_out_and_unknown_instruments_refused():
    flat = {"instrument_name": "BTC-PERPETUAL", "size": 0.0, "mark_price": 1.0, "index_price": 1.0}
    assert snapshot(positions=[flat]).positions == ()
    odd = {"instrument_name": "BTC-FS-27SEP24_PERP", "size": 1.0, "mark_price": 1.0, "index_price": 1.0}
    with pytest.raises(UnknownInstrumentError, match="cannot price"):
        snapshot(positions=[odd])


def test_chain_skips_options_without_a_quote():
    rows = [
        OPTION_SUMMARY,
        {**OPTION_SUMMARY, "instrument_name": "BTC-30JAN26-95000-C", "mark_iv": None, "mark_price": None},
        {**OPTION_SUMMARY, "instrument_name": "BTC-30JAN26-99000-C", "mark_iv": 0.0},
        {**OPTION_SUMMARY, "instrument_name": "BTC-30JAN26-98000-C", "underlying_price": None},
        {"instrument_name": "BTC-PERPETUAL"},
    ]
    assert [c.name for c in parse_chain(rows, NOW)] == ["BTC-30JAN26-90000-C"]


@pytest.mark.parametrize(
    "field, bad",
    [("underlying_price", "x"), ("mark_price", float("inf")), ("mark_iv", "n/a"), ("mark_price", None)],
)
def test_a_bad_figure_in_one_chain_line_is_named_even_among_many(field, bad):
    """The chain is read a column at a time; a bad figure anywhere still names its line and field."""
    rows = [{**OPTION_SUMMARY, "instrument_name": f"BTC-30JAN26-{k}-C"} for k in range(80_000, 100_000, 1000)]
    rows[13] = {**rows[13], field: bad}
    with pytest.raises(MalformedReplyError, match=rf"BTC-30JAN26-93000-C\.{field} is not"):
        parse_chain(rows, NOW)
    rows[13] = {**rows[13], field: OPTION_SUMMARY[field]}
    assert len(parse_chain(rows, NOW)) == 20


def test_orders():
    info = {
        "order_id": "7",
        "label": "lv-1",
        "instrument_name": "BTC-PERPETUAL",
        "direction": "sell",
        "order_type": "market",
        "amount": 100.0,
        "filled_amount": 100.0,
        "average_price": 90_000.0,
        "price": "market_price",
        "order_state": "filled",
        "commission": -0.0001,  # a 2019-era reply's field: a maker rebate keeps its sign
        "creation_timestamp": 1767340800000,
        "last_update_timestamp": 1767340800500,
    }
    order = parse_order(info)
    assert (order.side, order.type, order.status, order.price, order.fee_coin) == (
        Side.SELL,
        OrderType.MARKET,
        OrderStatus.FILLED,
        None,
        -0.0001,
    )
    assert order.status.final and not math.isnan(order.average_price)
    with pytest.raises(MalformedReplyError, match="unknown state 'pending'"):
        parse_order({**info, "order_state": "pending"})
