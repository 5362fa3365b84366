"""Correlated paths of two currencies, and the single-currency path left exactly as it was.

The correlation tests recover each step's normal shocks from the published state (index and ATM
volatility) and compare their sample correlation with ``rho``; the tolerance comes from the sample
size through Fisher's transform (``atanh r`` is normal with standard deviation ``1/√(n − 3)``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from controller.sim import SimConfig, SimExchange
from controller.sim.correlated import CorrelatedVolPaths
from controller.sim.market import (
    CURRENCY_MARKETS,
    SECONDS_PER_YEAR,
    MarketPath,
    StochasticVolParams,
    StochasticVolPath,
)

START = datetime(2026, 1, 2, 8, tzinfo=UTC)
STEPS = 40_000  # about 139 days of 5-minute steps
Z_BOUND = 4.5  # standard deviations of atanh(r): a seeded test, and a wrong rho is far outside it


def old_path(seed: int, params: StochasticVolParams, chunks: int) -> tuple[np.ndarray, ...]:
    """StochasticVolPath's arrays as the code before the two-currency change built them (verbatim)."""
    rng = np.random.default_rng(seed)
    p = params
    log_s, log_v, fund = np.array([math.log(p.index0)]), np.array([math.log(p.vol0)]), np.array([p.funding0])
    for _ in range(chunks):
        n = 4096
        dt = p.step_s / SECONDS_PER_YEAR
        z = rng.standard_normal((3, n))
        z2 = p.rho * z[0] + math.sqrt(1.0 - p.rho**2) * z[1]
        jumps = rng.random(n) < p.jump_intensity * dt
        jump_sizes = np.where(jumps, rng.normal(p.jump_mean, p.jump_std, n), 0.0)
        a, b, c = np.empty(n), np.empty(n), np.empty(n)
        s, v, f = log_s[-1], log_v[-1], fund[-1]
        target = math.log(p.vol_mean)
        for i in range(n):
            v = v + p.vol_reversion * (target - v) * dt + p.vol_of_vol * math.sqrt(dt) * z2[i]
            v += abs(jump_sizes[i]) * p.jump_vol_beta
            sigma_r = p.realised_ratio * math.exp(v)
            s = s - 0.5 * sigma_r * sigma_r * dt + sigma_r * math.sqrt(dt) * z[0, i] + jump_sizes[i]
            f = f + p.funding_reversion * (p.funding_mean - f) * dt + p.funding_vol * math.sqrt(dt) * z[2, i]
            a[i], b[i], c[i] = s, v, f
        log_s, log_v, fund = np.concatenate([log_s, a]), np.concatenate([log_v, b]), np.concatenate([fund, c])
    return np.exp(log_s), np.exp(log_v), fund


def states(path: MarketPath, steps: int, step_s: float = 300.0) -> tuple[np.ndarray, np.ndarray]:
    """(index, ATM vol) at each of the first ``steps + 1`` grid points."""
    got = [path.state_at(path.start + timedelta(seconds=k * step_s)) for k in range(steps + 1)]
    return np.array([s.index for s in got]), np.array([s.atm_vol for s in got])


def index_shocks(index: np.ndarray, vol: np.ndarray, p: StochasticVolParams) -> np.ndarray:
    """Each step's index shock z1 from ln S' = ln S − ½σ_r²dt + σ_r√dt z1 (no jumps), σ_r = 0.9 σ'."""
    dt = p.step_s / SECONDS_PER_YEAR
    sigma_r = p.realised_ratio * vol[1:]
    return (np.diff(np.log(index)) + 0.5 * sigma_r**2 * dt) / (sigma_r * math.sqrt(dt))


def vol_shocks(vol: np.ndarray, p: StochasticVolParams) -> np.ndarray:
    """Each step's volatility shock z2 from ln σ' = ln σ + κ(ln σ̄ − ln σ)dt + ξ√dt z2 (no jumps)."""
    dt = p.step_s / SECONDS_PER_YEAR
    v = np.log(vol)
    return (np.diff(v) - p.vol_reversion * (math.log(p.vol_mean) - v[:-1]) * dt) / (
        p.vol_of_vol * math.sqrt(dt)
    )


