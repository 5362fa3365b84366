"""Realised volatility: known answers, gaps at their true length, the EWMA and the risk premium."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.risk.realised import (
    YEAR_S,
    VarianceEwma,
    ewma_vol,
    observe,
    realised_vol,
    rolling_realised_vol,
    vrp_ratio,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def path(returns, step_s=7200.0, start=100.0):
    times = np.arange(len(returns) + 1) * step_s
    prices = start * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    return times, prices


def test_realised_vol_is_the_root_of_squared_returns_over_time():
    r = np.array([0.01, -0.02, 0.015, 0.0, -0.005])
    times, prices = path(r, step_s=86400.0)
    expected = math.sqrt(np.sum(r**2) / (5 * 86400.0 / YEAR_S))
    assert realised_vol(times, prices) == pytest.approx(expected, rel=1e-12)


def test_a_gap_counts_at_its_true_length():
    """The same returns, one taken over a three-day gap: the gap's time enters the denominator."""
    times = np.array([0.0, 1.0, 4.0, 5.0]) * 86400.0
    prices = 100.0 * np.exp(np.cumsum([0.0, 0.01, 0.03, -0.01]))
    expected = math.sqrt((0.01**2 + 0.03**2 + 0.01**2) / (5 * 86400.0 / YEAR_S))
    assert realised_vol(times, prices) == pytest.approx(expected, rel=1e-12)


def test_a_trailing_window_keeps_only_its_returns():
    times, prices = path(np.r_[np.full(10, 0.05), np.full(10, 0.01)], step_s=86400.0)
    assert realised_vol(times, prices, window_s=10 * 86400.0) == pytest.approx(
        0.01 * math.sqrt(365), rel=1e-12
    )


def test_rolling_windows_match_the_direct_estimate_at_each_end():
    rng = np.random.default_rng(3)
    times, prices = path(rng.normal(0, 0.01, 200), step_s=3600.0)
    ends, vols = rolling_realised_vol(times, prices, window_s=48 * 3600.0)
    assert ends.size == 200 - 48 + 1
    for end, vol in list(zip(ends, vols, strict=True))[::37]:
        upto = times <= end
        assert vol == pytest.approx(realised_vol(times[upto], prices[upto], window_s=48 * 3600.0), rel=1e-9)


def test_the_ewma_of_a_constant_volatility_path_is_that_volatility():
    sigma, step = 0.8, 7200.0
    r = sigma * math.sqrt(step / YEAR_S)  # every return exactly one standard deviation, alternating
    state = VarianceEwma()
    for i in range(400):
        state = observe(
            state,
            price=100.0 * math.exp(r * (i % 2)),
            at=T0 + timedelta(seconds=step * i),
            half_life_s=3 * 86400,
        )
    assert ewma_vol(state) == pytest.approx(sigma, rel=1e-9)


def test_the_ewma_weighs_by_elapsed_time_not_by_count():
    """A day of hourly observations and one daily observation of the same path decay alike."""
    half_life = 2 * 86400.0
    hourly, daily = VarianceEwma(), VarianceEwma()
    prices = 100.0 * np.exp(np.cumsum(np.r_[0.0, np.full(48, 0.002)]))
    for h, price in enumerate(prices):
        hourly = observe(hourly, price=float(price), at=T0 + timedelta(hours=h), half_life_s=half_life)
        if h % 24 == 0:
            daily = observe(daily, price=float(price), at=T0 + timedelta(hours=h), half_life_s=half_life)
    later = T0 + timedelta(days=6)  # four days without an observation: both decay by 2^(−4 d / h)
    for state in (hourly, daily):
        after = observe(state, price=float(prices[-1]), at=later, half_life_s=half_life)
        assert after.sum_r2 / state.sum_r2 == pytest.approx(0.5 ** (4 * 86400.0 / half_life), rel=1e-12)
        assert after.sum_dt == pytest.approx(state.sum_dt * 0.25 + 4 / 365, rel=1e-12)


def test_a_cold_start_is_not_an_estimate_until_enough_history():
    state = observe(VarianceEwma(), price=100.0, at=T0, half_life_s=86400)
    assert ewma_vol(state) is None
    state = observe(state, price=101.0, at=T0 + timedelta(hours=2), half_life_s=86400)
    assert ewma_vol(state) is not None and ewma_vol(state, min_history_days=1) is None


def test_the_risk_premium_ratio_compares_the_same_past_intervals():
    """Returns exactly at 0.8 × the implied vol in force at each interval's start: the ratio is 0.8."""
    state = VarianceEwma()
    step, price = 7200.0, 100.0
    for i in range(300):
        implied = 0.5 + 0.3 * (i % 7) / 6  # the implied vol moves around
        state = observe(
            state, price=price, at=T0 + timedelta(seconds=step * i), half_life_s=30 * 86400, implied=implied
        )
        price *= math.exp((1 if i % 2 else -1) * 0.8 * implied * math.sqrt(step / YEAR_S))
    assert vrp_ratio(state) == pytest.approx(0.8, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=60))
def test_an_infinite_half_life_ewma_is_the_plain_estimator(returns):
    """With a half-life far beyond the path, the EWMA equals Σr²/Σdt over the whole path."""
    times, prices = path(np.asarray(returns), step_s=3600.0)
    state = VarianceEwma()
    for t, p in zip(times, prices, strict=True):
        state = observe(state, price=float(p), at=T0 + timedelta(seconds=float(t)), half_life_s=1e15)
    direct = realised_vol(times, prices) or 0.0
    assert (ewma_vol(state) or 0.0) == pytest.approx(direct, rel=1e-9, abs=1e-12)
