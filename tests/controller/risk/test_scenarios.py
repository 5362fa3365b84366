"""Full revaluation: the grid against a brute-force loop, liquidation, and convexity."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pricing
from controller.risk.scenarios import Revaluation, ScenarioGrid, deribit_pm_grid, risk_grid, span_grid
from tests.controller.snapshots import NOW, option_position, perp_position

INDEX = 80_000.0
OPTIONS = ["BTC-27MAR26-80000-C", "BTC-27MAR26-80000-P", "BTC-24APR26-90000-C", "BTC-26JUN26-60000-P"]


def pm_vol(iv, t, direction):
    """Deribit's published BTC shocks, by hand: σ·(1 ± range·(30/d)^p), d >= 1, p = 0.3 below 30 days
    and 0.13 from 30; range 0.5 up (floored at 0.5 vol), 0.25 down."""
    d = max(t * 365, 1.0)
    scale = (30 / d) ** (0.3 if d < 30 else 0.13)
    return max(iv * (1 + 0.5 * scale), 0.5) if direction == "up" else iv * (1 - 0.25 * scale)


def brute_force_pnl(positions, equity_coin, move, shift):
    """One scenario, one position at a time, with scalar prices; ``shift`` a relative vol shift or
    "up"/"down" (Deribit's PM shocks by tenor)."""
    s_new = INDEX * (1 + move)
    coin, usd = 0.0, 0.0
    for p in positions:
        inst = p.instrument
        if isinstance(inst, pricing.Option):
            t = pricing.year_fraction(start=NOW, end=inst.expiry)
            before = float(
                pricing.black_price(
                    forward=p.underlying_price,
                    strike=inst.strike,
                    t_years=t,
                    vol=p.mark_iv,
                    is_call=inst.is_call,
                )
            )
            f_new = p.underlying_price * (1 + move)
            after = float(
                pricing.black_price(
                    forward=f_new,
                    strike=inst.strike,
                    t_years=t,
                    vol=pm_vol(p.mark_iv, t, shift) if isinstance(shift, str) else p.mark_iv * (1 + shift),
                    is_call=inst.is_call,
                )
            )
            coin += p.size * (after / f_new - before / p.underlying_price)
        else:
            coin += p.size * (1 / p.mark_price - 1 / (p.mark_price * (1 + move)))
    return (equity_coin + coin) * s_new + usd - equity_coin * INDEX


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.floats(-20, 20).filter(lambda x: abs(x) > 0.05), min_size=4, max_size=4),
    perp=st.floats(-2e6, 2e6),
    equity=st.floats(0.5, 50),
    vols=st.lists(st.floats(0.2, 1.5), min_size=4, max_size=4),
)
def test_the_grid_equals_a_brute_force_loop(sizes, perp, equity, vols):
    positions = [
        option_position(name, size, forward=INDEX * 1.01, vol=vol, index=INDEX)
        for name, size, vol in zip(OPTIONS, sizes, vols, strict=True)
    ] + [perp_position(perp, INDEX * 1.0003, INDEX)]
    reval = Revaluation(positions, index=INDEX, equity_coin=equity, as_of=NOW)
    grid = deribit_pm_grid() + span_grid()
    results = reval.run(grid)
    for result in results:
        scenario = result.scenario
        shift = scenario.vol_shift if scenario.vol_shock is None else scenario.vol_shock.direction
        expected = brute_force_pnl(positions, equity, scenario.price_move, shift)
        assert result.pnl_usd == pytest.approx(expected, rel=1e-9, abs=1e-6 * equity * INDEX)


def test_grid_shapes():
    pm = deribit_pm_grid()
    assert len(pm) == 9 * 3 + 8
    assert sorted({s.price_move for s in pm if "extended" not in s.label}) == pytest.approx(
        list(np.linspace(-0.16, 0.16, 9))
    )
    assert sorted(s.price_move for s in pm if "extended" in s.label) == [-0.66, -0.33, 0.5, 1, 2, 3, 4, 5]
    assert {s.vol_shift for s in pm} == {0.0}  # the shocks are per option (vol_shock)
    span = span_grid(price_range=0.2, vol_range=0.25, extreme_cover=0.35)
    assert len(span) == 16
    assert [s.weight for s in span].count(0.35) == 2
    assert sorted({round(abs(s.price_move), 9) for s in span}) == pytest.approx(
        [0.0, 0.2 / 3, 0.4 / 3, 0.2, 0.4]
    )


