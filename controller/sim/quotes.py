"""How the simulated exchange marks what it lists (pure: market state and time in, quotes out).

* Perpetual: ``index · (1 + premium)``, spread ``perp_half_spread`` either side, on the tick; its
  funding rate is Deribit's function of that premium (:mod:`.funding`).
* Dated futures: the expiry's forward (:func:`~controller.sim.listing.forward_price`).
* Options: Black-76 on the expiry's forward at the smile's volatility
  (:func:`~controller.sim.listing.smile_vol`), marked in coin (USD price / forward), with a spread
  of ``option_half_spread`` of the mark (at least one tick); a bid that would be 0 is no bid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

import numpy as np

from controller.sim.funding import funding_rate
from controller.sim.listing import Listed, forward_price, smile_vol
from controller.sim.market import MarketState
from controller.sim.model import SimConfig, SimQuote
from pricing import greeks, year_fraction


def compute_quotes(
    items: Iterable[Listed], *, market: MarketState, now: datetime, config: SimConfig
) -> dict[str, SimQuote]:
    """Marks, best bid and ask (and Black greeks of options) of ``items`` in this market state."""
    m = market
    out: dict[str, SimQuote] = {}
    options = []
    for x in items:
        if x.kind == "option":
            options.append(x)
            continue
        t = 0.0 if x.expiry is None else max(year_fraction(start=now, end=x.expiry), 0.0)
        if x.is_perpetual:
            mark = m.index * (1.0 + m.perp_premium)
            half = config.perp_half_spread
        else:
            mark = forward_price(index=m.index, premium=m.perp_premium, t_years=t, params=config.listing)
            half = config.future_half_spread
        bid = math.floor(mark * (1 - half) / x.tick_size) * x.tick_size
        ask = math.ceil(mark * (1 + half) / x.tick_size) * x.tick_size
        out[x.name] = SimQuote(
            name=x.name,
            mark_price=round(mark, 4),
            best_bid=bid,
            best_ask=ask,
            index_price=m.index,
            underlying_price=round(mark, 4),
            mark_iv=None,
            current_funding=funding_rate(m.perp_premium, config.funding) if x.is_perpetual else None,
            time=now,
        )
    if options:
        out.update(_option_quotes(options, m, now, config))
    return out


def _option_quotes(
    options: list[Listed], m: MarketState, now: datetime, config: SimConfig
) -> dict[str, SimQuote]:
    t = np.array([max(year_fraction(start=now, end=x.expiry), 0.0) for x in options])  # type: ignore[arg-type]
    strikes = np.array([x.strike for x in options], dtype=float)
    forward = np.array(
        [forward_price(index=m.index, premium=m.perp_premium, t_years=ti, params=config.listing) for ti in t]
    )
    vols = np.array(
        [
            smile_vol(atm_vol_30d=m.atm_vol, forward=f, strike=k, t_years=ti, smile=config.smile)
            for f, k, ti in zip(forward, strikes, t, strict=True)
        ]
    )
    calls = np.array([bool(x.is_call) for x in options])
    g = greeks(forward=forward, strike=strikes, t_years=t, vol=vols, is_call=calls)
    out = {}
    for i, x in enumerate(options):
        mark = round(float(g.price[i]) / forward[i], 8)
        half = max(x.tick_size, config.option_half_spread * mark)
        bid = math.floor((mark - half) / x.tick_size) * x.tick_size
        ask = math.ceil((mark + half) / x.tick_size) * x.tick_size
        out[x.name] = SimQuote(
            name=x.name,
            mark_price=mark,
            best_bid=bid if bid > 0 else None,
            best_ask=max(ask, x.tick_size),
            index_price=m.index,
            underlying_price=float(forward[i]),
            mark_iv=float(vols[i]),
            current_funding=None,
            delta=float(g.delta[i]),
            gamma=float(g.gamma[i]),
            vega=float(g.vega[i]),
            theta=float(g.theta[i]),
            time=now,
        )
    return out


def price_band(listed: Listed, mark: float, config: SimConfig) -> tuple[float, float]:
    """The instrument's ``min_price`` and ``max_price`` (on the tick, inside the band): futures orders
    beyond them are clamped to them (Deribit: "Any buy orders you submit higher than this price,
    will be clamped to this maximum"), and a market order trades up to them.  The perpetual's band
    is ±1.5 % of its mark, a dated future's and an option's ±10 %."""
    band = config.perp_price_band if listed.is_perpetual else config.future_price_band
    low, high = mark * (1.0 - band), mark * (1.0 + band)
    return (
        math.ceil(low / listed.tick_at(low) - 1e-9) * listed.tick_at(low),
        math.floor(high / listed.tick_at(high) + 1e-9) * listed.tick_at(high),
    )
