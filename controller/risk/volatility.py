"""The book's volatility signal σ̂: a 30-day ATM implied vol from the chain (or an index), smoothed.

ATM volatility of one expiry: the forward ``F`` is the median ``underlying_price`` of its options;
each strike's IV is the mean of its call and put IVs (either alone when only one is quoted); the
ATM IV is the linear interpolation in ``ln K`` between the two strikes around ``F`` (an expiry whose
strikes do not bracket ``F`` is left out).  The 30-day figure interpolates the total variance
``w(T) = σ²(T)·T`` linearly in ``T`` between the expiries around 30 days, and holds the volatility
flat beyond the first or last expiry.  Expiries under ``min_days`` are too noisy to use.

EWMA smoothing is explicit state carried from cycle to cycle: with half-life ``h`` and ``Δt`` since
the last update, ``σ̂ ← σ̂ + (1 − 2^(−Δt/h))·(σ_raw − σ̂)`` — irregular cycles weigh correctly.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from controller.venues import ChainQuote
from pricing import year_fraction

THIRTY_DAYS = 30.0 / 365.0


@dataclass(frozen=True)
class ExpiryVol:
    expiry: datetime
    t_years: float
    forward: float
    atm_vol: float


@dataclass(frozen=True)
class AtmVolEstimate:
    vol: float  # decimal, at the target tenor
    expiries: tuple[ExpiryVol, ...]  # what it was built from
    bracket: tuple[ExpiryVol, ...]  # the one or two expiries the target tenor fell between


def atm_vol_by_expiry(
    chain: Sequence[ChainQuote], *, as_of: datetime, min_days: float = 1.0
) -> list[ExpiryVol]:
    by_expiry: dict[datetime, list[ChainQuote]] = defaultdict(list)
    for quote in chain:
        by_expiry[quote.expiry].append(quote)
    out = []
    for expiry, quotes in sorted(by_expiry.items()):
        t = year_fraction(start=as_of, end=expiry)
        if t * 365.0 < min_days:
            continue
        forward = statistics.median([q.underlying_price for q in quotes])
        ivs: dict[float, list[float]] = defaultdict(list)
        for q in quotes:
            ivs[q.strike].append(q.mark_iv)
        k0 = max((k for k in ivs if k <= forward), default=None)
        k1 = min((k for k in ivs if k >= forward), default=None)
        if k0 is None or k1 is None:
            continue
        v0, v1 = sum(ivs[k0]) / len(ivs[k0]), sum(ivs[k1]) / len(ivs[k1])
        atm = v0 if k0 == k1 else v0 + (v1 - v0) * math.log(forward / k0) / math.log(k1 / k0)
        out.append(ExpiryVol(expiry, t, forward, atm))
    return out


def atm_vol_30d(
    chain: Sequence[ChainQuote], *, as_of: datetime, target_years: float = THIRTY_DAYS, min_days: float = 1.0
) -> AtmVolEstimate | None:
    """The ATM implied volatility at ``target_years``, or None when the chain cannot give one."""
    curve = atm_vol_by_expiry(chain, as_of=as_of, min_days=min_days)
    if not curve:
        return None
    if target_years <= curve[0].t_years:
        return AtmVolEstimate(curve[0].atm_vol, tuple(curve), (curve[0],))
    if target_years >= curve[-1].t_years:
        return AtmVolEstimate(curve[-1].atm_vol, tuple(curve), (curve[-1],))
    after = next(i for i, e in enumerate(curve) if e.t_years >= target_years)
    a, b = curve[after - 1], curve[after]
    wa, wb = a.atm_vol**2 * a.t_years, b.atm_vol**2 * b.t_years
    w = wa + (wb - wa) * (target_years - a.t_years) / (b.t_years - a.t_years)
    return AtmVolEstimate(math.sqrt(w / target_years), tuple(curve), (a, b))


@dataclass(frozen=True)
class VolState:
    """Smoothed σ̂ carried between cycles (None before the first observation)."""

    value: float | None = None
    updated_at: datetime | None = None
    raw: float | None = None
    source: str | None = None


def smooth(state: VolState, *, raw: float, source: str, at: datetime, half_life_s: float) -> VolState:
    """One EWMA step; the first observation starts the average, a clock going back resets nothing."""
    if not (raw > 0 and math.isfinite(raw)):
        raise ValueError(f"volatility observation must be positive and finite, got {raw}")
    if state.value is None or state.updated_at is None or half_life_s <= 0:
        return VolState(raw, at, raw, source)
    elapsed = max((at - state.updated_at).total_seconds(), 0.0)
    weight = 1.0 - 0.5 ** (elapsed / half_life_s)
    return VolState(state.value + weight * (raw - state.value), at, raw, source)
