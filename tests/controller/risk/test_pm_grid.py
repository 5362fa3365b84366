"""The controller's Deribit PM grid: Deribit's published parameters, and the simulator's PM margin.

The parameters (pricing/portfolio_margin.py, from ``private/pme/simulate``'s published replies) are
read by both the grid (controller/risk/scenarios.py) and the simulator's PM margin
(controller/sim/portfolio_margin.py).  The grid's scenarios are the margin's scenarios: the same
moves, the same vol shocks per option, the same P&L per scenario.  They differ in what is done with
that P&L afterwards (the margin's aggregation rules), which the last tests state one by one.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pricing
from controller.risk.scenarios import Revaluation, ScenarioGrid, deribit_pm_grid
from controller.sim.portfolio_margin import PMInstrument, portfolio_margin, risk_vectors
from pricing.portfolio_margin import PM_PARAMS, shocked_vols
from tests.controller.snapshots import NOW, option_position, perp_position

INDEX = 80_000.0
WEEK = "BTC-9MAR26-80000-C"  # 7 days from NOW (2026-03-02 08:00 UTC)
HALF_YEAR = "BTC-29AUG26-80000-C"  # 180 days


def years(name):
    return pricing.year_fraction(start=NOW, end=pricing.parse_deribit_name(name).expiry)


def test_the_expiries_are_those_of_the_example():
    assert years(WEEK) == pytest.approx(7 / 365) and years(HALF_YEAR) == pytest.approx(180 / 365)


def test_the_grid_is_deribits_published_tables():
    btc, eth = deribit_pm_grid(currency="BTC"), deribit_pm_grid(currency="ETH")
    assert len(btc) == len(eth) == 27 + 8
    standard = [s for s in btc if "extended" not in s.label]
    extended = [s for s in btc if "extended" in s.label]
    assert len(standard) == 27 and len(extended) == 8
    # price_range 0.16 for BTC, 0.18 for ETH (the published replies), 9 buckets
    assert [s.price_move for s in standard[::3]] == pytest.approx(np.linspace(-0.16, 0.16, 9).tolist())
    assert [s.price_move for s in eth[:27:3]] == pytest.approx(np.linspace(-0.18, 0.18, 9).tolist())
    assert [s.vol_shock and s.vol_shock.direction for s in standard[:3]] == ["up", None, "down"]
    # the extended moves, only with volatility up
    assert [s.price_move for s in extended] == [-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert {s.vol_shock.direction for s in extended} == {"up"}
    assert all(s.weight == 1.0 and s.vol_shift == 0.0 for s in btc)
    with pytest.raises(ValueError, match="publishes portfolio-margin parameters for"):
        deribit_pm_grid(currency="SOL")


def test_vol_shocks_of_a_7_day_and_a_180_day_option_by_hand():
    """BTC's published parameters: volatility_range_up 0.5, volatility_range_down 0.25,
    short_term_vega_power 0.3 (below 30 days), long_term_vega_power 0.13, min_volatility_for_shock_up
    0.5.  At σ = 0.6:

    * 7 days:   (30/7)^0.3    = 1.547415577;  up 0.6·(1 + 0.5·1.547415577)  = 1.064224673,
                                               down 0.6·(1 − 0.25·1.547415577) = 0.367887663;
    * 180 days: (30/180)^0.13 = 0.792210032;  up 0.6·(1 + 0.5·0.792210032)  = 0.837663009,
                                               down 0.6·(1 − 0.25·0.792210032) = 0.481168495;
    * 180 days at σ = 0.3: 0.3·1.396105016 = 0.418831505 < 0.5, so up is the floor, 0.5.
    """
    positions = [
        option_position(WEEK, 1.0, forward=INDEX, vol=0.6, index=INDEX),
        option_position(HALF_YEAR, 1.0, forward=INDEX, vol=0.6, index=INDEX),
        option_position(HALF_YEAR, 1.0, forward=INDEX, vol=0.3, index=INDEX),
    ]
    reval = Revaluation(positions, index=INDEX, equity_coin=0.0, as_of=NOW)
    grid = ScenarioGrid.of(deribit_pm_grid())
    _, factors = reval.grid_factors(grid)
    by_label = {s.label: row for s, row in zip(grid.scenarios, factors, strict=True)}
    vols = np.array([0.6, 0.6, 0.3])
    assert by_label["PM +0% vol up"] * vols == pytest.approx([1.064224673, 0.837663009, 0.5], rel=1e-9)
    assert by_label["PM +0% vol down"] * vols == pytest.approx([0.367887663, 0.481168495, 0.240584248])
    assert by_label["PM -16% vol same"].tolist() == [1.0, 1.0, 1.0]
    assert by_label["PM extended -66% vol up"].tolist() == by_label["PM +0% vol up"].tolist()

    # and the P&L of the vol-up scenario is Black-76 at those vols (coin-settled: USD × index/forward)
    pnl = {r.scenario.label: r.pnl_usd for r in reval.run(grid)}
    t = np.array([7, 180, 180]) / 365

    def value(vol):
        return pricing.black_price(forward=INDEX, strike=80_000.0, t_years=t, vol=vol, is_call=True)

    expected = float(np.sum(value(np.array([1.064224673, 0.837663009, 0.5])) - value(vols)))
    assert pnl["PM +0% vol up"] == pytest.approx(expected, rel=1e-8)


@settings(max_examples=40, deadline=None)
@given(vol=st.floats(0.01, 3.0), days=st.floats(0.0, 800.0))
def test_up_never_lowers_and_down_never_raises_a_vol_and_both_fade_with_tenor(vol, days):
    params = PM_PARAMS["BTC"]
    up, down = shocked_vols(vol=vol, t_years=days / 365, params=params)
    later_up, later_down = shocked_vols(vol=vol, t_years=(days + 30) / 365, params=params)
    assert up >= max(vol, params.min_volatility_for_shock_up) and 0 <= down <= vol
    assert later_up <= up + 1e-12 and later_down >= down - 1e-12


# ------------------------------------------------------------------ against the simulator's PM margin
OPTIONS = ["BTC-9MAR26-80000-P", "BTC-27MAR26-70000-P", "BTC-27MAR26-95000-C", "BTC-26JUN26-80000-C"]


def both_models(sizes, vols, perp_usd=0.0):
    """The same book as the controller revalues it and as the simulator's PM margin does."""
    forward = INDEX * 1.002
    positions = [
        option_position(n, s, forward=forward, vol=v, index=INDEX)
        for n, s, v in zip(OPTIONS, sizes, vols, strict=True)
    ]
    items = [
        PMInstrument(
            n,
            mark=0.0,
            forward=forward,
            strike=pricing.parse_deribit_name(n).strike,
            is_call=pricing.parse_deribit_name(n).is_call,
            t_years=years(n),
            iv=v,
        )
        for n, v in zip(OPTIONS, vols, strict=True)
    ]
    pm_sizes = list(sizes)
    if perp_usd:
        positions.append(perp_position(perp_usd, INDEX, INDEX))
        items.append(PMInstrument("BTC-PERPETUAL", mark=INDEX))
        pm_sizes.append(perp_usd)
    # equity 0: PM margins the positions, not the coin collateral the controller also revalues
    reval = Revaluation(positions, index=INDEX, equity_coin=0.0, as_of=NOW)
    grid = ScenarioGrid.of(deribit_pm_grid())
    coin = reval.run(grid)
    coin_pnl = np.array([r.pnl_usd / (INDEX * (1 + r.scenario.price_move)) for r in coin])  # USD → coin
    params = PM_PARAMS["BTC"]
    vectors = risk_vectors(items, params)
    return coin_pnl, vectors, np.array(pm_sizes), params


