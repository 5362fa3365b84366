"""The risk report: leverage definitions, σ̂ sources, data checks, and the real chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import pricing
from controller.risk.assess import AccountStateError, RiskSettings, RiskState, assess
from controller.risk.sigma import SigmaSettings
from controller.venues import AccountSnapshot, ExchangeGreeks, PositionSnapshot, Quote
from tests.controller.snapshots import NOW, option_position, snapshot


def run(snap, **settings):
    return assess(
        snap, RiskSettings(**{"sigma_sources": ("index",), **settings}), RiskState(), now=snap.taken_at
    )[0]


def test_collateral_alone_is_one_times_leverage():
    report = run(snapshot(equity_coin=10.0))
    assert report.leverage == pytest.approx(1.0) and report.signed_leverage == pytest.approx(1.0)
    assert report.gross_leverage == 0.0 and report.delta_coin == pytest.approx(10.0)


def test_a_short_perpetual_the_size_of_equity_is_flat():
    index = 80_000.0
    mark = index * 1.0002
    report = run(snapshot(equity_coin=10.0, index=index, perp_usd=-10.0 * mark, perp_mark=mark))
    assert report.leverage == pytest.approx(0.0, abs=1e-12)
    assert report.gross_leverage == pytest.approx(mark / index)
    assert report.leverage_stress == pytest.approx(0.0, abs=1e-9)


def test_iv_adjusted_leverage_and_stress_move():
    report = run(
        snapshot(equity_coin=10.0, perp_usd=800_000.0, vol_index=1.2), reference_vol=0.6, stress_k=2.0
    )
    assert report.sigma_hat == 1.2 and report.sigma_source == "index"
    assert report.leverage_iv == pytest.approx(report.leverage * 2.0)  # 2x at 120 % reads as 4x at 60 %
    assert report.stress_move == pytest.approx(2.0 * 1.2 * np.sqrt(1 / 365))
    assert report.leverage_stress == pytest.approx(report.leverage, rel=0.02)  # linear book


def test_sigma_sources_in_order_and_unavailable():
    snap = snapshot(vol_index=None)
    report = assess(
        snap,
        RiskSettings(sigma_sources=("chain", "index", "constant"), sigma_constant=0.45),
        RiskState(),
        now=NOW,
    )[0]
    assert report.sigma_source == "constant" and report.sigma_hat == 0.45
    missing = run(snap)
    assert missing.sigma_hat is None and missing.leverage_iv is None and missing.leverage_stress is None
    assert "σ̂ unavailable" in missing.problems[0]
    with pytest.raises(ValueError, match="sigma_constant"):
        RiskSettings(sigma_sources=("constant",))
    with pytest.raises(ValueError, match="sigma_sources"):
        RiskSettings(sigma_sources=("dvol",))


def test_sigma_is_smoothed_across_cycles():
    settings = RiskSettings(sigma_sources=("index",), sigma=SigmaSettings(ewma_half_life_s=3600))
    first, state = assess(snapshot(vol_index=0.5), settings, RiskState(), now=NOW)
    later = NOW + timedelta(hours=1)
    second, state = assess(snapshot(vol_index=0.7, now=later), settings, state, now=later)
    assert (first.sigma_hat, second.sigma_raw, second.sigma_hat) == pytest.approx((0.5, 0.7, 0.6))


def test_data_age_names_the_oldest_figure():
    report = run(snapshot(perp_usd=10_000.0, age_s=300))
    assert report.data_age_s == pytest.approx(300) and report.oldest_figure in (
        "index",
        "hedge ticker",
        "position BTC-PERPETUAL",
    )


def test_exchange_and_model_greeks_divergence_is_flagged():
    good = option_position("BTC-27MAR26-80000-C", -5.0, forward=80_100, vol=0.6, index=80_000)
    bad = option_position(
        "BTC-27MAR26-90000-C", -5.0, forward=80_100, vol=0.6, index=80_000, exchange_delta=+1.5
    )
    report = run(snapshot(options=(good, bad)))
    assert [c.name for c in report.greeks_divergence] == ["BTC-27MAR26-90000-C"]
    assert "exchange delta +1.5000" in report.greeks_divergence[0].describe()


def test_scenarios_and_liquidation_are_reported():
    report = run(snapshot(equity_coin=2.0, perp_usd=-1_000_000.0, maintenance_margin=0.2))
    assert len(report.scenarios) == 9 * 3 + 8 + 16  # PM standard and extended tables, SPAN
    assert report.worst_scenario.scenario.price_move == 5.0  # PM's +500 % hurts a short most
    assert report.worst_loss_usd < 0
    assert report.liquidation_move is not None and 0 < report.liquidation_move < 0.5
    assert report.margin_ratio == pytest.approx(0.1)


@pytest.mark.parametrize("equity", [0.0, -0.5])
def test_non_positive_equity_is_an_account_state_error(equity):
    with pytest.raises(AccountStateError, match="until equity is positive"):
        run(snapshot(equity_coin=equity))


def test_a_book_from_the_real_chain_sums_deribits_greeks(chain):
    """Aggregate delta, vega and theta of a book built from the chain equal the sums of Deribit's own."""
    as_of = datetime.fromtimestamp(chain.timestamp_ms.min() / 1000.0, UTC)
    beyond = np.flatnonzero(chain.t_years > 2 / 365)
    sizes = np.where(beyond % 4 == 0, -3.0, 1.0)
    positions = []
    for i, size in zip(beyond, sizes, strict=True):
        inst = pricing.parse_deribit_name(str(chain.name[i]))
        positions.append(
            PositionSnapshot(
                inst.name,
                inst,
                float(size),
                0.0,
                float(chain.mark_price_btc[i]),
                float(chain.index[i]),
                float(chain.forward[i]),
                float(chain.mark_iv[i]),
                ExchangeGreeks(delta=float(size * (chain.deribit["delta"][i] - chain.mark_price_btc[i]))),
                0.0,
                0.0,
                as_of,
            )
        )
    quotes = chain.chain_quotes(as_of)
    index = float(chain.index[0])
    hedge = Quote("BTC-PERPETUAL", index, index - 0.5, index + 0.5, index, None, None, as_of)
    snap = AccountSnapshot(
        "chain",
        "BTC",
        as_of,
        as_of,
        100.0,
        100.0,
        0.0,
        0.0,
        100.0,
        index,
        as_of,
        tuple(positions),
        hedge,
        tuple(quotes),
        0.0,
        as_of,
    )
    report = assess(snap, RiskSettings(sigma_sources=("chain",)), RiskState(), now=as_of)[0]
    # the positions are valued at one time (the earliest quote) while Deribit's greeks each have their own
    vega = float(np.sum(sizes * chain.deribit["vega"][beyond]))
    theta = float(np.sum(sizes * chain.deribit["theta"][beyond]))
    black_delta = float(np.sum(sizes * chain.deribit["delta"][beyond]))
    premium = float(np.sum(sizes * chain.mark_price_btc[beyond]))
    assert report.vega_usd == pytest.approx(vega, rel=2e-3)
    assert report.theta_usd == pytest.approx(theta, rel=2e-3)
    assert report.delta_coin - 100.0 == pytest.approx(black_delta - premium, abs=5e-4 * len(beyond))
    assert report.greeks_divergence == ()  # our model agrees with Deribit's per-position delta
    a, b = report.vol_estimate.bracket
    assert min(a.atm_vol, b.atm_vol) <= report.sigma_hat <= max(a.atm_vol, b.atm_vol)
