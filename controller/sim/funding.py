"""Perpetual funding as Deribit computes it, from the premium of the perpetual's mark over the index.

Deribit, "Funding Specifications"
(https://support.deribit.com/hc/en-us/articles/31424939178397-Funding-Specifications)::

    Premium Rate  = (Mark Price − Deribit Index) / Deribit Index
    Funding Rate  = min(Max_Cap, max(Min_Cap, max(0.025 %, Premium) + min(−0.025 %, Premium)))
    Time Fraction = Funding Rate Time Period / 8 hours
    Funding Payment = Funding Rate × Position Size × Time Fraction      (paid continuously)

so a premium inside ±0.025 % funds nothing, and outside it the rate is the premium less the band.
The cap "can vary by instrument" and its value is not on the page: the simulator uses ±0.5 % per
8 h (:attr:`FundingParams.cap`), an assumption docs/simulator.md states.

``public/get_funding_rate_value`` answers the funding accrued over the window asked for (legacy
docs: "interest rate value for requested period"; the published 24-hour example is a sum, about
three times an 8-hour rate): :func:`funding_over` integrates the rate of the (step-wise) market
path over the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controller.sim.market import MarketPath

EIGHT_HOURS_S = 8 * 3600.0


@dataclass(frozen=True)
class FundingParams:
    dead_band: float = 0.00025  # ±0.025 %: a premium inside it funds nothing
    cap: float = 0.005  # ±0.5 % per 8 h (assumed: Deribit sets it per instrument, unpublished)


def funding_rate(premium: float, params: FundingParams) -> float:
    """The 8-hour funding rate of a premium (decimal): the dead band removed, then capped."""
    uncapped = max(params.dead_band, premium) + min(-params.dead_band, premium)
    return min(params.cap, max(-params.cap, uncapped))


def funding_over(path: MarketPath, start: datetime, end: datetime, params: FundingParams) -> float:
    """Σ rate × Δt / 8 h over ``[start, end)`` of the path (the path is constant between its changes)."""
    total = 0.0
    t = start
    while t < end:
        change = path.next_change_after(t)
        step_end = end if change is None else min(change, end)
        rate = funding_rate(path.state_at(t).perp_premium, params)
        total += rate * (step_end - t).total_seconds() / EIGHT_HOURS_S
        t = step_end
    return total