sizes_strategy = st.lists(st.floats(-5, 5).filter(lambda x: abs(x) > 0.01), min_size=4, max_size=4)
vols_strategy = st.lists(st.floats(0.2, 1.5), min_size=4, max_size=4)


@settings(max_examples=30, deadline=None)
@given(sizes=sizes_strategy, vols=vols_strategy)
def test_every_scenario_of_an_option_book_loses_what_the_simulators_pm_margin_says(sizes, vols):
    ours, vectors, pm_sizes, _ = both_models(sizes, vols)
    theirs = np.concatenate([pm_sizes @ vectors.standard, pm_sizes @ vectors.extended])
    scale = np.sum(np.abs(pm_sizes))
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12 * scale)


@settings(max_examples=30, deadline=None)
@given(sizes=sizes_strategy, vols=vols_strategy)
def test_the_pm_worst_case_is_the_grids_pnl_under_the_margins_aggregation_rules(sizes, vols):
    """PM's worst case = the grid's P&L after the published rules the grid does not apply: aggregated
    gains count at pnl_offset (0 for BTC), the extended table at extended_table_factor (1) and pulled
    towards zero by the dampener extended_dampener / index × (|m| / price_range − 1) coin."""
    ours, vectors, pm_sizes, params = both_models(sizes, vols)
    pm = portfolio_margin(vectors, pm_sizes, params, index=INDEX)
    standard, extended = ours[:27], params.extended_table_factor * ours[27:]
    moves = np.array([s.price_move for s in deribit_pm_grid()[27:]])
    dampening = params.extended_dampener / INDEX * (np.abs(moves) / params.price_range - 1)
    extended = np.sign(extended) * np.maximum(np.abs(extended) - dampening, 0.0)
    worst = max(0.0, -min(standard.min(), extended.min()))  # gains (offset) never set the minimum
    assert pm.worst_case == pytest.approx(worst, rel=1e-9, abs=1e-12)
    # where the standard table holds the worst loss and the dampener cancels the extended one, the
    # controller's worst over the regular range is the margin's worst case as it stands
    if extended.min() >= 0 and standard.min() < 0:
        assert pm.worst_case == pytest.approx(-standard.min(), rel=1e-9)


