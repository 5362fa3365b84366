"""Book aggregation: premium-adjusted delta, inverse perp delta, collateral, breakdowns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import pricing
from pricing import BookError, Position, book_greeks, parse_deribit_name

AS_OF = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
EXPIRY = "BTC-25DEC26"  # 34 days after AS_OF


def option(name: str, size: float, forward: float = 60_000.0, iv: float = 0.6) -> Position:
    inst = parse_deribit_name(name)
    t = pricing.year_fraction(start=AS_OF, end=inst.expiry)
    price = float(
        pricing.black_price(forward=forward, strike=inst.strike, t_years=t, vol=iv, is_call=inst.is_call)
    )
    return Position(inst, size, mark_price=price / forward, underlying_price=forward, mark_iv=iv)


def reference(name: str, forward: float = 60_000.0, iv: float = 0.6):
    inst = parse_deribit_name(name)
    t = pricing.year_fraction(start=AS_OF, end=inst.expiry)
    return pricing.greeks(forward=forward, strike=inst.strike, t_years=t, vol=iv, is_call=inst.is_call)


def test_inverse_option_delta_is_premium_adjusted():
    pos = option(f"{EXPIRY}-60000-C", 2.0)
    g = reference(f"{EXPIRY}-60000-C")
    book = book_greeks([pos], as_of=AS_OF, index_prices={"BTC": 59_900.0})
    row = book.positions[0]
    assert row.black_delta == pytest.approx(2.0 * float(g.delta))
    assert row.delta == pytest.approx(2.0 * (float(g.delta) - float(g.price) / 60_000.0))
    assert row.delta < row.black_delta  # a long coin-settled call is worth less delta than its Black delta
    assert row.vega_usd == pytest.approx(2.0 * float(g.vega))
    assert row.theta_usd == pytest.approx(2.0 * float(g.theta))
    assert row.dollar_gamma_usd == pytest.approx(2.0 * float(g.gamma) * 60_000.0 * 59_900.0 / 100.0)
    assert row.notional_usd == pytest.approx(2.0 * 59_900.0)


def test_linear_option_uses_black_delta():
    inst = parse_deribit_name("BTC_USDC-25DEC26-60000-P")
    g = reference("BTC-25DEC26-60000-P")
    pos = Position(inst, -3.0, mark_price=float(g.price), underlying_price=60_000.0, mark_iv=0.6)
    row = book_greeks([pos], as_of=AS_OF, index_prices={"BTC": 60_000.0}).positions[0]
    assert row.delta == row.black_delta == pytest.approx(-3.0 * float(g.delta))


def test_inverse_perp_delta_is_usd_size_over_mark_and_linear_is_coin():
    inverse = Position(parse_deribit_name("BTC-PERPETUAL"), -120_000.0, mark_price=60_000.0)
    linear = Position(parse_deribit_name("BTC_USDC-PERPETUAL"), 0.5, mark_price=60_010.0)
    future = Position(parse_deribit_name("BTC-25DEC26"), 30_000.0, mark_price=60_500.0)
    book = book_greeks([inverse, linear, future], as_of=AS_OF, index_prices={"BTC": 60_000.0})
    deltas = [r.delta for r in book.positions]
    assert deltas == pytest.approx([-2.0, 0.5, 30_000.0 / 60_500.0])
    assert [r.notional_usd for r in book.positions] == pytest.approx([120_000.0, 30_000.0, 30_000.0])
    assert all(r.vega_usd == r.gamma == 0.0 for r in book.positions)


def test_collateral_delta_and_usd_delta():
    # Deribit's advice: in a coin-margined account hedge equity + delta_total
    perp = Position(parse_deribit_name("BTC-PERPETUAL"), -600_000.0, mark_price=60_000.0)  # -10 BTC
    book = book_greeks(
        [perp], as_of=AS_OF, index_prices={"BTC": 60_000.0}, collateral={"BTC": 10.0, "USDC": 5_000.0}
    )
    btc = book.underlyings["BTC"]
    assert btc.positions_delta == pytest.approx(-10.0)
    assert btc.collateral == 10.0
    assert btc.delta == pytest.approx(0.0, abs=1e-12)  # fully hedged in USD terms
    assert book.delta_usd == pytest.approx(0.0, abs=1e-6)
    assert "USDC" not in book.underlyings  # a stablecoin has no delta


def test_collateral_without_positions_is_a_long_exposure():
    book = book_greeks([], as_of=AS_OF, index_prices={"BTC": 50_000.0}, collateral={"BTC": 2.0})
    assert book.underlyings["BTC"].delta_usd == pytest.approx(100_000.0)
    assert book.positions == ()


def test_breakdown_per_underlying_and_expiry_adds_up():
    positions = [
        option("BTC-25DEC26-70000-C", -5.0),
        option("BTC-25DEC26-50000-P", 3.0),
        option("BTC-26MAR27-60000-C", 1.0),
        option("ETH-25DEC26-3000-C", 10.0, forward=3_000.0, iv=0.7),
        Position(parse_deribit_name("BTC-PERPETUAL"), 50_000.0, mark_price=60_000.0),
    ]
    book = book_greeks(
        positions, as_of=AS_OF, index_prices={"BTC": 60_000.0, "ETH": 3_000.0}, collateral={"BTC": 1.0}
    )
    btc, eth = book.underlyings["BTC"], book.underlyings["ETH"]
    assert list(btc.by_expiry) == ["25DEC26", "26MAR27", "PERPETUAL"]
    assert sum(t.vega_usd for t in btc.by_expiry.values()) == pytest.approx(btc.positions.vega_usd)
    assert sum(t.delta for t in btc.by_expiry.values()) == pytest.approx(btc.positions_delta)
    assert book.vega_usd == pytest.approx(btc.positions.vega_usd + eth.positions.vega_usd)
    assert book.delta_usd == pytest.approx(btc.delta * 60_000.0 + eth.delta * 3_000.0)
    assert book.theta_usd == pytest.approx(sum(r.theta_usd for r in book.positions))
    # the short call strip drives vega
    assert book.drivers("vega_usd", top=1)[0].name == "BTC-25DEC26-70000-C"
    with pytest.raises(ValueError, match="unknown metric"):
        book.drivers("charm")


def test_expired_option_in_book_is_intrinsic_not_nan():
    pos = option("BTC-25DEC26-50000-C", 1.0)
    book = book_greeks(
        [pos], as_of=pos.instrument.expiry + timedelta(hours=1), index_prices={"BTC": 60_000.0}
    )
    row = book.positions[0]
    assert row.value_usd == pytest.approx(10_000.0)
    assert row.black_delta == 1.0 and row.vega_usd == 0.0


@pytest.mark.parametrize(
    ("position", "message"),
    [
        (Position(parse_deribit_name("BTC-25DEC26-60000-C"), 1.0, 0.05, None, 0.6), "underlying_price"),
        (Position(parse_deribit_name("BTC-25DEC26-60000-C"), 1.0, 0.05, 60_000.0, None), "mark_iv"),
        (Position(parse_deribit_name("BTC-25DEC26-60000-C"), 1.0, 0.05, 60_000.0, float("nan")), "mark_iv"),
        (Position(parse_deribit_name("BTC-25DEC26-60000-C"), float("nan"), 0.05, 60_000.0, 0.6), "size"),
        (Position(parse_deribit_name("BTC-PERPETUAL"), 100.0, 0.0), "mark_price must be positive"),
        (Position(parse_deribit_name("BTC-PERPETUAL"), 100.0, float("inf")), "mark_price"),
        (Position(parse_deribit_name("SOL-PERPETUAL"), 100.0, 150.0), "no index price for underlying 'SOL'"),
    ],
)
def test_bad_market_data_names_the_position_and_figure(position, message):
    with pytest.raises(BookError, match=message):
        book_greeks([position], as_of=AS_OF, index_prices={"BTC": 60_000.0})


def test_bad_index_price_is_rejected():
    with pytest.raises(BookError, match="index price of BTC"):
        book_greeks([], as_of=AS_OF, index_prices={"BTC": float("nan")}, collateral={"BTC": 1.0})


def test_a_large_mixed_book_equals_position_by_position_pricing():
    """The vectorised book against the scalar kernel, one position at a time, and exact (fsum) totals."""
    import math

    import numpy as np

    rng = np.random.default_rng(14)
    expiries = ["25DEC26", "26MAR27", "25JUN27"]
    positions = []
    for i in range(300):
        coin = "BTC" if i % 3 else "ETH"
        spot = 60_000.0 if coin == "BTC" else 3_000.0
        kind = rng.integers(0, 5)
        size = float(rng.choice([-1, 1]) * rng.integers(1, 50) / 10)
        if kind < 3:
            strike = round(spot * rng.uniform(0.6, 1.6), -1 if coin == "ETH" else -2)
            settle = "" if kind < 2 else "_USDC"
            name = f"{coin}{settle}-{expiries[i % 3]}-{strike:.0f}-{'C' if rng.random() < 0.5 else 'P'}"
            forward = spot * rng.uniform(0.99, 1.02)
            positions.append(
                Position(parse_deribit_name(name), size, 0.01, forward, float(rng.uniform(0.2, 1.5)))
            )
        elif kind == 3:
            positions.append(Position(parse_deribit_name(f"{coin}-PERPETUAL"), size * 1e4, spot * 1.0003))
        else:
            positions.append(Position(parse_deribit_name(f"{coin}_USDC-PERPETUAL"), size, spot * 0.9997))
    index = {"BTC": 60_000.0, "ETH": 3_000.0}
    book = book_greeks(positions, as_of=AS_OF, index_prices=index, collateral={"BTC": 3.0})

    for p, row in zip(positions, book.positions, strict=True):
        inst = p.instrument
        spot = index[inst.underlying]
        if isinstance(inst, pricing.Option):
            t = pricing.year_fraction(start=AS_OF, end=inst.expiry)
            g = pricing.greeks(
                forward=p.underlying_price, strike=inst.strike, t_years=t, vol=p.mark_iv, is_call=inst.is_call
            )
            black = p.size * float(g.delta)
            inverse = inst.settlement == "inverse"
            expected = black - p.size * float(g.price) / p.underlying_price if inverse else black
            # a vectorised kernel call may differ from a scalar one in the last bit (SIMD exp, log)
            assert (row.delta, row.black_delta) == pytest.approx((expected, black), rel=1e-13)
            assert (row.vega_usd, row.theta_usd) == pytest.approx(
                (p.size * float(g.vega), p.size * float(g.theta)), rel=1e-13
            )
            assert row.dollar_gamma_usd == pytest.approx(
                p.size * float(g.gamma) * p.underlying_price * spot / 100.0, rel=1e-13
            )
            assert row.value_usd == pytest.approx(p.size * float(g.price), rel=1e-13)
            assert row.notional_usd == abs(p.size) * spot
        elif inst.settlement == "inverse":
            assert row.delta == p.size / p.mark_price and row.notional_usd == abs(p.size)
        else:
            assert row.delta == p.size and row.notional_usd == abs(p.size) * spot
        assert row.name == inst.name and row.expiry == inst.expiry
    for coin, risk in book.underlyings.items():
        mine = [r for r in book.positions if r.underlying == coin]
        assert risk.positions.delta == math.fsum(r.delta for r in mine)
        assert risk.positions.vega_usd == math.fsum(r.vega_usd for r in mine)
        for label, totals in risk.by_expiry.items():
            group = [r for r in mine if r.expiry_label == label]
            assert totals.dollar_gamma_usd == math.fsum(r.dollar_gamma_usd for r in group)
    assert (
        book.underlyings["BTC"].delta
        == math.fsum(r.delta for r in book.positions if r.underlying == "BTC") + 3.0
    )
