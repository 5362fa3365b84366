"""Named stresses: correlation to 1, ETH moving 1.5× BTC, and the liquidation cascade."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.risk.scenarios import Revaluation
from controller.risk.stress import (
    cascade,
    common_liquidation_move,
    correlation_one,
    joint_pnl,
    linear_revalue,
    relative_move,
)
from tests.controller.snapshots import NOW, option_position, perp_position

BTC, ETH = 60_000.0, 3_000.0


def test_correlation_one_by_hand():
    """Long 1 M BTC, short 0.5 M ETH: with ρ = 1 the risk is the spread |0.6 − 0.4| M; a 3σ day moves
    BTC 3·0.6/√365 and ETH 3·0.8/√365 the same way, and the long side loses when both fall."""
    result = correlation_one(
        delta_usd={"BTC": 1e6, "ETH": -5e5}, sigma={"BTC": 0.6, "ETH": 0.8}, k=3.0, horizon_days=1.0
    )
    day = 3.0 / math.sqrt(365.0)
    assert result.book_vol_usd == pytest.approx(0.2e6, rel=1e-12)
    assert result.worst.moves == pytest.approx({"BTC": -0.6 * day, "ETH": -0.8 * day}, rel=1e-12)
    assert result.worst.loss_usd == pytest.approx(day * 0.2e6, rel=1e-12)
    short = correlation_one(
        delta_usd={"BTC": -1e6, "ETH": 2e5}, sigma={"BTC": 0.6, "ETH": 0.8}, k=2.0, horizon_days=4.0
    )
    assert short.worst.moves["BTC"] > 0 and short.worst.loss_usd == pytest.approx(
        2.0 * math.sqrt(4 / 365) * 0.44e6, rel=1e-12
    )


def test_correlation_one_with_full_revaluation_takes_the_side_that_hurts_an_option_book():
    """Short BTC puts: the down move with vols up loses more than the up move."""
    puts = Revaluation(
        [option_position("BTC-27MAR26-55000-P", -20.0, forward=BTC, vol=0.6, index=BTC)],
        index=BTC,
        equity_coin=5.0,
        as_of=NOW,
    )
    eth = linear_revalue(3e5)
    revalue = {"BTC": puts.pnl_usd, "ETH": eth}
    result = correlation_one(
        delta_usd={"BTC": 1.0, "ETH": 3e5},
        sigma={"BTC": 0.6, "ETH": 0.8},
        k=3.0,
        horizon_days=1.0,
        revalue=revalue,
        vol_shift=0.3,
    )
    day = 3.0 / math.sqrt(365.0)
    down = puts.pnl_usd([-0.6 * day], [0.3])[0] + 3e5 * -0.8 * day
    up = puts.pnl_usd([0.6 * day], [0.3])[0] + 3e5 * 0.8 * day
    assert result.worst.pnl_usd == pytest.approx(min(down, up), rel=1e-12)
    assert result.worst.moves["BTC"] < 0


def test_eth_moving_one_and_a_half_times_btc_by_hand():
    """Long 1 M BTC, short 1 M ETH: BTC +10 % with ETH +15 % loses 50 k; the other side gains 50 k."""
    revalue = {"BTC": linear_revalue(1e6), "ETH": linear_revalue(-1e6)}
    result = relative_move(lead="BTC", lead_move=0.10, betas={"ETH": 1.5}, revalue=revalue)
    assert result.moves == pytest.approx({"BTC": 0.10, "ETH": 0.15})
    assert result.pnl_usd == pytest.approx(-5e4) and result.loss_usd == pytest.approx(5e4)
    assert result.label == "BTC +10%, ETH 1.5×"
    long_both = relative_move(
        lead="BTC",
        lead_move=-0.2,
        betas={"ETH": 1.5},
        revalue={"BTC": linear_revalue(1e6), "ETH": linear_revalue(1e6)},
    )
    assert long_both.moves == pytest.approx(
        {"BTC": -0.2, "ETH": -0.3}
    ) and long_both.loss_usd == pytest.approx(5e5)
    with pytest.raises(ValueError, match="above -100 %"):
        relative_move(lead="BTC", lead_move=0.7, betas={"ETH": 1.5}, revalue=revalue)


def test_the_cascade_of_a_linear_book_by_hand():
    """Equity 1 M, Δ 3 M in total: the account is gone at −⅓; +50 % amplification is −½, a 1.5 M loss."""
    revalue = {"BTC": linear_revalue(2e6), "ETH": linear_revalue(1e6)}
    m_liq = common_liquidation_move(revalue=revalue, equity_usd=1e6, maintenance_usd=0.0)
    assert m_liq == pytest.approx(-1 / 3, abs=1e-7)
    with_margin = common_liquidation_move(revalue=revalue, equity_usd=1e6, maintenance_usd=1e5)
    assert with_margin == pytest.approx(-0.3, abs=1e-7)  # equity 1 M − 3 M·0.3 = 0.1 M
    result = cascade(liquidation_move=-1 / 3, amplification=0.5, vol_shift=0.5, revalue=revalue)
    assert result.cascade_move == pytest.approx(-0.5)
    assert result.liquidation_loss_usd == pytest.approx(1e6)
    assert result.loss_usd == pytest.approx(1.5e6) and result.cascade_pnl_usd == pytest.approx(-1.5e6)
    assert result.distance == pytest.approx(1 / 3) and result.reason is None
    capped = cascade(liquidation_move=-0.6, amplification=1.0, vol_shift=0.0, revalue=revalue)
    assert capped.cascade_move == -0.99  # kept inside the search's range, never below −100 %


def test_no_liquidation_in_range_gives_no_cascade_and_says_why():
    revalue = {"BTC": linear_revalue(1e5), "ETH": linear_revalue(-1e5)}  # a spread: common moves do nothing
    assert common_liquidation_move(revalue=revalue, equity_usd=1e6, maintenance_usd=0.0) is None
    result = cascade(liquidation_move=None, amplification=0.5, vol_shift=0.5, revalue=revalue)
    assert result.loss_usd is None and result.cascade_move is None and result.distance is None
    assert result.reason == "no common move in [-99%, +900%] liquidates the account"
    at_margin = common_liquidation_move(revalue=revalue, equity_usd=1e5, maintenance_usd=2e5)
    assert at_margin == 0.0
    already = cascade(liquidation_move=0.0, amplification=0.5, vol_shift=0.5, revalue=revalue)
    assert already.distance == 0.0 and already.reason == "equity already at or below the maintenance margin"


def test_one_currency_liquidation_matches_the_single_currency_search():
    """With no maintenance margin, equity in USD and in coin reach zero at the same move."""
    book = Revaluation(
        [
            option_position("BTC-27MAR26-50000-P", -40.0, forward=BTC, vol=0.7, index=BTC),
            perp_position(200_000.0, BTC * 1.0003, BTC),
        ],
        index=BTC,
        equity_coin=8.0,
        as_of=NOW,
    )
    equity_usd = 8.0 * BTC
    joint = common_liquidation_move(revalue={"BTC": book.pnl_usd}, equity_usd=equity_usd, maintenance_usd=0.0)
    assert joint == pytest.approx(book.liquidation_move(0.0), abs=1e-6)


def test_a_long_put_book_reports_at_least_the_liquidation_loss():
    """10 BTC of collateral, 2 M of ETH and 200 long 45 000 puts on 150 k of equity: the book loses
    down to about −20 % and gains beyond −30 % where the puts pay, so the cascade point alone loses
    less than the liquidation; the figure keeps the liquidation's loss."""
    book = Revaluation(
        [option_position("BTC-27MAR26-45000-P", 200.0, forward=BTC, vol=0.6, index=BTC)],
        index=BTC,
        equity_coin=10.0,
        as_of=NOW,
    )
    revalue = {"BTC": book.pnl_usd, "ETH": linear_revalue(2e6)}
    m_liq = common_liquidation_move(revalue=revalue, equity_usd=150_000.0, maintenance_usd=0.0)
    result = cascade(liquidation_move=m_liq, amplification=2.0, vol_shift=0.5, revalue=revalue)
    assert m_liq is not None and -0.2 < m_liq < 0
    assert result.liquidation_loss_usd == pytest.approx(150_000.0, rel=1e-6)
    assert result.cascade_pnl_usd > -result.liquidation_loss_usd
    assert result.loss_usd == result.liquidation_loss_usd