def test_a_small_short_put_the_grid_and_the_margin_part_at_the_extended_table():
    """One short 7-day put: its worst scenario on the grid is −66 % with vol up (a loss of ≈1.9 coin);
    PM's dampener (100 000 USD / 80 000 × (0.66/0.16 − 1) = 3.9 coin) cancels that loss, so PM's
    worst case is the regular range's −16 %, vol up, the grid's worst standard-table scenario."""
    ours, vectors, pm_sizes, params = both_models([-1.0, 0.0, 0.0, 0.0], [0.6] * 4)
    pm = portfolio_margin(vectors, pm_sizes, params, index=INDEX)
    labels = [s.label for s in deribit_pm_grid()]
    assert labels[int(np.argmin(ours))] == "PM extended -66% vol up" and ours.min() < -1.5
    assert labels[int(np.argmin(ours[:27]))] == "PM -16% vol up"
    assert pm.worst_case == pytest.approx(-ours[:27].min(), rel=1e-12)
    assert np.all(pm.extended == 0.0)


def test_a_future_in_the_extended_table_moves_on_the_grid_and_stays_at_the_edge_in_the_margin():
    """Deribit's published example holds a future at the regular range's edge in the extended table
    (reproduced in the simulator's tests); the grid moves it with the index, as equity would move."""
    perp_usd = -200_000.0
    ours, vectors, pm_sizes, _ = both_models([0.0, 0.0, 0.0, 0.0], [0.6] * 4, perp_usd=perp_usd)
    theirs_standard = pm_sizes @ vectors.standard
    assert ours[:27] == pytest.approx(theirs_standard, rel=1e-12)
    moves = np.array([s.price_move for s in deribit_pm_grid()[27:]])
    full = perp_usd / INDEX * (1 - 1 / (1 + moves))  # an inverse future's coin P&L
    edge = perp_usd / INDEX * (1 - 1 / (1 + np.where(moves < 0, -0.16, 0.16)))
    assert ours[27:] == pytest.approx(full, rel=1e-12)
    assert pm_sizes @ vectors.extended == pytest.approx(edge, rel=1e-12)


def test_a_grid_of_long_dated_options_passes_the_expiry_on_no_shock():
    """An option already expired is worth its intrinsic value in every scenario: the tenor scaling
    (days at least one) gives it a finite factor, and its P&L is the intrinsic value's change."""
    late = NOW + timedelta(days=8)
    p = option_position(WEEK, 1.0, forward=INDEX * 1.1, vol=0.6, index=INDEX)
    reval = Revaluation([p], index=INDEX, equity_coin=0.0, as_of=late)
    for r in reval.run(deribit_pm_grid()):
        f = 1 + r.scenario.price_move
        intrinsic_change = max(INDEX * 1.1 * f - 80_000, 0) - max(INDEX * 1.1 - 80_000, 0) * f
        assert r.pnl_usd == pytest.approx(intrinsic_change / 1.1, rel=1e-9, abs=1e-6)
