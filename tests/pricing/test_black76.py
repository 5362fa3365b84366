"""Black-76 kernel: agreement with vollib, the documented edge rules, shapes."""

from __future__ import annotations

import numpy as np
import pytest
from vollib.black import black as vollib_black
from vollib.black.greeks import analytical as vollib_greeks

import pricing
from pricing import InvalidInputError


def test_matches_vollib_analytical_greeks_elementwise():
    rng = np.random.default_rng(42)
    n = 400
    f = rng.uniform(1e3, 1e5, n)
    k = f * np.exp(rng.uniform(-1.2, 1.2, n))
    t = rng.uniform(1 / 365, 2.0, n)
    v = rng.uniform(0.1, 2.0, n)
    r = rng.uniform(0.0, 0.08, n)
    call = rng.random(n) < 0.5
    g = pricing.greeks(forward=f, strike=k, t_years=t, vol=v, is_call=call, rate=r)
    for i in range(n):
        flag = "c" if call[i] else "p"
        args = (flag, f[i], k[i], t[i], r[i], v[i])
        assert g.price[i] == pytest.approx(vollib_black(*args), rel=1e-10, abs=1e-9 * f[i])
        assert g.delta[i] == pytest.approx(vollib_greeks.delta(*args), abs=1e-12)
        assert g.gamma[i] == pytest.approx(vollib_greeks.gamma(*args), rel=1e-10, abs=1e-20)
        assert g.vega[i] == pytest.approx(vollib_greeks.vega(*args), rel=1e-10, abs=1e-12)
        assert g.theta[i] == pytest.approx(vollib_greeks.theta(*args), rel=1e-9, abs=1e-9)


def test_known_value():
    # F = K = 100, sigma = 20 %, t = 0.5, r = 2 %: vollib's own doctest value
    g = pricing.greeks(forward=100.0, strike=100.0, t_years=0.5, vol=0.2, is_call=True, rate=0.02)
    assert g.price == pytest.approx(5.5811067246048118, rel=1e-12)


@pytest.mark.parametrize(
    ("forward", "strike", "is_call", "price", "delta"),
    [
        (110.0, 100.0, True, 10.0, 1.0),
        (90.0, 100.0, True, 0.0, 0.0),
        (90.0, 100.0, False, 10.0, -1.0),
        (110.0, 100.0, False, 0.0, 0.0),
        (100.0, 100.0, True, 0.0, 0.5),
        (100.0, 100.0, False, 0.0, -0.5),
    ],
)
@pytest.mark.parametrize("t_years", [0.0, -0.01])
def test_expired_options_are_worth_intrinsic(forward, strike, is_call, price, delta, t_years):
    g = pricing.greeks(forward=forward, strike=strike, t_years=t_years, vol=0.8, is_call=is_call, rate=0.05)
    assert g.price == price and g.delta == delta
    assert g.gamma == g.vega == g.theta == g.vanna == g.volga == 0.0


def test_zero_vol_is_discounted_intrinsic():
    g = pricing.greeks(forward=120.0, strike=100.0, t_years=1.0, vol=0.0, is_call=[True, False], rate=0.05)
    assert g.price == pytest.approx([20.0 * np.exp(-0.05), 0.0])
    assert g.delta == pytest.approx([np.exp(-0.05), 0.0])
    assert not np.isnan(g.theta).any()


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("forward", 0.0),
        ("forward", -5.0),
        ("forward", np.nan),
        ("forward", np.inf),
        ("strike", 0.0),
        ("strike", np.nan),
        ("vol", -0.1),
        ("vol", np.nan),
        ("vol", np.inf),
        ("t_years", np.nan),
        ("rate", np.nan),
    ],
)
def test_invalid_element_is_nan_and_does_not_poison_the_rest(field, bad):
    args = {
        "forward": [100.0, 100.0],
        "strike": [90.0, 110.0],
        "t_years": [0.5, 0.5],
        "vol": [0.6, 0.6],
        "rate": [0.0, 0.0],
    }
    args[field] = [bad, args[field][1]]
    g = pricing.greeks(**args, is_call=True)
    for name in ("price", "delta", "gamma", "vega", "theta", "vanna", "volga"):
        values = getattr(g, name)
        assert np.isnan(values[0]), name
        assert np.isfinite(values[1]), name