def test_joint_pnl_adds_the_currencies():
    revalue = {"BTC": linear_revalue(2.0), "ETH": linear_revalue(-3.0)}
    assert joint_pnl(revalue, moves={"BTC": 0.1, "ETH": 0.2}, vol_shifts={}) == pytest.approx(0.2 - 0.6)


def short_option_book(currency, index, size, strike_ratio, put, equity_coin, perp_usd):
    expiry = "27MAR26"
    strike = round(index * strike_ratio / (1000 if currency == "BTC" else 50)) * (
        1000 if currency == "BTC" else 50
    )
    name = f"{currency}-{expiry}-{int(strike)}-{'P' if put else 'C'}"
    positions = [option_position(name, -size, forward=index, vol=0.7, index=index)]
    if perp_usd:
        positions.append(perp_position(perp_usd, index, index))
    return Revaluation(positions, index=index, equity_coin=equity_coin, as_of=NOW)


linear_books = st.tuples(
    st.floats(-5e6, 5e6), st.floats(-5e6, 5e6), st.floats(1e4, 2e6), st.floats(0.0, 0.5)
).filter(lambda b: abs(b[0] + b[1]) > 1e3)

option_books = st.tuples(
    st.floats(0.5, 60.0),  # BTC options sold
    st.floats(0.6, 1.4),  # strike / index
    st.booleans(),  # puts or calls
    st.floats(10.0, 1000.0),  # ETH options sold
    st.floats(0.6, 1.4),
    st.booleans(),
    st.floats(-2e6, 2e6),  # BTC perpetual, USD
    st.floats(0.5, 20.0),  # BTC collateral, coin
)


