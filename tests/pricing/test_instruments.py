"""Deribit instrument names and ACT/365 time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pricing import (
    Future,
    InstrumentNameError,
    Option,
    Perpetual,
    Settlement,
    parse_deribit_name,
    year_fraction,
)
from pricing.instruments import deribit_expiry_code


def test_inverse_option():
    o = parse_deribit_name("BTC-27SEP24-40000-C")
    assert isinstance(o, Option)
    assert (o.underlying, o.strike, o.is_call) == ("BTC", 40000.0, True)
    assert o.settlement is Settlement.INVERSE and o.settle_currency == "BTC"
    assert o.expiry == datetime(2024, 9, 27, 8, 0, tzinfo=UTC)


def test_single_digit_day_put():
    o = parse_deribit_name("BTC-4DEC26-90000-P")
    assert isinstance(o, Option) and not o.is_call
    assert o.expiry == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    assert deribit_expiry_code(o.expiry) == "4DEC26"


def test_perpetuals_inverse_and_linear():
    inverse = parse_deribit_name("BTC-PERPETUAL")
    linear = parse_deribit_name("BTC_USDC-PERPETUAL")
    assert isinstance(inverse, Perpetual) and isinstance(linear, Perpetual)
    assert inverse.settlement is Settlement.INVERSE and inverse.settle_currency == "BTC"
    assert linear.settlement is Settlement.LINEAR and linear.settle_currency == "USDC"
    assert inverse.expiry is None and linear.underlying == "BTC"


def test_dated_future():
    fut = parse_deribit_name("BTC-27SEP24")
    assert isinstance(fut, Future)
    assert fut.expiry == datetime(2024, 9, 27, 8, tzinfo=UTC) and fut.settlement is Settlement.INVERSE


def test_linear_option_with_decimal_strike():
    o = parse_deribit_name("XRP_USDC-30AUG24-0d625-C")
    assert isinstance(o, Option)
    assert o.strike == 0.625 and o.settlement is Settlement.LINEAR and o.settle_currency == "USDC"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "cannot parse"),
        ("btc-perpetual", "cannot parse"),
        ("BTC-27SEP24-40000", "cannot parse"),
        ("BTC-27SEP24-40000-X", "cannot parse"),
        ("BTC-FS-27SEP24_PERP", "cannot parse"),
        ("BTC-31FEB24", "invalid expiry date"),
        ("BTC-27XYZ24-40000-C", "unknown month 'XYZ'"),
        ("BTC-27SEP24-0-C", "strike must be positive"),
        ("BTC-27SEP2024-40000-C", "cannot parse"),
    ],
)
def test_malformed_names_are_rejected_clearly(name, message):
    with pytest.raises(InstrumentNameError, match=message):
        parse_deribit_name(name)


def test_non_string_name():
    with pytest.raises(InstrumentNameError, match="must be a string"):
        parse_deribit_name(None)  # type: ignore[arg-type]


def test_year_fraction_is_act_365():
    start = datetime(2024, 1, 1, 8, tzinfo=UTC)
    assert year_fraction(start=start, end=start + timedelta(days=365)) == 1.0
    assert year_fraction(start=start, end=start + timedelta(days=366)) == pytest.approx(366 / 365)
    assert year_fraction(start=start + timedelta(hours=1), end=start) == pytest.approx(-1 / 8760)
    with pytest.raises(ValueError, match="timezone-aware"):
        year_fraction(start=datetime(2024, 1, 1), end=start)
