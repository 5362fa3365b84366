"""VaR and expected shortfall: known answers for a linear book, the sign of convexity for options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.risk.scenarios import Revaluation
from controller.risk.var import HistoricalScenarios, daily_scenarios, historical_var, var_es
from tests.controller.snapshots import NOW, option_position, perp_position

INDEX = 80_000.0


def scenarios(n=500, seed=9, vol_shifts=False):
    rng = np.random.default_rng(seed)
    moves = np.exp(rng.standard_t(4, n) * 0.025) - 1.0
    shifts = rng.normal(0, 0.05, n) if vol_shifts else np.zeros(n)
    days = tuple(
        (datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(n)
    )
    return HistoricalScenarios(days, moves, shifts)


def book(positions, equity_coin=10.0):
    return Revaluation(positions, index=INDEX, equity_coin=equity_coin, as_of=NOW)


def test_var_and_es_of_a_known_sample():
    pnl = -np.arange(1.0, 101.0)  # losses 1 … 100
    var, es = var_es(pnl, level=0.95)
    assert var == pytest.approx(np.quantile(np.arange(1.0, 101.0), 0.95))  # 95.05
    assert es == pytest.approx(np.mean([96, 97, 98, 99, 100]))
    assert var_es(np.arange(1.0, 10.0)) == (0.0, 0.0)  # a book that never loses has no VaR


def test_a_perpetual_only_book_has_the_var_of_its_delta_to_1e_9():
    """Coin collateral plus an inverse perpetual: P&L = Δ_usd·m exactly, so VaR = |Δ_usd| × the quantile."""
    perp = perp_position(-300_000.0, INDEX * 1.0002, INDEX)
    reval = book([perp])
    delta_usd = (10.0 - 300_000.0 / (INDEX * 1.0002)) * INDEX
    s = scenarios()
    figures = historical_var(
        reval.pnl_usd, s, delta_usd=delta_usd, dollar_gamma_usd=0.0, vega_by_relative_vol_usd=0.0
    )
    expected = abs(delta_usd) * np.quantile(-np.sign(delta_usd) * s.price_moves, 0.99)
    assert figures.var_usd == pytest.approx(expected, rel=1e-9)
    assert figures.var_dgv_usd == pytest.approx(expected, rel=1e-9)
    assert figures.es_usd >= figures.var_usd > 0
    worst = int(np.argmin(delta_usd * s.price_moves))
    assert figures.worst_days[0] == s.days[worst]


def straddle(size, strike=88_000.0):
    expiry = "BTC-27MAR26"
    return [
        option_position(f"{expiry}-{int(strike)}-C", size, forward=INDEX, vol=0.6, index=INDEX),
        option_position(f"{expiry}-{int(strike)}-P", size, forward=INDEX, vol=0.6, index=INDEX),
    ]


def _delta_usd(positions):
    """The options' USD delta by central difference of the full revaluation."""
    reval = book(positions, equity_coin=0.0)
    moves = np.array([-1e-4, 1e-4])
    pnl = reval.pnl_usd(moves, np.zeros(2))
    return (pnl[1] - pnl[0]) / (2e-4)


@pytest.mark.parametrize(("size", "below"), [(5.0, True), (-5.0, False)])
def test_gamma_puts_a_long_straddle_below_its_delta_figure_and_a_short_one_above(size, below):
    positions = straddle(size)
    reval = book(positions, equity_coin=0.0)  # the options alone: no collateral delta
    delta = _delta_usd(positions)
    s = scenarios()
    full = historical_var(
        reval.pnl_usd, s, delta_usd=delta, dollar_gamma_usd=0.0, vega_by_relative_vol_usd=0.0
    )
    delta_var = full.var_dgv_usd  # with gamma and vega zeroed, the approximation is the delta-only VaR
    assert abs(delta) > 1_000  # the strike off the money gives the straddle a delta
    assert (full.var_usd < delta_var) is below


def test_daily_scenarios_use_day_closes_and_skip_gaps():
    day = 86400.0
    times = np.array([0.1, 0.9, 1.5, 1.9, 2.5, 5.5, 6.2]) * day  # days 0,0,1,1,2,5,6
    index = np.array([100.0, 101.0, 99.0, 102.0, 104.0, 90.0, 99.0])
    implied = np.array([0.5, 0.5, 0.6, 0.55, np.nan, 0.7, 0.77])
    s = daily_scenarios(times, index, implied, window_days=30)
    assert s.days == ("1970-01-02", "1970-01-03", "1970-01-07")  # 2 → 5 is a gap, not a day
    assert s.price_moves == pytest.approx([102 / 101 - 1, 104 / 102 - 1, 99 / 90 - 1])
    assert s.vol_shifts == pytest.approx([0.55 / 0.5 - 1, 0.0, 0.77 / 0.7 - 1])
    assert len(daily_scenarios(times, index, implied, window_days=2)) == 2


def test_daily_closes_keep_the_window_and_rebuild_scenarios_only_when_a_day_completes():
    from controller.risk.var import DailyCloses, record_close

    history, start = DailyCloses(), datetime(2024, 3, 1, tzinfo=UTC)
    rebuilt = 0
    for hour in range(24 * 40):
        before = history.scenarios
        history = record_close(
            history, at=start + timedelta(hours=hour), index=100.0 + hour, implied=0.5, window_days=10
        )
        rebuilt += history.scenarios is not before
    assert rebuilt == 39 + 1  # once a day (the first day's arrival too), never within a day
    assert len(history.days) == 12  # the window's completed days, the one before them, and today
    assert len(history.scenarios) == 10
    # the moves are between completed days' closes (23:00 each day), today's partial day is out
    assert history.scenarios.price_moves[-1] == pytest.approx((100 + 24 * 38 + 23) / (100 + 24 * 37 + 23) - 1)
    assert history.scenarios.days[-1] == (start + timedelta(days=38)).strftime("%Y-%m-%d")


@pytest.mark.parametrize("perp_usd", [-300_000.0, 2_000_000.0, -800_000.0 * 1.0002])
def test_the_linear_shortcut_gives_the_full_revaluations_figures(perp_usd):
    """Without options the P&L is Δ_usd·m exactly, so the per-day tail gives the same VaR, ES and days."""
    from controller.risk.var import linear_var

    reval = book([perp_position(perp_usd, INDEX * 1.0002, INDEX)])
    delta_usd = (10.0 + perp_usd / (INDEX * 1.0002)) * INDEX
    s = scenarios(vol_shifts=True)
    full = historical_var(
        reval.pnl_usd, s, delta_usd=delta_usd, dollar_gamma_usd=0.0, vega_by_relative_vol_usd=0.0
    )
    fast = linear_var(s, delta_usd=delta_usd)
    assert fast.var_usd == pytest.approx(full.var_usd, rel=1e-12, abs=1e-6)
    assert fast.es_usd == pytest.approx(full.es_usd, rel=1e-12, abs=1e-6)
    if abs(delta_usd) > 1.0:  # a flat book's "worst days" are rounding noise in the full revaluation
        assert (fast.worst_days, fast.var_scenario) == (full.worst_days, full.var_scenario)
    else:
        assert fast.var_usd == fast.es_usd == 0.0


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400),
    st.floats(0.5, 0.9999),
)
def test_the_partial_sort_quantile_is_numpys(values, level):
    from controller.risk.var import quantile

    x = np.array(values)
    assert quantile(x, level) == pytest.approx(float(np.quantile(x, level)), rel=1e-12, abs=1e-9)