@settings(max_examples=60, deadline=None)
@given(
    book=linear_books,
    amplifications=st.lists(st.floats(0.0, 3.0), min_size=2, max_size=5),
    vol=st.floats(0.0, 1.0),
)
def test_cascade_loss_grows_with_amplification_on_linear_books(book, amplifications, vol):
    btc, eth, equity, margin_share = book
    revalue = {"BTC": linear_revalue(btc), "ETH": linear_revalue(eth)}
    m_liq = common_liquidation_move(revalue=revalue, equity_usd=equity, maintenance_usd=margin_share * equity)
    results = [
        cascade(liquidation_move=m_liq, amplification=a, vol_shift=vol, revalue=revalue)
        for a in sorted(amplifications)
    ]
    _check_cascades(results)


@settings(max_examples=40, deadline=None)
@given(
    book=option_books,
    amplifications=st.lists(st.floats(0.0, 3.0), min_size=2, max_size=4),
    vol=st.floats(0.0, 1.0),
)
def test_cascade_loss_grows_with_amplification_on_short_option_books(book, amplifications, vol):
    btc_size, btc_k, btc_put, eth_size, eth_k, eth_put, perp_usd, collateral = book
    btc_book = short_option_book("BTC", BTC, btc_size, btc_k, btc_put, collateral, perp_usd)
    eth_book = short_option_book("ETH", ETH, eth_size, eth_k, eth_put, 5.0, 0.0)
    revalue = {"BTC": btc_book.pnl_usd, "ETH": eth_book.pnl_usd}
    equity = collateral * BTC + 5.0 * ETH
    m_liq = common_liquidation_move(revalue=revalue, equity_usd=equity, maintenance_usd=0.1 * equity)
    results = [
        cascade(liquidation_move=m_liq, amplification=a, vol_shift=vol, revalue=revalue)
        for a in sorted(amplifications)
    ]
    _check_cascades(results)


def _check_cascades(results):
    if results[0].liquidation_move is None:
        assert all(r.loss_usd is None and r.reason for r in results)
        return
    for r in results:
        assert r.loss_usd >= r.liquidation_loss_usd
        assert abs(r.cascade_move) >= abs(r.liquidation_move) - 1e-15
    losses = [r.loss_usd for r in results]
    assert all(b >= a - 1e-6 * max(1.0, abs(a)) for a, b in itertools.pairwise(losses)), losses