def assert_correlation(a: np.ndarray, b: np.ndarray, rho: float) -> None:
    r = float(np.corrcoef(a, b)[0, 1])
    bound = Z_BOUND / math.sqrt(a.size - 3)
    assert abs(math.atanh(r) - math.atanh(rho)) < bound, f"r = {r:.4f}, rho = {rho}, n = {a.size}"


def test_the_single_currency_path_is_the_one_built_before():
    index, vol, funding = old_path(7, StochasticVolParams(), chunks=3)
    path = StochasticVolPath(seed=7, start=START)
    for step in (*range(0, 3 * 4096 + 1, 97), 4095, 4096, 4097, 8192, 3 * 4096):
        state = path.state_at(START + timedelta(seconds=300 * step))
        assert (state.index, state.atm_vol, state.perp_premium) == (index[step], vol[step], funding[step])


def test_the_default_engines_market_is_what_it_was():
    """Figures printed by the code at 3296c2d (before this change), for the default engine."""
    engine = SimExchange(SimConfig())
    expected = {
        1: (90000.06394979633, 0.5525287402003322, 0.00010395129016458872),
        4096: (80565.27776552689, 0.5019291110562465, 2.95852028521073e-05),
        9000: (81796.83926999559, 0.5823066052857419, -7.401880789638946e-05),
    }
    for step, figures in expected.items():
        state = engine.path.state_at(engine.now + timedelta(seconds=300 * step))
        assert (state.index, state.atm_vol, state.perp_premium) == figures


def no_jumps(params: StochasticVolParams) -> StochasticVolParams:
    return replace(params, jump_intensity=0.0)


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_log_index_returns_are_correlated_rho_at_constant_volatility(rho):
    """With the volatility held (ξ = 0, σ0 = σ̄) and no jumps, a log return is a constant plus
    σ_r√dt·z1: the returns' correlation is the shocks' correlation."""
    flat = {c: replace(no_jumps(p), vol_of_vol=0.0, vol0=p.vol_mean) for c, p in CURRENCY_MARKETS.items()}
    paths = CorrelatedVolPaths(seed=3, start=START, params=flat, rho=rho)
    btc, _ = states(paths.path("BTC"), STEPS)
    eth, _ = states(paths.path("ETH"), STEPS)
    assert_correlation(np.diff(np.log(btc)), np.diff(np.log(eth)), rho)