@pytest.mark.parametrize(("size_usd", "equity"), [(-400_000.0, 1.0), (600_000.0, 2.5), (-2_000_000.0, 20.0)])
def test_liquidation_move_of_a_lone_inverse_perpetual_matches_the_closed_form(size_usd, equity):
    mark, mm = INDEX, 0.05 * equity
    reval = Revaluation([perp_position(size_usd, mark, INDEX)], index=INDEX, equity_coin=equity, as_of=NOW)
    # equity + q (1/M − 1/(M f)) = MM  ⇒  f = 1 / (1 + (E − MM)·M / q): up for a short, down for a long
    factor = 1.0 / (1.0 + (equity - mm) * mark / size_usd)
    assert (factor > 1.0) is (size_usd < 0)
    assert reval.liquidation_move(mm) == pytest.approx(factor - 1.0, abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(
    perps=st.lists(st.floats(-3e6, 3e6).filter(lambda x: abs(x) > 100), min_size=1, max_size=3),
    equity=st.floats(0.2, 30),
    mm_share=st.floats(0.0, 0.9),
)
def test_the_linear_closed_form_equals_the_general_search(perps, equity, mm_share):
    # several inverse perps at different marks: the closed form must land where Brent's method does
    positions = [perp_position(size, INDEX * (1 + 0.001 * i), INDEX) for i, size in enumerate(perps)]
    reval = Revaluation(positions, index=INDEX, equity_coin=equity, as_of=NOW)
    mm = mm_share * equity
    closed = reval.liquidation_move(mm)
    searched = reval._searched_liquidation_move(mm, max_up=9.0, max_down=-0.99)
    if searched is None:
        assert closed is None
    else:
        assert closed == pytest.approx(searched, abs=1e-9)
        assert reval.equity_coin_at(np.array([closed]))[0] == pytest.approx(mm, abs=1e-9 * equity)


def test_no_liquidation_when_no_move_gets_there():
    # collateral alone, no positions: equity in coin never changes
    assert Revaluation([], index=INDEX, equity_coin=3.0, as_of=NOW).liquidation_move(0.5) is None
    assert Revaluation([], index=INDEX, equity_coin=0.4, as_of=NOW).liquidation_move(0.5) == 0.0


def straddle(size: float):
    expiry = "BTC-27MAR26"
    return [option_position(f"{expiry}-80000-{r}", size, forward=INDEX, vol=0.6, index=INDEX) for r in "CP"]


@pytest.mark.parametrize(("size", "more"), [(-10.0, True), (10.0, False)])
def test_stressed_leverage_sees_convexity(size, more):
    # delta-neutral book apart from the collateral, hedged to a small net exposure with the perpetual
    equity = 5.0
    positions = [*straddle(size), perp_position(-200_000.0, INDEX, INDEX)]
    book = pricing.book_greeks(
        [
            pricing.Position(p.instrument, p.size, p.mark_price, p.underlying_price, p.mark_iv)
            for p in positions
        ],
        as_of=NOW,
        index_prices={"BTC": INDEX},
        collateral={"BTC": equity},
    )
    leverage = abs(book.delta_usd) / (equity * INDEX)
    stressed = Revaluation(positions, index=INDEX, equity_coin=equity, as_of=NOW).stressed_leverage(
        move=0.06, equity_usd=equity * INDEX
    )
    assert bool(stressed > leverage) is more
    assert abs(stressed - leverage) > 0.05


def test_expired_options_are_revalued_at_intrinsic():
    p = option_position("BTC-27MAR26-70000-C", 1.0, forward=INDEX, vol=0.6, index=INDEX)
    later = p.instrument.expiry + timedelta(hours=1)
    reval = Revaluation([p], index=INDEX, equity_coin=1.0, as_of=later)
    pnl = reval.pnl_usd([0.1], [0.0])[0]
    # base value at intrinsic (10,000 USD / 80,000), after: intrinsic at 88,000
    coin = 18_000 / 88_000 - 10_000 / 80_000
    assert pnl == pytest.approx((1.0 + coin) * 88_000 - 80_000)


@settings(max_examples=20, deadline=None)
@given(
    size=st.floats(-30, -1), perp=st.floats(-1e6, 1e6), equity=st.floats(2, 20), mm_share=st.floats(0.05, 0.6)
)
def test_the_liquidation_move_of_an_option_book_is_the_first_crossing(size, perp, equity, mm_share):
    # a short straddle (concave: crossings on both sides) with a perpetual hedge
    positions = [*straddle(size), perp_position(perp, INDEX, INDEX)]
    reval = Revaluation(positions, index=INDEX, equity_coin=equity, as_of=NOW)
    mm = mm_share * equity
    move = reval.liquidation_move(mm)
    reach = 9.0 if move is None else abs(move) * (1 - 1e-6)
    if move is not None:
        assert reval.equity_coin_at(np.array([move]))[0] == pytest.approx(mm, abs=1e-9 * equity)
    # no smaller move on either side (none at all in the searched range) reaches the margin
    inside = np.concatenate([np.linspace(0, reach, 2000), -np.linspace(0, min(reach, 0.99), 2000)])
    assert np.all(reval.equity_coin_at(inside) > mm)


MIXED = [
    "BTC-27MAR26-70000-P",
    "BTC-27MAR26-90000-C",
    "BTC-24APR26-80000-C",
    "BTC-24APR26-60000-P",
    "BTC-26JUN26-100000-C",
    "BTC-26JUN26-80000-P",
]


def mixed_book(sizes, perp):
    """Long and short options over three expiries and strikes, and a perpetual."""
    return [
        option_position(name, size, forward=INDEX * (1 + 0.002 * i), vol=0.5 + 0.05 * i, index=INDEX)
        for i, (name, size) in enumerate(zip(MIXED, sizes, strict=True))
    ] + [perp_position(perp, INDEX, INDEX)]


def brentq_first_crossing(reval, mm):
    """The reference: a dense scan of each side for the first breach, then scipy's brentq in that step."""
    from scipy.optimize import brentq

    def gap(m):
        return float(reval.equity_coin_at(np.array([m]))[0]) - mm

    roots = []
    for points in (np.linspace(0, 9.0, 9001), -np.linspace(0, 0.99, 991)):
        values = reval.equity_coin_at(points) - mm
        breached = np.flatnonzero(values <= 0)
        if breached.size:
            i = int(breached[0])
            roots.append(brentq(gap, points[i - 1], points[i], xtol=1e-14, rtol=1e-14))
    return min(roots, key=abs) if roots else None


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.floats(-15, 15).filter(lambda x: abs(x) > 0.1), min_size=6, max_size=6),
    perp=st.floats(-1e6, 1e6),
    equity=st.floats(3, 30),
    mm_share=st.floats(0.02, 0.95),
)
def test_the_liquidation_move_of_a_mixed_book_matches_a_dense_scan_and_brent(sizes, perp, equity, mm_share):
    positions = mixed_book(sizes, perp)
    reval = Revaluation(positions, index=INDEX, equity_coin=equity, as_of=NOW)
    mm = mm_share * equity
    if reval.equity_coin_at(np.array([0.0]))[0] <= mm:
        assert reval.liquidation_move(mm) == 0.0
        return
    expected = brentq_first_crossing(reval, mm)
    found = reval.liquidation_move(mm)
    if found is not None:
        assert reval.equity_coin_at(np.array([found]))[0] == pytest.approx(mm, abs=1e-10 * equity)
    if expected is None:
        assert found is None
    elif found is not None and abs(found - expected) <= 1e-9:
        return
    else:
        # the 41-point scan stepped over a dip below the margin and back between two of its
        # points: it then finds a farther root or none, and every scanned point nearer is safe
        assert found is None or abs(found) > abs(expected)
        scan = np.concatenate([np.geomspace(1e-4, 9.0, 20), -np.geomspace(1e-4, 0.99, 20)])
        nearer = scan if found is None else scan[np.abs(scan) < abs(found)]
        assert np.all(reval.equity_coin_at(nearer) > mm)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.floats(-15, 15).filter(lambda x: abs(x) > 0.1), min_size=6, max_size=6),
    perp=st.floats(-1e6, 1e6),
    equity=st.floats(3, 30),
    mm_share=st.floats(0.0, 1.2),
    stress=st.one_of(st.none(), st.floats(0.01, 0.3)),
)
def test_one_pass_gives_what_the_separate_revaluations_give(sizes, perp, equity, mm_share, stress):
    positions = mixed_book(sizes, perp)
    grid = risk_grid(currency="BTC", span_price_range=0.25, span_vol_range=0.25, span_extreme_cover=0.35)
    mm = mm_share * equity

    def book():
        return Revaluation(positions, index=INDEX, equity_coin=equity, as_of=NOW)

    got = book().figures(grid, stress_move=stress, equity_usd=equity * INDEX, maintenance_margin_coin=mm)
    separate = book()
    results = separate.run(grid.scenarios)
    assert [r.scenario for r in got.scenarios] == list(grid.scenarios)
    assert [r.pnl_usd for r in got.scenarios] == pytest.approx(
        [r.pnl_usd for r in results], rel=1e-12, abs=1e-6
    )
    worst = min(results, key=lambda r: r.weighted_pnl_usd)
    assert got.worst.scenario == worst.scenario
    f, v = separate.grid_factors(ScenarioGrid.of([worst.scenario]))
    options, others = separate.contributions(f - 1.0, v - 1.0)
    shares = np.concatenate([options[0], others[0]]) * worst.scenario.weight
    assert list(got.worst_contributions.values()) == pytest.approx(shares.tolist(), rel=1e-12, abs=1e-6)
    if stress is None:
        assert got.stressed_leverage is None
    else:
        expected = separate.stressed_leverage(move=stress, equity_usd=equity * INDEX)
        assert got.stressed_leverage == pytest.approx(expected, rel=1e-12, abs=1e-12)
    expected_move = separate.liquidation_move(mm)
    assert (got.liquidation_move is None) is (expected_move is None)
    if expected_move is not None:
        assert got.liquidation_move == pytest.approx(expected_move, abs=1e-12)
