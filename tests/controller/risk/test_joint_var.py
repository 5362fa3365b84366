"""Joint historical scenarios on the same dates and the VaR of a book in two currencies."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

import pricing
from controller.risk.joint_var import (
    joint_daily_scenarios,
    joint_historical_var,
    joint_scenarios_from_closes,
    joint_var,
    linear_joint_pnl,
    linear_joint_var,
)
from controller.risk.scenarios import Revaluation
from controller.risk.var import DAY_S, DailyCloses, daily_scenarios, record_close
from tests.controller.snapshots import NOW, perp_position

D0 = 19_700  # an epoch day (2023-12-09)


def day_times(days, hour=20):
    return (np.asarray(days, dtype=float) + hour / 24) * DAY_S


def test_moves_come_from_the_same_dates_and_a_missing_day_removes_its_two_moves():
    btc_days = [D0, D0 + 1, D0 + 2, D0 + 3, D0 + 4, D0 + 5]
    eth_days = [D0, D0 + 1, D0 + 3, D0 + 4, D0 + 5]  # ETH misses D0 + 2
    btc = np.array([100.0, 110.0, 99.0, 99.0, 108.9, 98.01])
    eth = np.array([10.0, 9.0, 9.9, 10.89, 10.89])
    s = joint_daily_scenarios(
        times_s={"BTC": day_times(btc_days), "ETH": day_times(eth_days)}, index={"BTC": btc, "ETH": eth}
    )
    # common days D0, D0+1, D0+3, D0+4, D0+5; the pair (D0+1, D0+3) is not consecutive
    assert s.days == tuple(
        datetime.fromtimestamp(d * DAY_S, UTC).strftime("%Y-%m-%d") for d in (D0 + 1, D0 + 4, D0 + 5)
    )
    assert s.price_moves == pytest.approx(np.array([[0.10, -0.10], [0.10, 0.10], [-0.10, 0.0]]), rel=1e-12)
    assert s.vol_shifts.tolist() == [[0.0, 0.0]] * 3  # no implied vol given
    assert s.of("ETH").price_moves == pytest.approx([-0.10, 0.10, 0.0], rel=1e-12)


def test_a_close_is_the_days_last_observation_and_vol_shifts_are_per_asset_where_known():
    times = np.array([D0 * DAY_S + 3600, (D0 + 0.9) * DAY_S, (D0 + 1.2) * DAY_S, (D0 + 1.8) * DAY_S])
    s = joint_daily_scenarios(
        times_s={"BTC": times, "ETH": times},
        index={"BTC": np.array([50.0, 100.0, 70.0, 90.0]), "ETH": np.array([5.0, 4.0, 3.0, 5.0])},
        implied={"BTC": np.array([0.5, 0.5, 0.6, 0.55]), "ETH": np.array([np.nan, 0.8, 0.9, 1.0])},
    )
    assert s.price_moves == pytest.approx(np.array([[-0.10, 0.25]]))
    assert s.vol_shifts == pytest.approx(np.array([[0.10, 0.25]]))
    partly = joint_daily_scenarios(
        times_s={"BTC": times, "ETH": times},
        index={"BTC": np.array([50.0, 100.0, 70.0, 90.0]), "ETH": np.array([5.0, 4.0, 3.0, 5.0])},
        implied={"BTC": np.array([0.5, 0.5, 0.6, 0.55])},
    )
    assert partly.vol_shifts == pytest.approx(np.array([[0.10, 0.0]]))


def test_one_asset_gives_exactly_the_single_currency_scenarios():
    rng = np.random.default_rng(2)
    times = np.cumsum(rng.uniform(3600, 30_000, 600)) + D0 * DAY_S
    index = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.01, 600)))
    implied = rng.uniform(0.4, 0.9, 600)
    single = daily_scenarios(times, index, implied, window_days=50)
    joint = joint_daily_scenarios(
        times_s={"BTC": times}, index={"BTC": index}, implied={"BTC": implied}, window_days=50
    )
    assert joint.days == single.days and len(joint) == 50
    assert np.array_equal(joint.of("BTC").price_moves, single.price_moves)
    assert np.array_equal(joint.of("BTC").vol_shifts, single.vol_shifts)


def test_the_loops_daily_closes_give_the_same_scenarios_as_the_history():
    rng = np.random.default_rng(3)
    times = D0 * DAY_S + np.arange(0, 40 * 86400, 7200.0)
    paths = {
        a: p * np.exp(np.cumsum(rng.normal(0, 0.01, times.size))) for a, p in (("BTC", 60e3), ("ETH", 3e3))
    }
    histories = {}
    for a, path in paths.items():
        history = DailyCloses()
        for t, p in zip(times, path, strict=True):
            at = datetime.fromtimestamp(t, UTC)
            history = record_close(history, at=at, index=float(p), implied=0.6, window_days=30)
        histories[a] = history
    from_state = joint_scenarios_from_closes(closes=histories, window_days=30)
    today = times < (np.floor(times[-1] / DAY_S)) * DAY_S  # the history without the unfinished last day
    from_history = joint_daily_scenarios(
        times_s={a: times[today] for a in paths},
        index={a: p[today] for a, p in paths.items()},
        window_days=30,
    )
    assert from_state.days == from_history.days and len(from_state) == 30
    assert np.array_equal(from_state.price_moves, from_history.price_moves)


def perp(name, size_usd, mark, index):
    return dataclasses.replace(
        perp_position(size_usd, mark, index), name=name, instrument=pricing.parse_deribit_name(name)
    )


def test_joint_var_of_a_two_asset_perpetual_book_is_the_empirical_quantile_of_delta_r():
    """Coin collateral and an inverse perpetual in each currency: P&L = Δᵀm exactly, VaR = quantile(−Δᵀm)."""
    rng = np.random.default_rng(11)
    n = 400
    cov = np.array([[0.03**2, 0.8 * 0.03 * 0.04], [0.8 * 0.03 * 0.04, 0.04**2]])
    moves = np.exp(rng.multivariate_normal([0, 0], cov, n) * rng.standard_t(4, (n, 1)) / 1.4) - 1.0
    days = D0 + np.arange(n + 1)
    btc_path = 60_000 * np.concatenate([[1.0], np.cumprod(1 + moves[:, 0])])
    eth_path = 3_000 * np.concatenate([[1.0], np.cumprod(1 + moves[:, 1])])
    s = joint_daily_scenarios(
        times_s={"BTC": day_times(days), "ETH": day_times(days)},
        index={"BTC": btc_path, "ETH": eth_path},
        window_days=n,
    )
    btc_book = Revaluation(
        [perp("BTC-PERPETUAL", -450_000.0, 60_012.0, 60_000.0)], index=60_000.0, equity_coin=10.0, as_of=NOW
    )
    eth_book = Revaluation(
        [perp("ETH-PERPETUAL", 200_000.0, 2_999.0, 3_000.0)], index=3_000.0, equity_coin=50.0, as_of=NOW
    )
    delta = {
        "BTC": (10.0 - 450_000.0 / 60_012.0) * 60_000.0,
        "ETH": (50.0 + 200_000.0 / 2_999.0) * 3_000.0,
    }
    r = s.price_moves @ np.array([delta["BTC"], delta["ETH"]])
    for level in (0.95, 0.99, 0.975):
        full = joint_historical_var({"BTC": btc_book.pnl_usd, "ETH": eth_book.pnl_usd}, s, level=level)
        linear = linear_joint_var(s, delta_usd=delta, level=level)
        expected = np.quantile(-r, level)
        assert full.var_usd == pytest.approx(expected, rel=1e-9)
        assert linear.var_usd == pytest.approx(expected, rel=1e-9)
        assert full.es_usd == pytest.approx(np.mean(-r[-r >= expected]), rel=1e-9)
        assert full.scenarios == n
    assert linear_joint_pnl(s, delta_usd=delta) == pytest.approx(r, rel=1e-12)
    figures = linear_joint_var(s, delta_usd=delta, level=0.99)
    worst = int(np.argmin(r))
    assert figures.worst_days[0] == s.days[worst]
    at = figures.var_scenario
    assert -r[at] == pytest.approx(min(x for x in -r if x >= figures.var_usd - 1e-9))
    assert sum(figures.var_pnl_by_asset.values()) == pytest.approx(r[at])
    for i, a in enumerate(("BTC", "ETH")):
        alone = np.quantile(-delta[a] * s.price_moves[:, i], 0.99)
        assert figures.standalone_var_usd[a] == pytest.approx(alone, rel=1e-9)


def test_a_book_that_gains_everywhere_has_no_var_and_mismatches_are_refused():
    times = day_times(D0 + np.arange(4))
    s = joint_daily_scenarios(
        times_s={"BTC": times, "ETH": times},
        index={"BTC": np.array([1.0, 1.1, 1.2, 1.3]), "ETH": np.array([1.0, 1.1, 1.2, 1.3])},
    )
    assert linear_joint_var(s, delta_usd={"BTC": 1.0, "ETH": 1.0}, level=0.95).var_usd == 0.0
    with pytest.raises(ValueError, match="P&L for"):
        joint_var({"BTC": np.zeros(3)}, s)
    with pytest.raises(ValueError, match="one value per scenario"):
        joint_var({"BTC": np.zeros(3), "ETH": np.zeros(2)}, s)
    disjoint = joint_daily_scenarios(
        times_s={"BTC": day_times([D0, D0 + 1]), "ETH": day_times([D0 + 5, D0 + 6])},
        index={"BTC": np.array([1.0, 2.0]), "ETH": np.array([1.0, 2.0])},
    )
    assert len(disjoint) == 0 and disjoint.price_moves.shape == (0, 2)
    with pytest.raises(ValueError, match="at least one joint"):
        linear_joint_var(disjoint, delta_usd={"BTC": 1.0, "ETH": 1.0})
