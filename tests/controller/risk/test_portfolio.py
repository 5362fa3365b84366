"""Portfolio risk in USD and the portfolio target: hand-computed books, the single-currency rule, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.risk.policy import PolicySettings, target_leverage
from controller.risk.portfolio import (
    book_vol_usd,
    covariance,
    equal_risk_shape,
    hedge_in_lots,
    portfolio_leverage,
    portfolio_target,
    risk_contributions,
    risk_leverage,
)

PAIR = ("BTC", "ETH")
SIGMA = np.array([0.6, 0.8])
E = 1_000_000.0


def rho(r):
    return np.array([[1.0, r], [r, 1.0]])


def target(**overrides):
    """BTC: options etc. +1.2M, hedge −0.2M (total +1M); ETH: +0.5M unhedged; 50 % vol target on 1M."""
    arguments = dict(
        currencies=PAIR,
        unhedged_delta_usd=np.array([1.2e6, 5e5]),
        hedge_delta_usd=np.array([-2e5, 0.0]),
        sigma=SIGMA,
        correlation=rho(0.0),
        equity_usd=E,
        target_vol=0.5,
    )
    return portfolio_target(**{**arguments, **overrides})


@pytest.mark.parametrize(
    ("r", "delta", "expected"),
    [
        (0.0, [1e6, 5e5], math.sqrt(0.6**2 + 0.4**2) * 1e6),  # √(0.36 + 0.16) M
        (1.0, [1e6, 5e5], 1.0e6),  # 0.6 M + 0.4 M
        (-1.0, [1e6, 5e5], 0.2e6),  # 0.6 M − 0.4 M
        (1.0, [1e6, -5e5], 0.2e6),  # long BTC short ETH, perfectly correlated: the spread's risk
        (0.5, [1e6, 5e5], math.sqrt(0.36 + 0.16 + 2 * 0.5 * 0.6 * 0.4) * 1e6),
    ],
)
def test_book_vol_by_hand(r, delta, expected):
    assert book_vol_usd(delta_usd=np.array(delta), sigma=SIGMA, correlation=rho(r)) == pytest.approx(
        expected, rel=1e-12
    )


def test_leverages_and_risk_contributions_by_hand():
    delta = np.array([1e6, 5e5])
    assert portfolio_leverage(delta_usd=np.array([1e6, -5e5]), equity_usd=E) == 1.5
    vol = book_vol_usd(delta_usd=delta, sigma=SIGMA, correlation=rho(1.0))  # 1 M
    assert risk_leverage(book_vol_usd=vol, equity_usd=E, reference_vol=0.5) == pytest.approx(2.0)
    rc = risk_contributions(delta_usd=delta, sigma=SIGMA, correlation=rho(0.0))
    assert rc == pytest.approx(np.array([0.36e12, 0.16e12]) / (math.sqrt(0.52) * 1e6), rel=1e-12)
    assert risk_contributions(delta_usd=np.zeros(2), sigma=SIGMA, correlation=rho(0.3)).tolist() == [0.0, 0.0]


def test_one_currency_risk_leverage_is_the_iv_adjusted_leverage():
    """DESIGN §3: L_iv = L·σ̂/σ_ref; 2x at 120 % reads as 4x at a 60 % reference."""
    vol = book_vol_usd(delta_usd=np.array([-2e6]), sigma=np.array([1.2]), correlation=np.ones((1, 1)))
    assert risk_leverage(book_vol_usd=vol, equity_usd=E, reference_vol=0.6) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("r", "split", "goals"),
    [
        # σ_book today √0.52 M; k = 0.5 / √0.52
        (0.0, "proportional", [0.5e6 / math.sqrt(0.52), 0.25e6 / math.sqrt(0.52)]),
        (1.0, "proportional", [0.5e6, 0.25e6]),  # σ_book today 1 M: k = ½
        # ρ = 0: Δᵢσᵢ equal, √2·Δ₁σ₁ = 0.5 M
        (0.0, "equal_risk", [0.5e6 / (math.sqrt(2) * 0.6), 0.5e6 / (math.sqrt(2) * 0.8)]),
        (1.0, "equal_risk", [0.25e6 / 0.6, 0.25e6 / 0.8]),  # ρ = 1: Δᵢσᵢ equal and adding up to 0.5 M
    ],
)
def test_goals_and_hedges_by_hand(r, split, goals):
    result = target(correlation=rho(r), split=split)
    assert [g.goal_delta_usd for g in result.goals] == pytest.approx(goals, rel=1e-9)
    today = [1e6, 5e5]
    assert [g.hedge_change_usd for g in result.goals] == pytest.approx(
        [goals[0] - today[0], goals[1] - today[1]], rel=1e-9
    )
    assert [g.goal_hedge_usd for g in result.goals] == pytest.approx(
        [goals[0] - 1.2e6, goals[1] - 5e5], rel=1e-9
    )
    assert result.goal_book_vol_usd == pytest.approx(0.5 * E, rel=1e-9)
    assert result.reasons == ()
    if split == "equal_risk":
        rc = [g.risk_contribution_usd for g in result.goals]
        assert rc[0] == pytest.approx(rc[1], rel=1e-9) and sum(rc) == pytest.approx(0.5 * E, rel=1e-9)


@pytest.mark.parametrize("sigma_hat", [0.2, 0.5, 0.7, 1.5])
@pytest.mark.parametrize("split", ["proportional", "equal_risk"])
def test_with_rho_one_and_equal_sigma_the_target_is_the_single_currency_one(sigma_hat, split):
    """L* = clamp(L_base·σ_ref/σ̂, L_min, L_max) from policy.target_leverage; the portfolio's goals add up to L*·E."""
    policy = PolicySettings(base_leverage=1.5, min_leverage=0.5, max_leverage=3.0)
    single = target_leverage(sigma_hat=sigma_hat, reference_vol=0.5, settings=policy)
    common = dict(
        equity_usd=E,
        target_vol=policy.base_leverage * 0.5,
        min_leverage=policy.min_leverage,
        max_leverage=policy.max_leverage,
        split=split,
    )
    two = portfolio_target(
        currencies=PAIR,
        unhedged_delta_usd=np.array([7e5, 2e5]),
        hedge_delta_usd=np.array([0.0, 1e5]),
        sigma=np.array([sigma_hat, sigma_hat]),
        correlation=rho(1.0),
        **common,
    )
    one = portfolio_target(
        currencies=("BTC",),
        unhedged_delta_usd=np.array([1e6]),
        hedge_delta_usd=np.array([-6e5]),
        sigma=np.array([sigma_hat]),
        correlation=np.ones((1, 1)),
        **common,
    )
    assert sum(g.goal_delta_usd for g in two.goals) == pytest.approx(single * E, rel=1e-9)
    assert one.goals[0].goal_delta_usd == pytest.approx(single * E, rel=1e-12)
    assert two.goal_leverage == pytest.approx(single, rel=1e-9)
    if split == "proportional":  # today's 7 : 3 kept
        assert two.goals[0].goal_delta_usd == pytest.approx(0.7 * single * E, rel=1e-9)