def test_invalid_raise_names_field_and_index():
    with pytest.raises(InvalidInputError, match=r"strike .* at index 2"):
        pricing.greeks(
            forward=100.0, strike=[90.0, 100.0, -1.0], t_years=0.5, vol=0.5, is_call=True, invalid="raise"
        )
    with pytest.raises(InvalidInputError, match="invalid must be"):
        pricing.greeks(forward=100.0, strike=90.0, t_years=0.5, vol=0.5, is_call=True, invalid="ignore")


def test_is_call_must_be_boolean():
    with pytest.raises(InvalidInputError, match="is_call"):
        pricing.greeks(forward=100.0, strike=90.0, t_years=0.5, vol=0.5, is_call="c")
    g = pricing.greeks(forward=100.0, strike=90.0, t_years=0.5, vol=0.5, is_call=np.array([1, 0]))
    assert g.delta[0] > 0 > g.delta[1]


def test_non_numeric_input_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="forward must be numeric"):
        pricing.greeks(forward="abc", strike=90.0, t_years=0.5, vol=0.5, is_call=True)


def test_broadcasting_and_shapes():
    strikes = np.linspace(50, 150, 5)
    g = pricing.greeks(forward=100.0, strike=strikes[:, None], t_years=[0.1, 0.5, 1.0], vol=0.5, is_call=True)
    assert g.price.shape == (5, 3)
    scalar = pricing.greeks(forward=100.0, strike=strikes[2], t_years=0.5, vol=0.5, is_call=True)
    assert scalar.price.shape == ()
    assert float(scalar.price) == pytest.approx(g.price[2, 1])


def test_inputs_are_not_modified():
    f = np.array([100.0, 100.0])
    k = np.array([90.0, -1.0])
    pricing.greeks(forward=f, strike=k, t_years=0.5, vol=0.5, is_call=True)
    assert list(k) == [90.0, -1.0] and list(f) == [100.0, 100.0]


def test_result_is_frozen():
    g = pricing.greeks(forward=100.0, strike=90.0, t_years=0.5, vol=0.5, is_call=True)
    with pytest.raises(AttributeError):
        g.price = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_blocked_threaded_evaluation_is_bit_identical(threads):
    from pricing.black76 import set_threads

    rng = np.random.default_rng(5)
    n = 300_000  # above the size where the kernel runs in blocks on threads
    f = rng.uniform(1e3, 1e5, n)
    k = f * np.exp(rng.uniform(-1, 1, n))
    t = rng.uniform(-0.01, 2.0, n)  # some expired
    v = rng.uniform(0.0, 2.0, n)
    v[::997] = np.nan  # some invalid
    r = rng.uniform(0, 0.05, n)
    call = rng.random(n) < 0.5
    previous = set_threads(threads)
    try:
        big = pricing.greeks(forward=f, strike=k, t_years=t, vol=v, is_call=call, rate=r)
        grid = pricing.greeks(
            forward=f.reshape(600, 500),
            strike=k.reshape(600, 500),
            t_years=t.reshape(600, 500),
            vol=v.reshape(600, 500),
            is_call=call.reshape(600, 500),
            rate=r.reshape(600, 500),
        )
    finally:
        set_threads(previous)
    pieces = [
        pricing.greeks(
            forward=f[i : i + 50_000],
            strike=k[i : i + 50_000],
            t_years=t[i : i + 50_000],
            vol=v[i : i + 50_000],
            is_call=call[i : i + 50_000],
            rate=r[i : i + 50_000],
        )
        for i in range(0, n, 50_000)
    ]
    for name in ("price", "delta", "gamma", "vega", "theta", "vanna", "volga"):
        small = np.concatenate([getattr(p, name) for p in pieces])
        np.testing.assert_array_equal(getattr(big, name), small, err_msg=name)
        np.testing.assert_array_equal(getattr(grid, name).ravel(), small, err_msg=name)
    assert np.isnan(big.price[::997]).all()
    assert (big.vega[(t <= 0) & ~np.isnan(v)] == 0).all()


def test_set_threads_rejects_zero():
    from pricing.black76 import set_threads

    with pytest.raises(ValueError):
        set_threads(0)
