"""The EWMA correlation of index returns: known answers, time decay, common timestamps, degenerate cases."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.risk.correlation import (
    CovarianceEwma,
    correlation,
    correlation_by_pair,
    covariance_ewma,
    observe,
)
from controller.risk.realised import YEAR_S, VarianceEwma, ewma_vol
from controller.risk.realised import observe as observe_variance

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H2 = 7200.0


def fold(state, times_s, prices, half_life_s):
    for i, t in enumerate(times_s):
        at = T0 + timedelta(seconds=float(t))
        state = observe(state, prices={a: p[i] for a, p in prices.items()}, at=at, half_life_s=half_life_s)
    return state


def prices_from(returns, start=100.0):
    return start * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))


def test_equal_weights_give_the_plain_correlation_and_vols():
    r_btc = np.array([0.01, -0.02, 0.03])
    r_eth = np.array([0.02, -0.01, 0.01])
    times = np.arange(4) * H2
    state = fold(
        CovarianceEwma(("BTC", "ETH")),
        times,
        {"BTC": prices_from(r_btc), "ETH": prices_from(r_eth)},
        math.inf,
    )
    # Σr_b r_e = 0.0002 + 0.0002 + 0.0003 = 0.0007; Σr_b² = 0.0014; Σr_e² = 0.0006
    expected = 0.0007 / math.sqrt(0.0014 * 0.0006)
    estimate = correlation(state)
    assert estimate.reason is None
    assert estimate.matrix[0, 1] == pytest.approx(expected, rel=1e-12)
    assert estimate.matrix[1, 0] == estimate.matrix[0, 1]
    assert np.diag(estimate.matrix).tolist() == [1.0, 1.0]
    years = 3 * H2 / YEAR_S
    assert estimate.vols == pytest.approx([math.sqrt(0.0014 / years), math.sqrt(0.0006 / years)], rel=1e-12)
    assert correlation_by_pair(state) == {"BTC/ETH": pytest.approx(expected, rel=1e-12)}


def test_weights_decay_with_elapsed_time():
    """Half-life one step: the first of two returns counts half, in the products and in the time."""
    r_btc, r_eth = np.array([0.02, 0.01]), np.array([-0.01, 0.01])
    state = fold(
        CovarianceEwma(("BTC", "ETH")),
        np.arange(3) * H2,
        {"BTC": prices_from(r_btc), "ETH": prices_from(r_eth)},
        H2,
    )
    cross = 0.5 * (0.02 * -0.01) + 0.01 * 0.01
    var_b, var_e = 0.5 * 0.02**2 + 0.01**2, 0.5 * 0.01**2 + 0.01**2
    assert state.sum_rr[0][1] == pytest.approx(cross, rel=1e-12)
    assert state.sum_dt == pytest.approx(1.5 * H2 / YEAR_S, rel=1e-12)
    assert correlation(state).matrix[0, 1] == pytest.approx(cross / math.sqrt(var_b * var_e), rel=1e-12)


def test_an_instant_one_asset_misses_is_skipped_and_the_next_return_spans_the_gap():
    state = CovarianceEwma(("BTC", "ETH"))
    state = observe(state, prices={"BTC": 100.0, "ETH": 10.0}, at=T0, half_life_s=math.inf)
    skipped = observe(state, prices={"BTC": 101.0, "ETH": None}, at=T0 + timedelta(hours=2), half_life_s=1e9)
    assert skipped == state
    assert observe(state, prices={"BTC": 101.0}, at=T0 + timedelta(hours=2), half_life_s=1e9) == state
    state = observe(
        state, prices={"BTC": 102.0, "ETH": 10.5}, at=T0 + timedelta(hours=4), half_life_s=math.inf
    )
    assert state.returns == 1
    assert state.sum_dt == pytest.approx(4 * 3600.0 / YEAR_S, rel=1e-12)  # the gap at its real length
    assert state.sum_rr[0][1] == pytest.approx(math.log(1.02) * math.log(1.05), rel=1e-12)


def test_the_batch_form_keeps_only_common_timestamps_and_equals_the_fold():
    rng = np.random.default_rng(4)
    times = np.arange(60) * H2
    btc, eth = prices_from(rng.normal(0, 0.01, 59)), prices_from(rng.normal(0, 0.015, 59), 10.0)
    keep_btc = np.ones(60, bool)
    keep_btc[[5, 6, 30]] = False  # BTC misses three instants, ETH two others
    keep_eth = np.ones(60, bool)
    keep_eth[[12, 40]] = False
    batch = covariance_ewma(
        times_s={"BTC": times[keep_btc], "ETH": times[keep_eth]},
        prices={"BTC": btc[keep_btc], "ETH": eth[keep_eth]},
        half_life_s=3 * 86400.0,
    )
    common = keep_btc & keep_eth
    folded = fold(
        CovarianceEwma(("BTC", "ETH")), times[common], {"BTC": btc[common], "ETH": eth[common]}, 3 * 86400.0
    )
    assert batch.returns == folded.returns == common.sum() - 1
    assert np.array(batch.sum_rr) == pytest.approx(np.array(folded.sum_rr), rel=1e-10)
    assert batch.sum_dt == pytest.approx(folded.sum_dt, rel=1e-12)
    assert batch.last_prices == folded.last_prices
    assert batch.last_at - batch.first_at == folded.last_at - folded.first_at  # the fold starts at T0
    assert batch.last_at == datetime.fromtimestamp(times[common][-1], UTC)


def test_each_diagonal_is_the_realised_ewma_vol_of_its_asset():
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.uniform(3600, 20000, 80))
    btc = prices_from(rng.normal(0, 0.01, 79))
    state = covariance_ewma(
        times_s={"BTC": times, "ETH": times},
        prices={"BTC": btc, "ETH": btc[::-1].copy()},
        half_life_s=86400.0,
    )
    single = VarianceEwma()
    for t, p in zip(times, btc, strict=True):
        single = observe_variance(
            single, price=float(p), at=T0 + timedelta(seconds=float(t)), half_life_s=86400.0
        )
    assert correlation(state).vols[0] == pytest.approx(ewma_vol(single), rel=1e-10)


def test_moving_together_or_against_gives_plus_or_minus_one():
    rng = np.random.default_rng(6)
    times = np.arange(30) * H2
    btc = prices_from(rng.normal(0, 0.02, 29), 60_000.0)
    together = covariance_ewma(
        times_s={"BTC": times, "ETH": times}, prices={"BTC": btc, "ETH": btc / 20.0}, half_life_s=86400.0
    )
    against = covariance_ewma(
        times_s={"BTC": times, "ETH": times}, prices={"BTC": btc, "ETH": 1e8 / btc}, half_life_s=86400.0
    )
    assert correlation_by_pair(together)["BTC/ETH"] == pytest.approx(1.0, abs=1e-12)
    assert correlation_by_pair(against)["BTC/ETH"] == pytest.approx(-1.0, abs=1e-12)


def test_degenerate_histories_are_unknown_with_a_reason_never_nan():
    empty = CovarianceEwma(("BTC", "ETH"))
    assert correlation(empty).matrix is None
    assert correlation(empty).reason == "no common return yet"
    assert correlation_by_pair(empty) == {"BTC/ETH": None}
    times = np.arange(5) * H2
    flat = covariance_ewma(
        times_s={"BTC": times, "ETH": times},
        prices={"BTC": prices_from([0.01, -0.01, 0.02, 0.0]), "ETH": np.full(5, 3000.0)},
        half_life_s=86400.0,
    )
    estimate = correlation(flat)
    assert estimate.matrix is None and estimate.vols is None
    assert "ETH" in estimate.reason and "not moved" in estimate.reason
    assert correlation_by_pair(flat) == {"BTC/ETH": None}
    moving = covariance_ewma(
        times_s={"BTC": times, "ETH": times},
        prices={"BTC": prices_from([0.01, -0.01, 0.02, 0.0]), "ETH": prices_from([0.0, 0.01, 0.0, 0.01])},
        half_life_s=86400.0,
    )
    short = correlation(moving, min_history_days=1.0)  # 8 hours of history
    assert short.matrix is None and short.reason == "0.3 days of common history, 1 needed"
    assert correlation_by_pair(moving, min_history_days=1.0) == {"BTC/ETH": None}
    assert correlation(moving, min_history_days=0.3).matrix is not None


def test_pairs_are_keyed_in_the_order_of_the_assets_and_one_flat_asset_spoils_only_its_pairs():
    times = np.arange(6) * H2
    state = covariance_ewma(
        times_s={"BTC": times, "ETH": times, "SOL": times},
        prices={
            "BTC": prices_from([0.01, -0.02, 0.01, 0.03, -0.01]),
            "ETH": prices_from([0.02, -0.01, 0.0, 0.02, -0.02]),
            "SOL": np.full(6, 150.0),
        },
        half_life_s=86400.0,
    )
    pairs = correlation_by_pair(state)
    assert list(pairs) == ["BTC/ETH", "BTC/SOL", "ETH/SOL"]
    assert pairs["BTC/ETH"] is not None and pairs["BTC/SOL"] is None and pairs["ETH/SOL"] is None


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="half_life_s"):
        observe(CovarianceEwma(("BTC",)), prices={"BTC": 1.0}, at=T0, half_life_s=0.0)
    with pytest.raises(ValueError, match="positive"):
        observe(CovarianceEwma(("BTC",)), prices={"BTC": -1.0}, at=T0, half_life_s=1.0)
    with pytest.raises(ValueError, match="increase"):
        covariance_ewma(
            times_s={"BTC": np.array([2.0, 1.0])}, prices={"BTC": np.array([1.0, 2.0])}, half_life_s=1.0
        )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    assets=st.integers(2, 4),
    half_life_h=st.floats(1.0, 500.0),
)
def test_the_matrix_is_a_correlation_matrix(seed, assets, half_life_h):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(600, 30_000, 40))
    mix = rng.normal(size=(assets, assets))
    returns = rng.normal(0, 0.01, (39, assets)) @ mix
    names = [f"A{i}" for i in range(assets)]
    state = covariance_ewma(
        times_s=dict.fromkeys(names, times),
        prices={n: prices_from(returns[:, i]) for i, n in enumerate(names)},
        half_life_s=half_life_h * 3600.0,
    )
    m = correlation(state).matrix
    assert m is not None and np.all(np.isfinite(m))
    assert np.array_equal(m, m.T) and np.all(np.abs(m) <= 1.0) and np.all(np.diag(m) == 1.0)
    assert np.linalg.eigvalsh(m).min() >= -1e-10
