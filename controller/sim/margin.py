"""Deribit-style standard margin and fees for a coin-margined account (all results in coin).

Futures and the perpetual (inverse, size in USD, ``n = |size_usd| / mark`` coin)::

    IM = n · (im_base + im_per_coin · n)        im_base 2 %, im_per_coin 0.005 % per coin
    MM = n · (mm_base + mm_per_coin · n)        mm_base 1 %, mm_per_coin 0.005 % per coin

(The 2 % base matches the 50x maximum leverage Deribit publishes for BTC futures.)

Options, per coin of a short position (``m`` = mark in coin, ``F`` = the underlying's mark,
``OTM`` = out-of-the-money amount in USD: ``max(K − F, 0)`` for calls, ``max(F − K, 0)`` for puts)::

    short call  IM = max(0.15 − OTM/F, 0.10) + m                 MM = 0.075 + m
    short put   IM = max(max(0.15 − OTM/F, 0.10) + m, MM)        MM = max(0.075, 0.075·m) + m

Long options need no margin: their premium is paid in full.

Fees: futures and perpetual ``rate × |size_usd| / price`` coin (taker 0.05 %, maker 0 %);
options ``min(0.03 % × amount, 12.5 % × amount × price)`` coin, the same for maker and taker.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MarginParams:
    im_base: float = 0.02
    mm_base: float = 0.01
    per_coin: float = 0.00005
    option_im_base: float = 0.15
    option_im_floor: float = 0.10
    option_mm: float = 0.075


@dataclass(frozen=True)
class FeeParams:
    future_taker: float = 0.0005
    future_maker: float = 0.0
    option_rate: float = 0.0003
    option_cap: float = 0.125
    liquidation: float = 0.0075  # futures: the instruments' published max_liquidation_commission
    option_liquidation: float = 0.002  # options: 0.2 % of the underlying (Deribit's fee page)


def future_margins(*, size_usd: float, mark: float, params: MarginParams) -> tuple[float, float]:
    """(initial, maintenance) margin in coin of an inverse future or perpetual position."""
    coins = abs(size_usd) / mark
    return coins * (params.im_base + params.per_coin * coins), coins * (
        params.mm_base + params.per_coin * coins
    )


def option_margins(
    *, size: float, mark_coin: float, underlying: float, strike: float, is_call: bool, params: MarginParams
) -> tuple[float, float]:
    """(initial, maintenance) margin in coin of an inverse option position; zero when long."""
    if size >= 0:
        return 0.0, 0.0
    otm = max(strike - underlying, 0.0) if is_call else max(underlying - strike, 0.0)
    base = max(params.option_im_base - otm / underlying, params.option_im_floor)
    if is_call:
        maintenance = params.option_mm + mark_coin
        initial = base + mark_coin
    else:
        maintenance = max(params.option_mm, params.option_mm * mark_coin) + mark_coin
        initial = max(base + mark_coin, maintenance)
    return -size * initial, -size * maintenance


def future_fee(*, amount_usd: float, price: float, rate: float) -> float:
    return abs(amount_usd) / price * rate


def option_fee(*, amount: float, price_coin: float, params: FeeParams) -> float:
    return min(params.option_rate * abs(amount), params.option_cap * abs(amount) * price_coin)