def test_a_frozen_currency_keeps_its_hedge_and_the_others_absorb_the_scaling():
    """ETH frozen at +0.5 M (0.4 M of vol); ρ = 0: BTC's vol must be √(0.5² − 0.4²) M = 0.3 M, so Δ = 0.5 M."""
    result = target(frozen=frozenset({"ETH"}))
    btc, eth = result.goals
    assert eth.frozen and eth.hedge_change_usd == 0.0 and eth.goal_delta_usd == 5e5
    assert btc.goal_delta_usd == pytest.approx(5e5, rel=1e-12)
    assert btc.hedge_change_usd == pytest.approx(-5e5, rel=1e-12)
    assert result.goal_book_vol_usd == pytest.approx(0.5 * E, rel=1e-12)
    assert result.reasons == ("ETH: data stale, hedge frozen",)
    # ρ = 0.5: 0.36 k² + 2·(0.5·0.6·0.4) k + 0.16 − 0.25 = 0 (in M²), k the positive root
    k = (-0.12 + math.sqrt(0.12**2 + 0.36 * 0.09)) / 0.36
    correlated = target(frozen=frozenset({"ETH"}), correlation=rho(0.5), split="equal_risk")
    assert correlated.goal("BTC").goal_delta_usd == pytest.approx(k * 1e6, rel=1e-12)
    assert correlated.goal("ETH").hedge_change_usd == 0.0