def test_rho_one_gives_identical_log_returns_at_constant_volatility():
    flat = {
        c: replace(no_jumps(CURRENCY_MARKETS["BTC"]), vol_of_vol=0.0, index0=x)
        for c, x in (("BTC", 9e4), ("ETH", 3e3))
    }
    paths = CorrelatedVolPaths(seed=3, start=START, params=flat, rho=1.0)
    btc, _ = states(paths.path("BTC"), 5000)
    eth, _ = states(paths.path("ETH"), 5000)
    np.testing.assert_allclose(np.diff(np.log(btc)), np.diff(np.log(eth)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_index_and_volatility_shocks_are_correlated_rho(rho):
    """Under the stochastic-volatility model (each currency's own parameters, jumps off so that
    the shocks can be read back exactly), index shocks and volatility shocks both correlate ρ."""
    params = {c: no_jumps(p) for c, p in CURRENCY_MARKETS.items()}
    paths = CorrelatedVolPaths(seed=11, start=START, params=params, rho=rho)
    (btc, btc_vol), (eth, eth_vol) = (states(paths.path(c), STEPS) for c in ("BTC", "ETH"))
    assert_correlation(
        index_shocks(btc, btc_vol, params["BTC"]), index_shocks(eth, eth_vol, params["ETH"]), rho
    )
    assert_correlation(vol_shocks(btc_vol, params["BTC"]), vol_shocks(eth_vol, params["ETH"]), rho)
    # each currency keeps its own leverage effect (rho = -0.5 between its index and its volatility)
    own = params["ETH"].rho
    assert_correlation(index_shocks(eth, eth_vol, params["ETH"]), vol_shocks(eth_vol, params["ETH"]), own)


def test_rho_one_gives_identical_normalised_shocks():
    params = {c: no_jumps(p) for c, p in CURRENCY_MARKETS.items()}
    paths = CorrelatedVolPaths(seed=5, start=START, params=params, rho=1.0)
    (btc, btc_vol), (eth, eth_vol) = (states(paths.path(c), 5000) for c in ("BTC", "ETH"))
    z_btc, z_eth = index_shocks(btc, btc_vol, params["BTC"]), index_shocks(eth, eth_vol, params["ETH"])
    np.testing.assert_allclose(z_btc, z_eth, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        vol_shocks(btc_vol, params["BTC"]), vol_shocks(eth_vol, params["ETH"]), atol=1e-9
    )


def test_with_rho_one_and_one_model_the_jumps_coincide_too():
    same = {c: replace(CURRENCY_MARKETS["BTC"], jump_intensity=200.0) for c in ("BTC", "ETH")}
    paths = CorrelatedVolPaths(seed=5, start=START, params=same, rho=1.0)
    btc = states(paths.path("BTC"), 5000)[0]
    assert np.array_equal(btc, states(paths.path("ETH"), 5000)[0])
    calm = {c: no_jumps(p) for c, p in same.items()}
    assert not np.array_equal(
        btc, states(CorrelatedVolPaths(seed=5, start=START, params=calm, rho=1.0).path("BTC"), 5000)[0]
    )


def test_each_currency_has_its_own_level_and_the_paths_share_the_grid():
    paths = CorrelatedVolPaths(seed=7, start=START, params=CURRENCY_MARKETS, rho=0.8)
    btc, eth = paths.path("BTC"), paths.path("ETH")
    assert btc.state_at(START).index == pytest.approx(90_000.0)
    assert eth.state_at(START).index == pytest.approx(3_000.0)
    assert eth.state_at(START).atm_vol == pytest.approx(0.75)
    t = START + timedelta(seconds=1234)
    assert btc.next_change_after(t) == eth.next_change_after(t) == START + timedelta(seconds=1500)
    assert btc.state_at(t).time == eth.state_at(t).time == START + timedelta(seconds=1200)


def test_the_paths_depend_on_the_seed_and_the_time_only():
    """Seeded; lazily extended in chunks for both currencies, whichever asks first and how often."""
    late = START + timedelta(seconds=300 * 9000)
    one = CorrelatedVolPaths(seed=7, start=START, params=CURRENCY_MARKETS, rho=0.8)
    two = CorrelatedVolPaths(seed=7, start=START, params=CURRENCY_MARKETS, rho=0.8)
    one.path("ETH").state_at(late)
    for k in range(0, 9001, 500):
        two.path("BTC").state_at(START + timedelta(seconds=300 * k))
    for currency in ("BTC", "ETH"):
        assert one.path(currency).state_at(late) == two.path(currency).state_at(late)
    other = CorrelatedVolPaths(seed=8, start=START, params=CURRENCY_MARKETS, rho=0.8)
    assert other.path("BTC").state_at(late) != one.path("BTC").state_at(late)


@pytest.mark.parametrize(
    ("params", "rho"),
    [
        (CURRENCY_MARKETS, 1.5),
        ({"BTC": StochasticVolParams(), "ETH": StochasticVolParams(step_s=60.0)}, 0.8),
        ({c: StochasticVolParams() for c in ("BTC", "ETH", "SOL")}, -0.3),
        ({}, 0.8),
    ],
)
def test_impossible_settings_are_refused(params, rho):
    with pytest.raises(ValueError):
        CorrelatedVolPaths(seed=1, start=START, params=params, rho=rho)


def test_a_negative_rho_between_two_currencies():
    params = {c: no_jumps(p) for c, p in CURRENCY_MARKETS.items()}
    paths = CorrelatedVolPaths(seed=2, start=START, params=params, rho=-0.4)
    (btc, btc_vol), (eth, eth_vol) = (states(paths.path(c), STEPS) for c in ("BTC", "ETH"))
    assert_correlation(
        index_shocks(btc, btc_vol, params["BTC"]), index_shocks(eth, eth_vol, params["ETH"]), -0.4
    )
