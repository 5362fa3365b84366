"""Hypothesis properties of the Black-76 kernels over a wide domain.

Domain (issue 2): volatility 5 %–300 %, one hour to three years, strike/forward 0.2–5.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import pricing

HOUR = 1.0 / (365.0 * 24.0)
EPS = np.finfo(float).eps

forwards = st.floats(min_value=1.0, max_value=2e5)
moneyness = st.floats(min_value=0.2, max_value=5.0)
years = st.floats(min_value=HOUR, max_value=3.0)
vols = st.floats(min_value=0.05, max_value=3.0)
rates = st.floats(min_value=0.0, max_value=0.1)
rights = st.booleans()


def price(f, k, t, v, call, r=0.0):
    return float(pricing.black_price(forward=f, strike=k, t_years=t, vol=v, is_call=call, rate=r))


@settings(max_examples=300, deadline=None)
@given(f=forwards, m=moneyness, t=years, v=vols, r=rates)
def test_put_call_parity(f, m, t, v, r):
    k = f * m
    g = pricing.greeks(forward=f, strike=k, t_years=t, vol=v, is_call=np.array([True, False]), rate=r)
    df = np.exp(-r * t)
    assert g.price[0] - g.price[1] == np.float64(df * (f - k)) or abs(
        g.price[0] - g.price[1] - df * (f - k)
    ) <= 8 * EPS * (f + k)
    assert abs(g.delta[0] - g.delta[1] - df) <= 1e-14
    assert g.gamma[0] == g.gamma[1] and g.vega[0] == g.vega[1]


@settings(max_examples=300, deadline=None)
@given(f=forwards, m=moneyness, t=years, v=vols, call=rights, r=rates)
def test_bounds_and_signs(f, m, t, v, call, r):
    k = f * m
    g = pricing.greeks(forward=f, strike=k, t_years=t, vol=v, is_call=call, rate=r)
    df = np.exp(-r * t)
    assert -1.0 <= g.delta <= 1.0
    assert (g.delta >= 0.0) if call else (g.delta <= 0.0)
    assert g.gamma >= 0.0 and g.vega >= 0.0
    intrinsic = df * max((f - k) if call else (k - f), 0.0)
    cap = df * (f if call else k)
    slack = 8 * EPS * (f + k)
    assert intrinsic - slack <= g.price <= cap + slack


def _scale(f, t, v):
    """Natural step and gamma scale: prices vary on a scale of F·σ·√t in F."""
    s = v * np.sqrt(t)
    return f * s, 1.0 / (f * s * np.sqrt(2 * np.pi))


@settings(max_examples=300, deadline=None)
@given(f=forwards, m=moneyness, t=years, v=vols, call=rights)
def test_delta_and_gamma_are_derivatives_in_forward(f, m, t, v, call):
    k = f * m
    g = pricing.greeks(forward=f, strike=k, t_years=t, vol=v, is_call=call)
    width, gamma_scale = _scale(f, t, v)
    h = 1e-3 * width
    up, mid, down = price(f + h, k, t, v, call), price(f, k, t, v, call), price(f - h, k, t, v, call)
    fd_delta = (up - down) / (2 * h)
    assert abs(fd_delta - g.delta) <= 1e-6 + 1e-5 * abs(g.delta)
    h2 = 2e-2 * width
    fd_gamma = (price(f + h2, k, t, v, call) - 2 * mid + price(f - h2, k, t, v, call)) / (h2 * h2)
    assert abs(fd_gamma - g.gamma) <= 1e-3 * gamma_scale


@settings(max_examples=300, deadline=None)
@given(f=forwards, m=moneyness, t=years, v=vols, call=rights)
def test_vega_volga_vanna_are_derivatives_in_vol(f, m, t, v, call):
    k = f * m
    g = pricing.greeks(forward=f, strike=k, t_years=t, vol=v, is_call=call)
    h = 1e-4 * v
    gu = pricing.greeks(forward=f, strike=k, t_years=t, vol=v + h, is_call=call)
    gd = pricing.greeks(forward=f, strike=k, t_years=t, vol=v - h, is_call=call)
    vega_scale = f * np.sqrt(t) * 0.01 / np.sqrt(2 * np.pi)  # the largest vega per vol point
    fd_vega = (gu.price - gd.price) / (2 * h) * 0.01
    assert abs(fd_vega - g.vega) <= 1e-6 * vega_scale + 1e-6 * g.vega
    fd_volga = (gu.vega - gd.vega) / (2 * h) * 0.01
    assert abs(fd_volga - g.volga) <= 1e-5 * (vega_scale + abs(g.volga))
    fd_vanna = (gu.delta - gd.delta) / (2 * h) * 0.01
    assert abs(fd_vanna - g.vanna) <= 1e-6 + 1e-5 * abs(g.vanna)


@settings(max_examples=300, deadline=None)
@given(f=forwards, m=moneyness, t=years, v=vols, call=rights, r=rates)
def test_theta_is_calendar_day_decay(f, m, t, v, call, r):
    k = f * m
    g = pricing.greeks(forward=f, strike=k, t_years=t, vol=v, is_call=call, rate=r)
    h = 1e-4 * t
    fd = -(price(f, k, t + h, v, call, r) - price(f, k, t - h, v, call, r)) / (2 * h) / 365.0
    theta_scale = f * v / np.sqrt(t) / 365.0  # order of the ATM theta
    assert abs(fd - g.theta) <= 1e-6 * theta_scale + 1e-5 * abs(g.theta)


@settings(max_examples=500, deadline=None)
@given(f=forwards, m=moneyness, t=years, v=vols, call=rights, r=rates)
def test_implied_vol_round_trip(f, m, t, v, call, r):
    k = f * m
    g = pricing.greeks(forward=f, strike=k, t_years=t, vol=v, is_call=call, rate=r)
    result = pricing.implied_vol(price=g.price, forward=f, strike=k, t_years=t, is_call=call, rate=r)
    # A price known to a few ulps of max(F, K) pins the volatility to (that noise) / vega.
    vol_noise = 8 * EPS * max(f, k) / max(float(g.vega) * 100.0, 1e-300)
    if vol_noise <= 1e-10:
        assert result.reason == pricing.IVReason.OK
        assert abs(result.vol - v) <= 1e-8
    else:  # ill-posed: whatever comes back must reprice to the same price, or say why not
        assert result.reason in (pricing.IVReason.OK, pricing.IVReason.AT_INTRINSIC)
        if result.reason == pricing.IVReason.OK:
            repriced = price(f, k, t, float(result.vol), call, r)
            assert abs(repriced - g.price) <= 1e-9 * max(f, k)
        else:
            assert np.isnan(result.vol)