def test_when_the_frozen_exposure_alone_is_above_the_target_the_free_one_goes_to_its_least_risk():
    """ETH frozen at 0.5 M (0.4 M of vol) above a 30 % target: with ρ > 0 BTC long can only add risk: k = 0."""
    result = target(frozen=frozenset({"ETH"}), correlation=rho(0.5), target_vol=0.3)
    assert result.goal("BTC").goal_delta_usd == 0.0
    assert any("frozen exposure keeps" in r for r in result.reasons)
    # BTC short against the frozen ETH long: the least-risk scale is −B/A = 0.5·0.8·0.5 / 0.6 M of short BTC
    hedged = target(frozen=frozenset({"ETH"}), correlation=rho(0.5), target_vol=0.3, signs=np.array([-1, 1]))
    assert hedged.goal("BTC").goal_delta_usd == pytest.approx(-0.5 * 0.8 * 0.5e6 / 0.6, rel=1e-12)
    everything = target(frozen=frozenset(PAIR))
    assert [g.hedge_change_usd for g in everything.goals] == [0.0, 0.0]
    assert everything.reasons == (
        "BTC: data stale, hedge frozen",
        "ETH: data stale, hedge frozen",
        "every currency frozen: no hedge changes",
    )


@pytest.mark.parametrize("split", ["proportional", "equal_risk"])
def test_a_currency_at_its_own_cap_is_held_there_and_the_other_carries_the_rest(split):
    """ρ = 0, 0.5 M of vol to carry: BTC capped at 0.4 M (0.24 M of vol), so ETH carries
    √(0.5² − 0.24²) M of vol: Δ_ETH = 0.43863 M / 0.8, whatever the split would have given BTC."""
    free = target(split=split)
    assert free.goal("BTC").goal_delta_usd > 4e5  # without the cap BTC's goal passes 0.4 M
    capped = target(split=split, currency_max_usd=np.array([4e5, np.inf]))
    btc, eth = capped.goals
    assert btc.goal_delta_usd == pytest.approx(4e5, rel=1e-12) and not btc.frozen
    assert btc.hedge_change_usd == pytest.approx(4e5 - 1e6, rel=1e-12)  # a capped currency still trades
    assert eth.goal_delta_usd == pytest.approx(math.sqrt(0.25 - 0.24**2) / 0.8 * 1e6, rel=1e-12)
    assert capped.goal_book_vol_usd == pytest.approx(0.5 * E, rel=1e-12)
    assert "BTC: its goal passes its own leverage cap: held there" in capped.reasons
    both = target(split=split, currency_max_usd=np.array([4e5, 3e5]))
    assert [g.goal_delta_usd for g in both.goals] == pytest.approx([4e5, 3e5], rel=1e-12)
    assert both.goal_book_vol_usd == pytest.approx(math.hypot(0.24, 0.24) * 1e6, rel=1e-12)
    assert both.reasons[-1] == "every free currency at its cap: the book's vol stays below the target"


