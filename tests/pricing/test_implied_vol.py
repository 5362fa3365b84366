"""Implied volatility: reason codes, agreement with Let's Be Rational, robustness."""

from __future__ import annotations

import numpy as np
import pytest
from vollib.black.implied_volatility import implied_volatility as lbr_implied_volatility

import pricing
from pricing import IVReason


def test_agrees_with_lets_be_rational_over_a_wide_random_set():
    rng = np.random.default_rng(7)
    n = 3000
    f = rng.uniform(1e3, 1e5, n)
    k = f * np.exp(rng.uniform(np.log(0.2), np.log(5.0), n))
    t = np.exp(rng.uniform(np.log(1 / 8760), np.log(3.0), n))
    v = rng.uniform(0.05, 3.0, n)
    call = rng.random(n) < 0.5
    price = pricing.black_price(forward=f, strike=k, t_years=t, vol=v, is_call=call)
    ours = pricing.implied_vol(price=price, forward=f, strike=k, t_years=t, is_call=call)
    compared = 0
    for i in np.flatnonzero(ours.ok):
        reference = lbr_implied_volatility(price[i], f[i], k[i], 0.0, t[i], "c" if call[i] else "p")
        assert abs(ours.vol[i] - reference) <= 1e-8, (f[i], k[i], t[i], v[i], call[i])
        compared += 1
    assert compared > 0.6 * n  # the rest are deep in the money with no time value left in doubles


def test_each_reason_is_reported_without_raising():
    f = 100.0
    cases = [
        # price, strike, t, is_call, expected
        (5.0, 100.0, 0.5, True, IVReason.OK),
        (np.nan, 100.0, 0.5, True, IVReason.INVALID_INPUT),
        (-1.0, 100.0, 0.5, True, IVReason.INVALID_INPUT),
        (5.0, -100.0, 0.5, True, IVReason.INVALID_INPUT),
        (5.0, 100.0, 0.0, True, IVReason.EXPIRED),
        (5.0, 100.0, -0.1, True, IVReason.EXPIRED),
        (9.0, 90.0, 0.5, True, IVReason.BELOW_INTRINSIC),
        (10.0, 90.0, 0.5, True, IVReason.AT_INTRINSIC),
        (0.0, 120.0, 0.5, True, IVReason.AT_INTRINSIC),
        (100.0, 120.0, 0.5, True, IVReason.ABOVE_MAXIMUM),
        (120.0, 120.0, 0.5, False, IVReason.ABOVE_MAXIMUM),
        (5.0, 100.0, np.nan, True, IVReason.INVALID_INPUT),
    ]
    price, strike, t, call, expected = map(np.array, zip(*cases, strict=True))
    result = pricing.implied_vol(price=price, forward=f, strike=strike, t_years=t, is_call=call)
    assert [IVReason(int(r)) for r in result.reason] == list(expected)
    assert np.isfinite(result.vol[0]) and np.isnan(result.vol[1:]).all()
    assert result.reason_names()[6] == "BELOW_INTRINSIC"
    assert result.counts()["INVALID_INPUT"] == 4


def test_at_the_money_and_symmetric_cases():
    t, v = 0.25, 0.7
    for k in (100.0, 80.0, 125.0):
        for call in (True, False):
            p = pricing.black_price(forward=100.0, strike=k, t_years=t, vol=v, is_call=call)
            r = pricing.implied_vol(price=p, forward=100.0, strike=k, t_years=t, is_call=call)
            assert r.vol == pytest.approx(v, abs=1e-12)


def test_rate_is_honoured():
    p = pricing.black_price(forward=100.0, strike=95.0, t_years=1.0, vol=0.4, is_call=False, rate=0.05)
    r = pricing.implied_vol(price=p, forward=100.0, strike=95.0, t_years=1.0, is_call=False, rate=0.05)
    assert r.vol == pytest.approx(0.4, abs=1e-12)


def test_extreme_tails_do_not_underflow():
    # a far out-of-the-money one-hour option: the price is ~1e-200 of the forward
    f, k, t, v = 100.0, 250.0, 1 / 8760, 1.0
    p = pricing.black_price(forward=f, strike=k, t_years=t, vol=v, is_call=False)  # ITM put
    call_price = 1e-200 * f
    r = pricing.implied_vol(price=call_price, forward=f, strike=k, t_years=t, is_call=True)
    assert r.reason == IVReason.OK and 0 < r.vol < 10
    repriced = pricing.black_price(forward=f, strike=k, t_years=t, vol=r.vol, is_call=True)
    assert np.isfinite(p) and repriced == pytest.approx(call_price, rel=1e-6)


def test_shape_is_preserved_and_iterations_are_few():
    rng = np.random.default_rng(3)
    f = np.full((20, 50), 100.0)
    k = rng.uniform(60, 160, (20, 50))
    p = pricing.black_price(forward=f, strike=k, t_years=0.3, vol=0.8, is_call=True)
    r = pricing.implied_vol(price=p, forward=f, strike=k, t_years=0.3, is_call=True)
    assert r.vol.shape == (20, 50)
    assert np.allclose(r.vol, 0.8, atol=1e-10)
    assert r.iterations.max() <= 10
