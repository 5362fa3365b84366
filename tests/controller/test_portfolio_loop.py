"""A book in two currencies held to one volatility target: hand-computed shares, frozen currencies,
and the whole loop on the two-currency simulator (each currency its own wallet and perpetual)."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from controller.app import RunOptions, build_controller
from controller.config import build_config
from controller.loop import Observed
from controller.loop.portfolio import PortfolioController, portfolio_shares
from controller.risk import RiskSettings, RiskState, assess
from controller.risk.correlation import CorrelationEstimate
from controller.risk.policy import PolicySettings, target_leverage
from tests.controller.snapshots import NOW, snapshot

RISK = RiskSettings(sigma_sources=("index",), reference_vol=0.6)
POLICY = PolicySettings()  # L_base 1, so the target is σ_book / E = σ_ref = 60 %
HEDGES = {"BTC": "BTC-PERPETUAL", "ETH": "ETH-PERPETUAL"}


def _observed(currency: str, *, equity_coin: float, index: float, vol: float, age_s: float = 0.0) -> Observed:
    snap = dataclasses.replace(
        snapshot(equity_coin=equity_coin, index=index, vol_index=vol, age_s=age_s), currency=currency
    )
    report, state = assess(snap, RISK, RiskState(), now=NOW)
    return Observed(snap, report, state)


def _book(*, btc_vol: float = 0.6, eth_vol: float = 0.8, eth_age_s: float = 0.0) -> dict[str, Observed]:
    """10 BTC at 80,000 (Δ 800,000 USD) and 100 ETH at 4,000 (Δ 400,000 USD), unhedged: E = 1.2 M."""
    return {
        "BTC": _observed("BTC", equity_coin=10.0, index=80_000.0, vol=btc_vol),
        "ETH": _observed("ETH", equity_coin=100.0, index=4_000.0, vol=eth_vol, age_s=eth_age_s),
    }


def _estimate(rho: float) -> CorrelationEstimate:
    return CorrelationEstimate(("BTC", "ETH"), np.array([[1.0, rho], [rho, 1.0]]), None, None)


def _shares(observed, rho, frozen=None):
    return portfolio_shares(
        observed,
        hedges=HEDGES,
        frozen=frozen or {},
        estimate=_estimate(rho),
        policy=POLICY,
        reference_vol=0.6,
        split="proportional",
    )


@pytest.mark.parametrize(
    "rho, book_vol, leverage",
    [
        # σ_book = sqrt(480,000² + 320,000²) = 576,888; k = 720,000 / 576,888 = 1.24808
        (0.0, math.hypot(480_000.0, 320_000.0), 720_000.0 / math.hypot(480_000.0, 320_000.0)),
        # σ_book = 480,000 + 320,000 = 800,000: k = 0.9
        (1.0, 800_000.0, 0.9),
    ],
)
def test_uncorrelated_and_perfectly_correlated_books_by_hand(rho, book_vol, leverage):
    shares = _shares(_book(), rho)
    row = shares["BTC"].row
    assert row["book_vol_usd"] == pytest.approx(book_vol, rel=1e-12)
    assert row["correlation"] == {"BTC/ETH": rho}
    assert row["portfolio_equity_usd"] == pytest.approx(1_200_000.0)
    assert row["portfolio_leverage"] == pytest.approx(1.0)
    assert row["risk_leverage"] == pytest.approx(book_vol / (1_200_000.0 * 0.6))
    # proportional split: every currency's Δ scaled by k, i.e. k × its own equity (Δ = equity here)
    for currency in ("BTC", "ETH"):
        assert shares[currency].target_leverage == pytest.approx(leverage, rel=1e-9)
    goals = row["portfolio"]["goals"]
    assert goals["BTC"]["goal_delta_usd"] == pytest.approx(800_000.0 * leverage, rel=1e-9)
    assert goals["ETH"]["hedge_change_usd"] == pytest.approx(400_000.0 * (leverage - 1.0), rel=1e-9)


def test_with_rho_one_and_equal_vols_the_portfolio_target_is_the_single_currency_one():
    for vol in (0.3, 0.6, 1.2):
        shares = _shares(_book(btc_vol=vol, eth_vol=vol), 1.0)
        single = target_leverage(sigma_hat=vol, reference_vol=0.6, settings=POLICY)
        assert shares["BTC"].target_leverage == pytest.approx(single, rel=1e-12)
        assert shares["ETH"].target_leverage == pytest.approx(single, rel=1e-12)


def test_a_frozen_currency_keeps_its_hedge_and_the_other_absorbs_the_scaling():
    shares = _shares(_book(), 0.0, frozen={"ETH": "data 600 s old"})
    assert shares["ETH"].target_leverage is None  # its own policy holds on its stale data
    # ETH's 400,000 at 80 % stays: BTC's σ part is sqrt(720,000² − 320,000²) = 644,981 → Δ 1,074,968
    btc_goal = math.sqrt(720_000.0**2 - 320_000.0**2) / 0.6
    assert shares["BTC"].target_leverage == pytest.approx(btc_goal / 800_000.0, rel=1e-9)
    goals = shares["BTC"].row["portfolio"]["goals"]
    assert goals["ETH"]["hedge_change_usd"] == 0.0 and goals["ETH"]["frozen"] == "data 600 s old"


def test_before_the_correlation_is_known_every_pair_counts_as_one():
    unknown = CorrelationEstimate(("BTC", "ETH"), None, None, "2 returns, need 2.0 days")
    shares = portfolio_shares(
        _book(),
        hedges=HEDGES,
        frozen={},
        estimate=unknown,
        policy=POLICY,
        reference_vol=0.6,
        split="proportional",
    )
    assert shares["BTC"].row["book_vol_usd"] == pytest.approx(800_000.0)
    assert any("ρ = 1 assumed" in r for r in shares["BTC"].row["portfolio"]["reasons"])


# ------------------------------------------------------------------ the loop on the two-currency simulator
def _portfolio(tmp_path: Path) -> PortfolioController:
    config = build_config(
        {
            "run": {"mode": "paper", "interval_s": 0.0, "db": str(tmp_path / "p.db")},
            "venue": {"currencies": ["BTC", "ETH"], "sim": {"step_s": 3600}},
            "portfolio": {"correlation_min_history_days": 0.5},
        }
    )
    controller = build_controller(config, RunOptions(), env={})
    assert isinstance(controller, PortfolioController)
    return controller


class _StaleVenue:
    """The venue as it is, but every figure it reports 10 minutes old (a feed that stopped)."""

    def __init__(self, venue):
        self._venue = venue

    def __getattr__(self, name):
        return getattr(self._venue, name)

    def snapshot(self):
        snap = self._venue.snapshot()
        old = snap.server_time - timedelta(minutes=10)
        return dataclasses.replace(
            snap,
            index_observed_at=old,
            hedge=dataclasses.replace(snap.hedge, observed_at=old),
            positions=tuple(dataclasses.replace(p, observed_at=old) for p in snap.positions),
        )


def test_a_stale_currency_freezes_only_its_own_hedging(tmp_path):
    controller = _portfolio(tmp_path)
    controller.start()
    try:
        for _ in range(24):
            controller.cycle()
        btc, eth = controller.legs["BTC"], controller.legs["ETH"]
        btc.venue = _StaleVenue(btc.venue)
        for leg in (btc, eth):
            leg.venue.engine.shock(price_factor=0.88)  # realised σ̂ jumps: far outside any band
        n = controller.cycles_done + 1
        results = controller.cycle()
    finally:
        controller.finish("finished", "test")
        controller.close()
    btc_result, eth_result = results
    assert btc_result.decision.action.value == "HOLD" and "old" in btc_result.decision.reason
    assert eth_result.decision.action.value in ("REBALANCE", "REDUCE") and eth_result.decision.orders
    import sqlite3

    db = sqlite3.connect(tmp_path / "p.db")
    rows = dict(db.execute("select currency, portfolio from cycles where n = ?", [n]).fetchall())
    assert set(rows) == {"BTC", "ETH"}
    goals = json.loads(rows["ETH"])["goals"]
    assert goals["BTC"]["frozen"].startswith("data") and goals["BTC"]["hedge_change_usd"] == 0.0
    sent = db.execute(
        "select o.currency, o.instrument from orders o join cycles c on o.cycle_id = c.id where c.n = ?", [n]
    )
    assert {r[0] for r in sent.fetchall()} == {"ETH"}
    tagged = db.execute("select count(*) from positions where currency is null or currency = ''").fetchone()[
        0
    ]
    assert tagged == 0


class _BrokenVenue(_StaleVenue):
    """The venue as it is, but its snapshot fails (a reply that cannot be read)."""

    def snapshot(self):
        from controller.venues.errors import MalformedReplyError

        raise MalformedReplyError("exchange reply: BTC-PERPETUAL.size is not a number ('NaN')")


def test_a_currency_whose_snapshot_fails_writes_its_own_error_row(tmp_path):
    controller = _portfolio(tmp_path)
    controller.start()
    try:
        controller.cycle()
        controller.legs["BTC"].venue = _BrokenVenue(controller.legs["BTC"].venue)
        n = controller.cycles_done + 1
        controller.cycle()
    finally:
        controller.finish("finished", "test")
        controller.close()
    import sqlite3

    db = sqlite3.connect(tmp_path / "p.db")
    rows = db.execute("select currency, action from cycles where n = ? order by currency", [n]).fetchall()
    assert rows[0] == ("BTC", "ERROR") and rows[1][0] == "ETH" and rows[1][1] != "ERROR"


def test_two_currencies_share_one_run_and_each_cycle_records_the_portfolio(tmp_path):
    controller = _portfolio(tmp_path)
    controller.start()
    try:
        for _ in range(36):
            controller.cycle()
    finally:
        controller.finish("finished", "test")
        controller.close()
    import sqlite3

    db = sqlite3.connect(tmp_path / "p.db")
    assert db.execute("select count(*) from runs").fetchone()[0] == 1
    rows = db.execute(
        "select n, currency, book_vol_usd, correlation, portfolio_equity_usd, equity_usd, delta_usd, sigma_hat "
        "from cycles order by n, currency"
    ).fetchall()
    assert [r[1] for r in rows[:2]] == ["BTC", "ETH"] and len(rows) == 72
    for btc, eth in zip(rows[::2], rows[1::2], strict=True):
        assert btc[0] == eth[0] and btc[2] == eth[2] and btc[3] == eth[3]  # one portfolio per cycle
        assert btc[4] == pytest.approx(btc[5] + eth[5])  # E = Σ equity
        rho = json.loads(btc[3])["BTC/ETH"]
        by_hand = math.sqrt(
            (btc[6] * btc[7]) ** 2 + (eth[6] * eth[7]) ** 2 + 2 * rho * btc[6] * btc[7] * eth[6] * eth[7]
        )
        assert btc[2] == pytest.approx(by_hand, rel=1e-9)
    assert 0.3 < json.loads(rows[-1][3])["BTC/ETH"] < 1.0  # estimated from the correlated markets
    from click.testing import CliRunner

    from controller.cli import cli

    shown = CliRunner().invoke(cli, ["log", "--db", str(tmp_path / "p.db"), "--limit", "4"])
    assert shown.exit_code == 0 and "risk leverage" in shown.output
    assert shown.output.count("│ BTC │") == 2 and shown.output.count("│ ETH │") == 2


# ------------------------------------------------------------------ the whole book's VaR, stresses, cascade
def _with_history(observed: Observed, closes: np.ndarray) -> Observed:
    from controller.risk.var import DailyCloses, record_close

    history = DailyCloses()
    for day, close in enumerate(closes):
        at = NOW - timedelta(days=len(closes) - day)
        history = record_close(history, at=at, index=float(close), implied=None, window_days=365)
    return observed._replace(risk_state=RiskState(observed.risk_state.sigma, history))


def test_the_books_joint_var_is_the_quantile_of_delta_times_the_same_days_moves():
    from controller.loop.portfolio_risk import BookStressSettings, book_stress
    from controller.risk.var import var_es

    rng = np.random.default_rng(17)
    btc = 80_000.0 * np.exp(np.cumsum(rng.normal(0, 0.04, 120)))
    eth = 4_000.0 * np.exp(
        np.cumsum(0.8 * np.log(btc / np.roll(btc, 1)).clip(-1, 1) + rng.normal(0, 0.02, 120))
    )
    observed = {"BTC": _with_history(_book()["BTC"], btc), "ETH": _with_history(_book()["ETH"], eth)}
    stress = book_stress(observed, sigma={"BTC": 0.6, "ETH": 0.8}, risk=RISK, settings=BookStressSettings())
    moves = np.column_stack([btc[1:-1] / btc[:-2] - 1.0, eth[1:-1] / eth[:-2] - 1.0])  # completed days
    by_hand = var_es(moves @ np.array([800_000.0, 400_000.0]), level=RISK.var_level)
    assert stress.row["portfolio_var_usd"] == pytest.approx(by_hand[0], rel=1e-9)
    assert stress.row["portfolio_es_usd"] == pytest.approx(by_hand[1], rel=1e-9)
    assert stress.row["var"]["scenarios"] == moves.shape[0]


@pytest.mark.parametrize("maintenance_btc", [0.0, 2.0, 6.0])
def test_the_cascade_lies_at_the_books_liquidation_move_and_its_loss_grows_with_the_amplification(
    maintenance_btc,
):
    from controller.loop.portfolio_risk import BookStressSettings, book_stress

    book = _book()
    book["BTC"] = _observed_with_margin(maintenance_btc)
    losses = []
    for amplification in (0.0, 0.5, 1.0):
        settings = BookStressSettings(cascade_amplification=amplification, min_cascade_distance=0.5)
        stress = book_stress(book, sigma={"BTC": 0.6, "ETH": 0.8}, risk=RISK, settings=settings)
        # unhedged coin collateral: equity moves as Σ Δ·m = 1.2 M · m, down to the maintenance margin
        m_liq = -(1_200_000.0 - maintenance_btc * 80_000.0) / 1_200_000.0
        if m_liq < -0.95:  # beyond the searched range: no cascade figure
            assert stress.row["cascade_distance"] is None and stress.reducing == ()
            return
        assert stress.row["cascade_distance"] == pytest.approx(abs(m_liq), abs=1e-9)
        liquidation_loss = -1_200_000.0 * m_liq
        assert stress.row["cascade_loss_usd"] >= liquidation_loss * (1 - 1e-12)
        losses.append(stress.row["cascade_loss_usd"])
        assert bool(stress.reducing) == (abs(m_liq) < 0.5)  # guarded: nearer than 50 % → REDUCING
    assert losses == sorted(losses)


def _observed_with_margin(maintenance_btc: float) -> Observed:
    snap = snapshot(equity_coin=10.0, index=80_000.0, vol_index=0.6, maintenance_margin=maintenance_btc)
    report, state = assess(snap, RISK, RiskState(), now=NOW)
    return Observed(snap, report, state)


def test_a_breached_book_guard_puts_every_currency_in_reducing():
    from controller.loop.portfolio import with_book_stress
    from controller.loop.portfolio_risk import BookStressSettings
    from controller.risk.advice import AdviceLimits
    from controller.risk.policy import GuardSettings, PolicyState, decide
    from tests.controller.snapshots import perp_spec

    book = _book()
    book["BTC"] = _observed_with_margin(6.0)  # the book liquidates on a common fall of 60 %
    config = build_config({"risk": {"sigma_sources": ["index"], "sigma_estimator": "implied"}})
    shares = with_book_stress(_shares(book, 0.8), book, config, BookStressSettings(min_cascade_distance=0.7))
    assert all(share.reducing for share in shares.values())
    decision, _ = decide(
        book["BTC"].report, book["BTC"].snapshot, perp_spec(), POLICY, GuardSettings(), AdviceLimits(),
        PolicyState(), now=NOW, portfolio_target=shares["BTC"].target_leverage,
        portfolio_reducing=shares["BTC"].reducing,
    )  # fmt: skip
    assert decision.state.value == "REDUCING" and "cascade" in decision.reason
    from controller.review.notify import BOOK_GUARD_WORDS

    assert any(w in decision.reason for w in BOOK_GUARD_WORDS)  # the notifier knows the guard's words


def test_a_restart_resumes_the_correlation_where_the_log_left_it(tmp_path):
    first = _portfolio(tmp_path)
    first.start()
    try:
        for _ in range(30):
            first.cycle()
    finally:
        first.finish("finished", "test")
        first.close()
    saved = first.correlation_state
    assert saved.returns == 29
    again = _portfolio(tmp_path)
    again.start()
    try:
        assert again.correlation_state == saved  # exactly: the JSON round trip keeps every float
    finally:
        again.finish("finished", "test")
        again.close()
    fresh = build_controller(
        build_config(
            {
                "run": {"mode": "paper", "interval_s": 0.0, "db": str(tmp_path / "p.db")},
                "venue": {"currencies": ["BTC", "ETH"]},
            }
        ),
        RunOptions(fresh_state=True),
        env={},
    )
    assert isinstance(fresh, PortfolioController)
    fresh.start()
    try:
        assert fresh.correlation_state.returns == 0  # --fresh-state starts cold
    finally:
        fresh.finish("finished", "test")
        fresh.close()


def test_the_joint_grid_puts_every_currency_in_its_own_ith_scenario_at_once():
    from controller.loop.portfolio_risk import joint_grid
    from controller.risk.scenarios import Scenario, ScenarioResult

    def results(labels, pnl):
        weights = (1.0, 1.0, 0.35)  # SPAN's extreme move counts at its cover fraction
        return [
            ScenarioResult(Scenario(x, 0.0, 0.0, w), p) for x, w, p in zip(labels, weights, pnl, strict=True)
        ]

    btc = results(("PM -16% vol up", "PM +16% vol up", "extreme down"), (-100.0, 50.0, -1_000.0))
    eth = results(("PM -18% vol up", "PM +18% vol up", "extreme down"), (-200.0, -300.0, 500.0))
    grid = joint_grid({"BTC": btc, "ETH": eth})
    # the book: −300, −250, −500 × 0.35 = −175 weighted: the first is the worst
    assert grid == {
        "worst_usd": -300.0,
        "scenarios": 3,
        "worst": {
            "BTC": {"label": "PM -16% vol up", "pnl_usd": -100.0},
            "ETH": {"label": "PM -18% vol up", "pnl_usd": -200.0},
        },
    }
    assert joint_grid({"BTC": btc, "ETH": eth[:2]}) is None  # grids of different shapes are not joined
    gains = results(("a", "b", "c"), (1.0, 2.0, 3.0))
    assert joint_grid({"BTC": gains, "ETH": gains})["worst_usd"] == 0.0  # a loss, never a gain

    stress = book_stress_of_two()
    assert stress.row["portfolio_worst_scenario_usd"] <= 0.0 and stress.row["grid"]["scenarios"] > 30


def book_stress_of_two():
    from controller.loop.portfolio_risk import BookStressSettings, book_stress

    return book_stress(_book(), sigma={"BTC": 0.6, "ETH": 0.8}, risk=RISK, settings=BookStressSettings())
