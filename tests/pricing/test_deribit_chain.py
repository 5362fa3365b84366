"""Black-76 in DESIGN §2 conventions against Deribit's own published greeks and marks.

The reference is a real chain of 310 BTC options captured on 2020-05-14 05:41 UTC.  Deribit
reports theta of options under ~2 days differently, so greeks are compared beyond 2 days.
"""

from __future__ import annotations

import numpy as np
import pytest
from vollib.black.implied_volatility import implied_volatility as lbr_implied_volatility

import pricing
from pricing import IVReason

TWO_DAYS = 2.0 / 365.0


@pytest.fixture(scope="module")
def model(chain):
    return pricing.greeks(
        forward=chain.forward,
        strike=chain.strike,
        t_years=chain.t_years,
        vol=chain.mark_iv,
        is_call=chain.is_call,
    )


@pytest.fixture(scope="module")
def beyond_two_days(chain):
    mask = chain.t_years > TWO_DAYS
    assert mask.sum() >= 200, "the chain should have most options beyond two days"
    return mask


def test_chain_is_the_captured_snapshot(chain):
    assert len(chain) == 310
    assert set(np.unique(chain.is_call)) == {True, False}


def test_delta_matches_deribit(chain, model, beyond_two_days):
    err = np.abs(model.delta - chain.deribit["delta"])[beyond_two_days]
    assert err.max() <= 5e-4, f"worst delta error {err.max():.2e}"


def test_gamma_matches_deribit_to_its_rounding(chain, model, beyond_two_days):
    err = np.abs(model.gamma - chain.deribit["gamma"])[beyond_two_days]
    assert err.max() <= 1e-5, f"worst gamma error {err.max():.2e}"


def test_vega_matches_deribit(chain, model, beyond_two_days):
    ref = chain.deribit["vega"][beyond_two_days]
    rel = np.abs(model.vega[beyond_two_days] - ref) / np.abs(ref)
    assert rel.max() <= 2e-3, f"worst relative vega error {rel.max():.2e}"


def test_theta_matches_deribit(chain, model, beyond_two_days):
    ref = chain.deribit["theta"][beyond_two_days]
    err = np.abs(model.theta[beyond_two_days] - ref)
    tolerance = np.maximum(2e-3 * np.abs(ref), 0.01)
    worst = int(np.argmax(err / tolerance))
    assert (err <= tolerance).all(), (
        f"theta off at {chain.name[beyond_two_days][worst]}: {err[worst]:.4f} USD/day"
    )


def test_mark_price_in_btc(chain, model):
    err = np.abs(model.price / chain.forward - chain.mark_price_btc)
    share = (err <= 2e-4).mean()
    assert share >= 0.98, f"only {share:.1%} of marks within 2e-4 BTC"


def test_implied_vol_agrees_with_lets_be_rational(chain):
    price = chain.mark_price_btc * chain.forward
    ours = pricing.implied_vol(
        price=price, forward=chain.forward, strike=chain.strike, t_years=chain.t_years, is_call=chain.is_call
    )
    compared = 0
    for i in np.flatnonzero(ours.ok):
        flag = "c" if chain.is_call[i] else "p"
        reference = lbr_implied_volatility(
            price[i], chain.forward[i], chain.strike[i], 0.0, chain.t_years[i], flag
        )
        assert abs(ours.vol[i] - reference) <= 1e-8, chain.name[i]
        compared += 1
    assert compared >= 290


def test_implied_vol_agrees_with_deribit_mark_iv(chain):
    price = chain.mark_price_btc * chain.forward
    ours = pricing.implied_vol(
        price=price, forward=chain.forward, strike=chain.strike, t_years=chain.t_years, is_call=chain.is_call
    )
    with_time_value = ours.ok
    points = np.abs(ours.vol - chain.mark_iv)[with_time_value] * 100.0
    share = (points <= 0.5).mean()
    assert share >= 0.95, f"only {share:.1%} within 0.5 vol points"


def test_options_without_time_value_give_nan_and_a_reason(chain):
    price = chain.mark_price_btc * chain.forward
    ours = pricing.implied_vol(
        price=price, forward=chain.forward, strike=chain.strike, t_years=chain.t_years, is_call=chain.is_call
    )
    failed = ~ours.ok
    assert failed.any(), "the snapshot holds expiring in-the-money options marked at intrinsic"
    assert np.isnan(ours.vol[failed]).all()
    reasons = {IVReason(int(r)) for r in ours.reason[failed]}
    assert reasons <= {IVReason.AT_INTRINSIC, IVReason.BELOW_INTRINSIC}
    # only deep in-the-money options expiring within a day lack time value
    assert (chain.t_years[failed] < 1.5 / 365.0).all()
    intrinsic = np.maximum(np.where(chain.is_call, 1, -1) * (chain.forward - chain.strike), 0.0)
    assert (price[failed] <= intrinsic[failed] * (1 + 1e-12)).all()


def test_book_of_the_chain_sums_deribits_greeks(chain, beyond_two_days):
    from datetime import UTC, datetime

    as_of = datetime.fromtimestamp(chain.timestamp_ms.min() / 1000.0, UTC)
    # one unit long of every option beyond two days, valued at its own quote time's forward
    sizes = np.where(np.arange(len(chain)) % 3 == 0, -2.0, 1.5)
    positions = []
    for i in np.flatnonzero(beyond_two_days):
        positions.append(
            pricing.Position(
                instrument=pricing.parse_deribit_name(str(chain.name[i])),
                size=float(sizes[i]),
                mark_price=float(chain.mark_price_btc[i]),
                underlying_price=float(chain.forward[i]),
                mark_iv=float(chain.mark_iv[i]),
            )
        )
    book = pricing.book_greeks(positions, as_of=as_of, index_prices={"BTC": float(chain.index[0])})
    btc = book.underlyings["BTC"]
    s = sizes[beyond_two_days]
    vega_ref = float(np.sum(s * chain.deribit["vega"][beyond_two_days]))
    theta_ref = float(np.sum(s * chain.deribit["theta"][beyond_two_days]))
    black_delta_ref = float(np.sum(s * chain.deribit["delta"][beyond_two_days]))
    black_delta = sum(r.black_delta for r in book.positions)
    # the positions share one valuation time (the earliest quote), so allow the clock drift
    assert black_delta == pytest.approx(black_delta_ref, abs=5e-4 * len(positions) ** 0.5 * 3)
    assert btc.positions.vega_usd == pytest.approx(vega_ref, rel=2e-3)
    assert btc.positions.theta_usd == pytest.approx(theta_ref, rel=2e-3)
    premium_adjustment = float(np.sum(s * chain.mark_price_btc[beyond_two_days]))
    assert btc.positions_delta == pytest.approx(black_delta - premium_adjustment, abs=2e-4 * len(positions))
