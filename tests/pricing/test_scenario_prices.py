"""The price-only scenario kernel against the Black-76 reference (``pricing.black_price`` of the shocked inputs).

Hypothesis draws books of options (calls and puts, live, expired and at zero volatility, with and
without a rate) and grids of scenarios (forward factors down to −99 %, vol factors including 0);
a dense grid adds the awkward corners one by one.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pricing
from pricing.scenario_prices import ScenarioPricer

EPS = np.finfo(float).eps


def reference(f, k, t, v, call, r, ff, vf):
    """Black-76 of every (scenario, option), by the full kernel on the shocked inputs."""
    return pricing.black_price(
        forward=np.multiply.outer(ff, f),
        strike=k,
        t_years=t,
        vol=np.multiply.outer(vf, v),
        is_call=call,
        rate=r,
    )


def assert_close(ours, theirs, f, k, ff):
    # ln(F·m/K) is computed as ln(F/K) + ln(m): a few ulps of the log, worth a few ulps of max(F·m, K)
    scale = np.maximum(np.multiply.outer(ff, f), k)
    assert np.all(np.abs(ours - theirs) <= 64 * EPS * scale + 1e-13 * np.abs(theirs)), np.max(
        np.abs(ours - theirs) / scale
    )


def books(n):
    floats = hnp.arrays(float, n, elements=st.floats(0.0, 1.0))
    return st.tuples(floats, floats, floats, floats, hnp.arrays(bool, n), floats)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 12),
    data=st.data(),
    rate=st.sampled_from([0.0, 0.05]),
    ff=hnp.arrays(float, st.integers(1, 9), elements=st.floats(0.01, 10.0)),
)
def test_prices_agree_with_black76_of_the_shocked_inputs(n, data, rate, ff):
    uf, um, ut, uv, call, kind = data.draw(books(n))
    f = 100.0 + 2e5 * uf
    k = f * np.exp(-1.5 + 3.0 * um)
    t = np.where(kind < 0.15, -ut, 3.0 * ut)  # some expired, some at exactly 0
    v = np.where(kind > 0.9, 0.0, 0.05 + 2.5 * uv)  # some at zero volatility
    vf = data.draw(hnp.arrays(float, ff.size, elements=st.floats(0.0, 3.0)))
    ours = ScenarioPricer(forward=f, strike=k, t_years=t, vol=v, is_call=call, rate=rate).prices(
        forward_factor=ff, vol_factor=vf
    )
    assert ours.shape == (ff.size, n)
    assert_close(ours, reference(f, k, t, v, call, rate, ff, vf), f, k, ff)


def test_a_dense_grid_with_the_awkward_corners():
    f = np.array([9_000.0, 9_000.0, 9_000.0, 9_000.0, 60_000.0, 60_000.0, 60_000.0, 1.0])
    k = np.array([9_000.0, 4_000.0, 20_000.0, 9_000.0, 60_000.0, 59_000.0, 61_000.0, 1e5])
    t = np.array([0.0, -0.1, 1e-9, 0.5, 30 / 365, 2.0, 1 / 8760, 1.0])  # expired, just alive, a year…
    v = np.array([0.6, 0.8, 0.6, 0.0, 0.5, 3.0, 1e-6, 0.5])  # …zero and tiny volatility
    call = np.array([True, False, True, False, True, False, True, False])
    ff = np.concatenate([np.linspace(0.01, 3.0, 61), [1.0, 1.0]])
    vf = np.concatenate([np.linspace(0.0, 2.0, 61), [1.0, 0.0]])
    for rate in (0.0, 0.03):
        ours = ScenarioPricer(forward=f, strike=k, t_years=t, vol=v, is_call=call, rate=rate).prices(
            forward_factor=ff, vol_factor=vf
        )
        assert_close(ours, reference(f, k, t, v, call, rate, ff, vf), f, k, ff)
    expired_put = ours[:, 1]  # intrinsic at every forward, never discounted
    assert expired_put == pytest.approx(np.maximum(4_000.0 - 9_000.0 * ff, 0.0), abs=1e-9)


def test_scalars_broadcast_and_one_scenario_gives_one_row():
    pricer = ScenarioPricer(
        forward=100.0, strike=np.array([90.0, 110.0]), t_years=0.25, vol=0.5, is_call=True
    )
    row = pricer.prices(forward_factor=1.0, vol_factor=1.0)
    assert row.shape == (1, 2)
    assert row[0] == pytest.approx(
        pricing.black_price(
            forward=100.0, strike=np.array([90.0, 110.0]), t_years=0.25, vol=0.5, is_call=True
        ),
        rel=1e-14,
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("forward", [100.0, 0.0], "forward"),
        ("strike", [np.nan, 1.0], "strike"),
        ("vol", [-0.1, 0.5], "vol"),
        ("t_years", [np.nan, 1.0], "t_years"),
    ],
)
def test_invalid_options_are_refused_once_by_name(field, value, message):
    inputs = {"forward": 100.0, "strike": 100.0, "t_years": 1.0, "vol": 0.5, "is_call": True}
    inputs[field] = np.array(value)
    with pytest.raises(pricing.InvalidInputError, match=message):
        ScenarioPricer(**inputs)


@pytest.mark.parametrize(("ff", "vf"), [(0.0, 1.0), (-0.5, 1.0), (np.inf, 1.0), (1.0, -0.1), (1.0, np.nan)])
def test_impossible_scenarios_are_refused(ff, vf):
    pricer = ScenarioPricer(forward=100.0, strike=100.0, t_years=1.0, vol=0.5, is_call=True)
    with pytest.raises(pricing.InvalidInputError):
        pricer.prices(forward_factor=ff, vol_factor=vf)


def test_the_search_entry_point_equals_the_checked_one():
    f = np.array([9_000.0, 60_000.0, 60_000.0])
    pricer = ScenarioPricer(
        forward=f,
        strike=np.array([9_500.0, 50_000.0, 70_000.0]),
        t_years=np.array([-1.0, 0.1, 0.7]),
        vol=np.array([0.6, 0.0, 0.9]),
        is_call=np.array([True, False, True]),
    )
    ff = np.array([0.3, 1.0, 2.5])
    unchanged = pricer.prices(forward_factor=ff, vol_factor=1.0)
    assert np.array_equal(pricer.prices_of_valid(ff, None), unchanged)
    assert np.array_equal(pricer.prices_of_valid(ff, np.ones(3)), unchanged)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 8),
    data=st.data(),
    rate=st.sampled_from([0.0, 0.05]),
    ff=hnp.arrays(float, st.integers(1, 6), elements=st.floats(0.01, 10.0)),
)
def test_per_option_vol_factors_agree_with_black76_of_each_shocked_option(n, data, rate, ff):
    uf, um, ut, uv, call, kind = data.draw(books(n))
    f = 100.0 + 2e5 * uf
    k = f * np.exp(-1.5 + 3.0 * um)
    t = np.where(kind < 0.15, -ut, 3.0 * ut)
    v = np.where(kind > 0.9, 0.0, 0.05 + 2.5 * uv)
    vf = data.draw(hnp.arrays(float, (ff.size, n), elements=st.floats(0.0, 3.0)))
    ours = ScenarioPricer(forward=f, strike=k, t_years=t, vol=v, is_call=call, rate=rate).prices(
        forward_factor=ff, vol_factor=vf
    )
    theirs = pricing.black_price(
        forward=np.multiply.outer(ff, f), strike=k, t_years=t, vol=vf * v, is_call=call, rate=rate
    )
    assert ours.shape == (ff.size, n)
    assert_close(ours, theirs, f, k, ff)


def test_a_per_option_factor_row_equal_for_all_options_is_the_uniform_shift():
    pricer = ScenarioPricer(
        forward=np.array([60_000.0, 60_000.0]),
        strike=np.array([50_000.0, 70_000.0]),
        t_years=np.array([0.02, 0.5]),
        vol=np.array([0.7, 0.5]),
        is_call=np.array([False, True]),
    )
    ff, vf = np.array([0.84, 1.0, 1.16]), np.array([1.5, 1.0, 0.75])
    uniform = pricer.prices(forward_factor=ff, vol_factor=vf)
    per_option = pricer.prices(forward_factor=ff, vol_factor=np.repeat(vf[:, None], 2, axis=1))
    assert np.array_equal(per_option, uniform)


@pytest.mark.parametrize("shape", [(3, 3), (2, 2), (3, 2, 1)])
def test_per_option_factors_of_the_wrong_shape_are_refused(shape):
    pricer = ScenarioPricer(forward=[100.0, 100.0], strike=100.0, t_years=1.0, vol=0.5, is_call=True)
    with pytest.raises(pricing.InvalidInputError):
        pricer.prices(forward_factor=np.ones(3), vol_factor=np.ones(shape))
