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

import weakref
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from controller.sim.market import MarketPath, ReplayPath

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
    if isinstance(path, ReplayPath):
        return _table(path, params).between(start.timestamp(), end.timestamp())
    total = 0.0
    t = start
    while t < end:
        change = path.next_change_after(t)
        step_end = end if change is None else min(change, end)
        rate = funding_rate(path.state_at(t).perp_premium, params)
        total += rate * (step_end - t).total_seconds() / EIGHT_HOURS_S
        t = step_end
    return total


@dataclass(frozen=True, eq=False)
class FundingTable:
    """The funding of a path of fixed rows, accrued from its first row to each row's time, so any
    window costs two look-ups instead of a walk over its rows (a replay asks twice a cycle, 8 h each)."""

    times_s: np.ndarray  # each row's time (epoch seconds)
    rates: np.ndarray  # the 8-hour rate in force from that row on
    accrued: np.ndarray  # Σ rate × Δt / 8 h from the first row to each row's time

    @classmethod
    def of(cls, *, times_s: np.ndarray, premiums: np.ndarray, params: FundingParams) -> FundingTable:
        uncapped = np.maximum(params.dead_band, premiums) + np.minimum(-params.dead_band, premiums)
        rates = np.minimum(params.cap, np.maximum(-params.cap, uncapped))
        accrued = np.concatenate(([0.0], np.cumsum(rates[:-1] * np.diff(times_s) / EIGHT_HOURS_S)))
        return cls(times_s=times_s, rates=rates, accrued=accrued)

    def accrued_at(self, t_s: float) -> float:
        """Accrued from the first row to ``t_s`` (before the first row, its rate runs backwards)."""
        i = max(0, int(np.searchsorted(self.times_s, t_s, side="right")) - 1)
        return float(self.accrued[i] + self.rates[i] * (t_s - self.times_s[i]) / EIGHT_HOURS_S)

    def between(self, start_s: float, end_s: float) -> float:
        return self.accrued_at(end_s) - self.accrued_at(start_s) if end_s > start_s else 0.0


_Tables = dict[FundingParams, FundingTable]
_TABLES: weakref.WeakKeyDictionary[ReplayPath, _Tables] = weakref.WeakKeyDictionary()


def _table(path: ReplayPath, params: FundingParams) -> FundingTable:
    tables = _TABLES.setdefault(path, {})
    if params not in tables:
        times_s, premiums = path.data.times_ms / 1000.0, path.data.funding_8h
        tables[params] = FundingTable.of(times_s=times_s, premiums=premiums, params=params)
    return tables[params]