def test_the_portfolio_leverage_is_clamped_like_l_star():
    capped = target(correlation=rho(1.0), target_vol=2.0, max_leverage=1.2)
    assert capped.goal_leverage == pytest.approx(1.2)
    assert capped.goal("BTC").goal_delta_usd == pytest.approx(0.8e6)  # 2 : 1 kept
    assert capped.reasons == ("portfolio leverage held at its maximum 1.2x",)
    floored = target(correlation=rho(1.0), target_vol=0.1, min_leverage=0.6)
    assert floored.goal_leverage == pytest.approx(0.6)


def test_signs_choose_each_currencys_direction():
    """Long mode: +1 for both, though ETH is short today; proportional keeps the sizes 1 : 0.5."""
    result = target(hedge_delta_usd=np.array([-2e5, -1e6]), signs=np.array([1, 1]), correlation=rho(1.0))
    assert [g.goal_delta_usd for g in result.goals] == pytest.approx([0.5e6, 0.25e6])
    default = target(hedge_delta_usd=np.array([-2e5, -1e6]), correlation=rho(1.0))
    # today's signs: +1 M and −0.5 M at ρ = 1 is 0.2 M of vol; scaled ×2.5 to 0.5 M
    assert [g.goal_delta_usd for g in default.goals] == pytest.approx([2.5e6, -1.25e6])


def test_equal_risk_without_a_solution_falls_back_to_proportional_with_a_reason():
    result = target(correlation=rho(-1.0), split="equal_risk", sigma=np.array([0.6, 0.6]))
    assert (
        equal_risk_shape(
            covariance=covariance(sigma=np.array([0.6, 0.6]), correlation=rho(-1.0)), signs=np.ones(2)
        )
        is None
    )
    assert result.reasons == (
        "equal risk contributions have no solution with these signs: proportional split used",
    )
    assert result.goal_book_vol_usd == pytest.approx(0.5 * E)


def test_hedges_in_lots_round_to_the_nearest_lot_and_stop_at_the_cap():
    # an inverse perpetual of 10 USD lots at mark 1.0002 × index: 1.0002 USD of contract per USD of Δ
    assert hedge_in_lots(change_usd=-12_345.0, usd_per_unit=1 / 1.0002, lot=10.0, max_units=1e6) == (
        -12_350.0,
        False,
    )
    assert hedge_in_lots(change_usd=4.0, usd_per_unit=1.0, lot=10.0, max_units=1e6) == (0.0, False)
    assert hedge_in_lots(change_usd=5e5, usd_per_unit=1.0, lot=10.0, max_units=123_456.0) == (123_450.0, True)
    assert hedge_in_lots(change_usd=-0.3 * 60_000, usd_per_unit=60_000.0, lot=0.001, max_units=1.0) == (
        pytest.approx(-0.3),
        False,
    )


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="positive semi-definite"):
        book_vol_usd(
            delta_usd=np.array([1.0, -1.0, 1.0]),
            sigma=np.ones(3),
            correlation=np.array([[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1.0]]),
        )
    with pytest.raises(ValueError, match="unit diagonal"):
        book_vol_usd(delta_usd=np.ones(2), sigma=SIGMA, correlation=np.array([[1, 0.5], [0.4, 1]]))
    with pytest.raises(ValueError, match="not in"):
        target(frozen=frozenset({"SOL"}))
    with pytest.raises(ValueError, match="split"):
        target(split="risk_parity")


def correlation_matrices(n, ridge=1e-3):
    """Random correlation matrices: normalised Gram matrices, nearly singular ones included (small ridge)."""
    return st.lists(st.floats(-1, 1), min_size=n * n, max_size=n * n).map(
        lambda v: _normalised_gram(np.array(v).reshape(n, n), ridge)
    )


def _normalised_gram(a, ridge):
    a = a + np.eye(len(a)) * ridge
    g = a @ a.T
    d = np.sqrt(np.diag(g))
    m = g / np.outer(d, d)
    np.fill_diagonal(m, 1.0)
    return np.clip((m + m.T) / 2, -1, 1)


books = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(-1e7, 1e7), min_size=n, max_size=n).map(np.array),
        st.lists(st.floats(0.0, 3.0), min_size=n, max_size=n).map(np.array),
        correlation_matrices(n),
    )
)


sizes = st.tuples(st.floats(1e3, 1e7), st.sampled_from([-1.0, 1.0])).map(lambda t: t[0] * t[1])
regular_books = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        st.lists(sizes, min_size=n, max_size=n).map(np.array),
        st.lists(st.floats(0.05, 3.0), min_size=n, max_size=n).map(np.array),
        correlation_matrices(n, ridge=0.3),  # positive definite: equal risk exists for any signs
    )
)


@settings(max_examples=200, deadline=None)
@given(book=books, c=st.floats(-10, 10))
def test_book_vol_properties(book, c):
    delta, sigma, corr = book
    vol = book_vol_usd(delta_usd=delta, sigma=sigma, correlation=corr)
    bound = float(np.sum(np.abs(delta) * sigma))
    assert 0.0 <= vol <= bound * (1 + 1e-9) + 1e-6
    scaled = book_vol_usd(delta_usd=c * delta, sigma=sigma, correlation=corr)
    assert scaled == pytest.approx(abs(c) * vol, rel=1e-9, abs=1e-6)
    ones = np.ones_like(corr)
    assert book_vol_usd(delta_usd=np.abs(delta), sigma=sigma, correlation=ones) == pytest.approx(
        bound, rel=1e-9
    )
    rc = risk_contributions(delta_usd=delta, sigma=sigma, correlation=corr)
    assert float(np.sum(rc)) == pytest.approx(vol, rel=1e-7, abs=1e-3)


@settings(max_examples=150, deadline=None)
@given(
    book=regular_books,
    split=st.sampled_from(["proportional", "equal_risk"]),
    target_vol=st.floats(0.05, 2.0),
)
def test_without_limits_the_goal_book_vol_is_the_target(book, split, target_vol):
    delta, sigma, corr = book
    result = portfolio_target(
        currencies=[f"C{i}" for i in range(delta.size)],
        unhedged_delta_usd=delta,
        hedge_delta_usd=np.zeros_like(delta),
        sigma=sigma,
        correlation=corr,
        equity_usd=E,
        target_vol=target_vol,
        split=split,
    )
    assert result.reasons == ()
    assert result.goal_book_vol_usd == pytest.approx(target_vol * E, rel=1e-9)
    goals = np.array([g.goal_delta_usd for g in result.goals])
    assert np.all(np.sign(goals) == np.sign(delta))  # directions kept
    if split == "equal_risk":
        rc = np.array([g.risk_contribution_usd for g in result.goals])
        assert rc == pytest.approx(np.full(rc.size, target_vol * E / rc.size), rel=1e-8)


@settings(max_examples=100, deadline=None)
@given(book=books.filter(lambda b: b[0].size >= 2), data=st.data())
def test_frozen_currencies_never_move_and_the_others_do_what_they_can(book, data):
    delta, sigma, corr = book
    n = delta.size
    names = [f"C{i}" for i in range(n)]
    frozen = frozenset(data.draw(st.sets(st.sampled_from(names), min_size=1, max_size=n - 1)))
    result = portfolio_target(
        currencies=names,
        unhedged_delta_usd=delta,
        hedge_delta_usd=np.zeros(n),
        sigma=sigma,
        correlation=corr,
        equity_usd=E,
        target_vol=0.5,
        frozen=frozen,
    )
    for g in result.goals:
        if g.frozen:
            assert g.hedge_change_usd == 0.0 and g.goal_delta_usd == g.delta_usd
    reached = result.goal_book_vol_usd == pytest.approx(0.5 * E, rel=1e-7)
    assert reached or result.reasons[len(frozen) :], "the target is met, or a reason says why not"
