"""Funding, settlement, liquidation and portfolio margin, each against a hand-computed example of
Deribit's published formulas (the formulas and their sources are in each module's docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.sim import SimConfig, SimExchange
from controller.sim.funding import FundingParams, funding_over, funding_rate
from controller.sim.market import MarketState, ReplayData, ReplayPath, StochasticVolParams
from controller.sim.portfolio_margin import PMInstrument, margins, portfolio_margin, risk_vectors
from controller.sim.replies import position_json
from controller.sim.settlement import delivery_price, next_settlement_after
from pricing.portfolio_margin import PM_PARAMS

PERP = "BTC-PERPETUAL"
FLAT_FUNDING = StochasticVolParams(funding_vol=0.0, funding0=0.0, funding_mean=0.0)


# ------------------------------------------------------------------ funding
@pytest.mark.parametrize(
    ("premium", "rate"),
    [
        (0.0001, 0.0),  # inside the ±0.025 % dead band: no funding
        (-0.00025, 0.0),
        (0.0004, 0.00015),  # 0.04 % − 0.025 %
        (-0.0004, -0.00015),
        (0.004, 0.00375),
        (0.01, 0.005),  # capped at ±0.5 %
        (-0.02, -0.005),
    ],
)
def test_the_funding_rate_of_a_premium(premium, rate):
    assert funding_rate(premium, FundingParams()) == pytest.approx(rate, abs=1e-15)


@given(st.floats(-0.05, 0.05))
def test_the_funding_rate_is_the_premium_less_the_band_then_capped(premium):
    params = FundingParams()
    expected = math.copysign(min(max(abs(premium) - params.dead_band, 0.0), params.cap), premium)
    assert funding_rate(premium, params) == pytest.approx(expected, abs=1e-15)


@dataclass
class StepPath:
    """A market path with given premiums from given times (a step function)."""

    steps: list[tuple[datetime, float]]

    def state_at(self, t: datetime) -> MarketState:
        start, premium = max((s for s in self.steps if s[0] <= t), key=lambda s: s[0])
        return MarketState(time=start, index=60_000.0, atm_vol=0.5, perp_premium=premium)

    def next_change_after(self, t: datetime) -> datetime | None:
        later = [s[0] for s in self.steps if s[0] > t]
        return min(later) if later else None


def test_get_funding_rate_value_is_the_funding_accrued_over_the_window():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    path = StepPath([(t0, 0.0005), (t0 + timedelta(hours=4), 0.0001), (t0 + timedelta(hours=8), -0.001)])
    # 4 h at 0.025 %, 4 h inside the band, 16 h at −0.075 %: (0.00025·4 + 0 − 0.00075·16) / 8
    assert funding_over(path, t0, t0 + timedelta(hours=24), FundingParams()) == pytest.approx(-0.001375)
    # a window that starts mid-step counts only its part: 2 h of the first step
    assert funding_over(
        path, t0 + timedelta(hours=2), t0 + timedelta(hours=4), FundingParams()
    ) == pytest.approx(0.00025 * 2 / 8)


def _replay_path(premiums: list[float], step_s: list[int]) -> ReplayPath:
    times_ms = np.cumsum([1_700_000_000_000] + [s * 1000 for s in step_s[: len(premiums) - 1]]).astype(float)
    n = times_ms.size
    return ReplayPath(
        ReplayData(
            source="test",
            times_ms=times_ms,
            prices=np.full(n, 60_000.0),
            vol_index_pct=np.full(n, 50.0),
            funding_8h=np.asarray(premiums[:n], dtype=float),
            gaps=(),
        )
    )


@given(
    premiums=st.lists(st.floats(-0.01, 0.01), min_size=2, max_size=30),
    steps=st.lists(st.integers(60, 30 * 3600), min_size=29, max_size=29),
    window=st.tuples(st.integers(-10 * 3600, 200 * 3600), st.integers(0, 48 * 3600)),
)
def test_a_replayed_path_accrues_by_table_exactly_what_a_walk_over_its_rows_gives(premiums, steps, window):
    """Replays read the funding of a window from accrued sums; the walk over the rows is the reference
    (windows before, across, inside and after the rows; a step path like the replay's)."""
    path = _replay_path(premiums, steps)
    rows = [
        (datetime.fromtimestamp(t / 1000.0, UTC), p)
        for t, p in zip(path.data.times_ms, path.data.funding_8h, strict=True)
    ]
    walked = StepPath([(rows[0][0] - timedelta(days=30), rows[0][1]), *rows])  # before the first row: row 0
    start = rows[0][0] + timedelta(seconds=window[0])
    end = start + timedelta(seconds=window[1])
    params = FundingParams()
    assert funding_over(path, start, end, params) == pytest.approx(
        funding_over(walked, start, end, params), rel=1e-12, abs=1e-15
    )


# ------------------------------------------------------------------ settlement and delivery
def test_the_delivery_price_is_the_average_of_300_index_readings_over_the_last_30_minutes():
    expiry = datetime(2026, 3, 27, 8, tzinfo=UTC)
    start = expiry - timedelta(minutes=30)
    ramp = lambda t: 60_000.0 + (t - start).total_seconds()  # noqa: E731  (+1 USD a second)
    # readings at 07:30:00, 07:30:06 … 07:59:54: 60 000 + 6·(0 + 1 + … + 299) / 300
    assert delivery_price(ramp, expiry) == pytest.approx(60_000.0 + 6 * 149.5)


def test_the_daily_settlement_is_at_08_00_utc():
    assert next_settlement_after(datetime(2026, 1, 2, 7, 59, tzinfo=UTC)) == datetime(
        2026, 1, 2, 8, tzinfo=UTC
    )
    assert next_settlement_after(datetime(2026, 1, 2, 8, tzinfo=UTC)) == datetime(2026, 1, 3, 8, tzinfo=UTC)


def test_a_futures_session_is_settled_at_08_00_and_floating_pnl_counts_from_there():
    engine = SimExchange(SimConfig(seed=4, market=FLAT_FUNDING, start=datetime(2026, 1, 2, 9, tzinfo=UTC)))
    engine.place_order(name=PERP, direction="buy", amount=10_000, order_type="market", label="long")
    entry = engine.positions[PERP].average_price
    balance = engine.balance
    engine.advance_to(datetime(2026, 1, 3, 8, tzinfo=UTC))
    settled = engine.settlement_prices[PERP]
    # the session's P&L, entry to the 08:00 mark, moved to the cash balance (no funding: flat premium)
    assert engine.balance - balance == pytest.approx(10_000 * (1 / entry - 1 / settled), rel=1e-12)
    engine.advance(3 * 3600)
    (view,) = engine.position_views()
    mark = view.quote.mark_price
    reply = position_json(view, engine)
    assert reply["settlement_price"] == settled
    assert reply["floating_profit_loss"] == pytest.approx(10_000 * (1 / settled - 1 / mark), rel=1e-12)
    assert reply["total_profit_loss"] == pytest.approx(10_000 * (1 / entry - 1 / mark), rel=1e-12)


def test_a_dated_future_is_delivered_at_the_30_minute_average_of_the_index():
    engine = SimExchange(SimConfig(seed=8, market=FLAT_FUNDING))
    future = min((x for x in engine.instruments(kind="future") if x.expiry), key=lambda x: x.expiry)
    engine.place_order(name=future.name, direction="sell", amount=5_000, order_type="market", label="f")
    engine.advance_to(future.expiry - timedelta(seconds=1))
    session_price, balance = engine.positions[future.name].session_price, engine.balance
    engine.advance_to(future.expiry)
    # the path is constant over 5-minute steps: the 300 readings are 6 steps of 50 equal readings
    steps = [engine.path.state_at(future.expiry - timedelta(minutes=30 - 5 * k)).index for k in range(6)]
    delivery = sum(steps) / 6
    assert future.name not in engine.positions and future.name not in engine.listed
    assert engine.balance - balance == pytest.approx(-5_000 * (1 / session_price - 1 / delivery), rel=1e-9)
    assert engine.settlement_prices[future.name] == pytest.approx(delivery)


# ------------------------------------------------------------------ liquidation
def test_a_liquidation_pays_the_taker_fee_and_the_liquidation_fee_on_what_it_closes():
    engine = SimExchange(SimConfig(seed=2, initial_balance=1.0))
    engine.place_order(name=PERP, direction="sell", amount=2_000_000, order_type="market", label="short")
    fees_before = engine.fees_paid
    engine.shock(price_factor=1.035)
    closes = [o for o in engine.orders.values() if o.label == "liquidation"]
    assert closes and all(o.reduce_only and o.state == "filled" for o in closes)
    mark = engine.quote(PERP).mark_price
    closed = sum(o.filled for o in closes)
    taker = sum(t.fee for o in closes for t in o.trades)
    assert taker == pytest.approx(closed / mark * engine.listed[PERP].taker_fee, rel=1e-9)
    assert engine.fees_paid - fees_before == pytest.approx(taker + closed / mark * 0.0075, rel=1e-9)
    # incremental: had it closed one lot (10 USD) less, paying that lot's fees less, equity would
    # still have been below the maintenance margin of the larger position
    account = engine.account()
    assert account.equity >= account.maintenance_margin
    size = engine.positions[PERP].size
    assert -2_000_000 < size < 0
    lot_fees = 10.0 / mark * (engine.listed[PERP].taker_fee + 0.0075)
    assert account.equity + lot_fees < engine.maintenance_with(PERP, size - 10.0)


def test_a_bankrupt_account_is_set_to_zero_by_the_insurance_fund_and_says_so():
    engine = SimExchange(SimConfig(seed=2, initial_balance=1.0))
    engine.place_order(name=PERP, direction="sell", amount=2_000_000, order_type="market", label="short")
    engine.shock(price_factor=1.5)  # far past the bankruptcy price: nothing left to liquidate into
    kinds = [e.kind for e in engine.events]
    assert "liquidation" in kinds and "bankrupt" in kinds
    assert engine.bankrupt_at == engine.now
    ledger = engine.ledger()
    assert ledger["insurance"] > 0 and ledger["equity"] == pytest.approx(0.0, abs=1e-12)
    assert ledger["equity"] - ledger["start"] == pytest.approx(
        ledger["realised"] + ledger["unrealised"] + ledger["funding"] - ledger["fees"] + ledger["insurance"],
        abs=1e-12,
    )


# ------------------------------------------------------------------ portfolio margin
def test_portfolio_margin_reproduces_deribits_published_pme_simulate_example():
    """private/pme/simulate, Deribit's documented example (BTC, 2024-06-17): a long perpetual of
    0.314538364 BTC and a short BTC-28JUN24 of 0.001187534 BTC (sizes in coin), marks 65 910.57 and
    67 371.75, index 65 666.19.  Published: worst case 0.05968587238095239 (bucket 1, left),
    roll shock 0.00315725898, risk matrix margin 0.06284313098, maintenance 0.050274504784, the
    perpetual's −16 % P&L −0.05991206933333334, every aggregated gain 0 (pnl_offset 0)."""
    params = PM_PARAMS["BTC"]
    marks = {"BTC-PERPETUAL": 65_910.57, "BTC-28JUN24": 67_371.75}
    coins = {"BTC-PERPETUAL": 0.314538364, "BTC-28JUN24": -0.001187534}
    vectors = risk_vectors([PMInstrument(n, mark=m) for n, m in marks.items()], params)
    sizes_usd = np.array([coins[n] * marks[n] for n in vectors.names])
    pm = portfolio_margin(vectors, sizes_usd, params, index=65_666.19)
    # by hand: an inverse future of n coin loses n·(1 − 1/(1 − 0.16)) at −16 %
    assert coins["BTC-PERPETUAL"] * (1 - 1 / 0.84) == pytest.approx(-0.05991206933333334, rel=1e-12)
    assert (sizes_usd[0] * vectors.standard[0, 0]) == pytest.approx(-0.05991206933333334, rel=1e-12)
    assert pm.worst_case == pytest.approx(0.05968587238095239, rel=1e-12)
    assert pm.roll_shock == pytest.approx(0.00315725898, rel=1e-12)
    assert pm.risk_matrix_margin == pytest.approx(0.06284313098, rel=1e-12)
    initial, maintenance = margins(pm, params)
    assert maintenance == pytest.approx(0.050274504784, rel=1e-12)
    assert initial == pm.risk_matrix_margin  # the published 0.1229 adds mmp_margin and open orders
    assert np.all(pm.standard[12:] == 0.0) and np.all(pm.extended == 0.0)
    assert pm.standard[0] == pytest.approx(-0.05968587238095239, rel=1e-12)


def test_portfolio_margin_shocks_volatility_up_more_for_short_tenors():
    params = PM_PARAMS["BTC"]
    from controller.sim.portfolio_margin import vol_shocks

    week_up, _, week_down = vol_shocks(0.6, 7 / 365, params)
    quarter_up, _, quarter_down = vol_shocks(0.6, 90 / 365, params)
    # up: σ·(1 + 0.5·(30/d)^p), p = 0.3 below 30 days, 0.13 from 30 days; down with 0.25
    assert week_up == pytest.approx(0.6 * (1 + 0.5 * (30 / 7) ** 0.3))
    assert quarter_down == pytest.approx(0.6 * (1 - 0.25 * (30 / 90) ** 0.13))
    assert week_up > quarter_up and week_down < quarter_down
    assert vol_shocks(0.2, 90 / 365, params)[0] == params.min_volatility_for_shock_up  # the floor


def test_a_portfolio_margined_account_charges_a_calendar_spread_its_roll_shock():
    def account_of(model: str) -> tuple[SimExchange, float]:
        engine = SimExchange(SimConfig(seed=6, initial_balance=20.0, margin_model=model))
        future = min((x for x in engine.instruments(kind="future") if x.expiry), key=lambda x: x.expiry)
        engine.place_order(name=PERP, direction="buy", amount=500_000, order_type="market", label="a")
        engine.place_order(name=future.name, direction="sell", amount=500_000, order_type="market", label="b")
        return engine, engine.account().maintenance_margin

    _, standard = account_of("standard")
    engine, portfolio = account_of("portfolio")
    coins = [v.book.size / v.quote.mark_price for v in engine.position_views()]  # signed, in coin
    roll = 0.01 * sum(abs(c) for c in coins)  # min_annualised_move × Σ |size in coin|
    # by hand: each leg of n coin makes n·(1 − 1/(1 + m)) for a move m of −16 % … +16 %; gains count 0
    # (pnl_offset), and the legs nearly offset: what is left is the basis (the legs' coin sizes differ)
    pnl = [sum(c * (1 - 1 / (1 + m)) for c in coins) for m in np.linspace(-0.16, 0.16, 9)]
    worst = max(0.0, -min(pnl))
    assert 0 < worst < roll
    assert portfolio == pytest.approx(0.8 * (round(worst, 9) + roll), rel=1e-9)
    assert portfolio < standard


def test_portfolio_margin_is_an_account_setting_of_the_configuration():
    from controller.config import build_config
    from controller.sim.deribit_api import DeribitApi
    from controller.venues.sim import engine_config

    config = build_config({"venue": {"sim": {"margin_model": "portfolio"}}})
    engine = SimExchange(engine_config(config.sim_settings()))
    summary = DeribitApi(engine).call("private/get_account_summary", {"currency": "BTC"})
    assert summary["margin_model"] == "segregated_pm" and summary["portfolio_margining_enabled"] is True
    default = SimExchange(engine_config(build_config({}).sim_settings()))
    assert DeribitApi(default).call("private/get_account_summary", {"currency": "BTC"})["margin_model"] == (
        "segregated_sm"
    )
