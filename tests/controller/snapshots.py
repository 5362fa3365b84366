"""Build account snapshots for risk and policy tests without any venue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pricing
from controller.venues import AccountSnapshot, ExchangeGreeks, InstrumentSpec, PositionSnapshot, Quote

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PERP = "BTC-PERPETUAL"


def perp_spec(min_amount: float = 10.0) -> InstrumentSpec:
    return InstrumentSpec(PERP, pricing.parse_deribit_name(PERP), 0.5, min_amount, 10.0, True, 0.0, 0.0005)


def perp_position(
    size_usd: float, mark: float, index: float, *, at: datetime = NOW, delta: float | None = None
) -> PositionSnapshot:
    return PositionSnapshot(
        name=PERP,
        instrument=pricing.parse_deribit_name(PERP),
        size=size_usd,
        average_price=mark,
        mark_price=mark,
        index_price=index,
        underlying_price=None,
        mark_iv=None,
        exchange_greeks=ExchangeGreeks(delta=size_usd / mark if delta is None else delta),
        unrealized_pnl=0.0,
        realized_pnl=0.0,
        observed_at=at,
    )


def option_position(
    name: str,
    size: float,
    *,
    forward: float,
    vol: float,
    index: float,
    as_of: datetime = NOW,
    exchange_delta: float | None = None,
) -> PositionSnapshot:
    inst = pricing.parse_deribit_name(name)
    t = pricing.year_fraction(start=as_of, end=inst.expiry)
    g = pricing.greeks(forward=forward, strike=inst.strike, t_years=t, vol=vol, is_call=inst.is_call)
    mark = float(g.price) / forward
    delta = size * (float(g.delta) - mark) if exchange_delta is None else exchange_delta
    return PositionSnapshot(
        name=name,
        instrument=inst,
        size=size,
        average_price=mark,
        mark_price=mark,
        index_price=index,
        underlying_price=forward,
        mark_iv=vol,
        exchange_greeks=ExchangeGreeks(
            delta=delta, gamma=size * float(g.gamma), vega=size * float(g.vega), theta=size * float(g.theta)
        ),
        unrealized_pnl=0.0,
        realized_pnl=0.0,
        observed_at=as_of,
    )


def snapshot(
    *,
    equity_coin: float = 10.0,
    index: float = 80_000.0,
    perp_usd: float = 0.0,
    perp_mark: float | None = None,
    options: tuple[PositionSnapshot, ...] = (),
    vol_index: float | None = 0.6,
    maintenance_margin: float = 0.0,
    age_s: float = 0.0,
    now: datetime = NOW,
) -> AccountSnapshot:
    mark = perp_mark or index * 1.0002
    observed = now - timedelta(seconds=age_s)
    positions = tuple(options)
    if perp_usd:
        positions = (perp_position(perp_usd, mark, index, at=observed), *positions)
    return AccountSnapshot(
        venue="test",
        currency="BTC",
        taken_at=now,
        server_time=now,
        equity_coin=equity_coin,
        balance_coin=equity_coin,
        initial_margin_coin=maintenance_margin * 2,
        maintenance_margin_coin=maintenance_margin,
        available_funds_coin=equity_coin - maintenance_margin * 2,
        index_price=index,
        index_observed_at=observed,
        positions=positions,
        hedge=Quote(PERP, mark, mark - 0.5, mark + 0.5, index, None, None, observed),
        chain=(),
        funding_rate_8h=0.0001,
        funding_observed_at=observed,
        vol_index=vol_index,
        vol_index_observed_at=observed,
        rest_calls=5,
    )
