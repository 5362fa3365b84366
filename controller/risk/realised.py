"""Realised volatility: one estimator for the whole product (pure; times in, figures out).

The estimator is the sum of squared log returns over the sum of the time they took, annualised::

    σ² = Σ rᵢ² / Σ Δtᵢ        rᵢ = ln(Sᵢ / Sᵢ₋₁),  Δtᵢ in years (ACT/365)

No mean is removed (over a day the drift is noise), and a gap counts at its true length: a return
over two days enters with two days of time.  Three shapes of it:

* :func:`realised_vol` — over a whole path or its trailing window;
* :func:`rolling_realised_vol` — over every trailing window of a path (the replay's 30-day figures);
* :class:`VarianceEwma` / :func:`observe` — exponentially weighted, for the controller's σ̂: each
  sum decays by ``2^(−elapsed / half_life)`` before a return is added, so weights decay with
  elapsed time, not with the count of observations.  It also accumulates the implied variance over
  the same intervals (``Σ σ_implied² Δt``), so ``realised / implied`` — the variance risk premium —
  comes from past data only (:func:`vrp_ratio`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from pricing.realised import YEAR_S, realised_vol

__all__ = [
    "YEAR_S",
    "VarianceEwma",
    "ewma_vol",
    "observe",
    "realised_vol",
    "rolling_realised_vol",
    "vrp_ratio",
]


def rolling_realised_vol(
    times_s: np.ndarray, values: np.ndarray, *, window_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """(end times, vols): the realised vol over each full trailing window, at every point from the
    first whose window lies inside the path."""
    times_s, values = np.asarray(times_s, dtype=float), np.asarray(values, dtype=float)
    if times_s.size < 3:
        return np.empty(0), np.empty(0)
    r = np.diff(np.log(values))
    dt = np.diff(times_s) / YEAR_S
    ends = times_s[1:]
    sq, yrs = np.concatenate([[0.0], np.cumsum(r * r)]), np.concatenate([[0.0], np.cumsum(dt)])
    first = np.searchsorted(ends, ends - window_s, side="right")  # returns ending inside (end − w, end]
    full = ends - window_s >= times_s[0]
    stop = np.arange(1, ends.size + 1)
    span = yrs[stop] - yrs[first]
    ok = full & (span > 0)
    return ends[ok], np.sqrt((sq[stop] - sq[first])[ok] / span[ok])


@dataclass(frozen=True)
class VarianceEwma:
    """Exponentially weighted sums of squared returns, their time, and the implied variance over it."""

    sum_r2: float = 0.0  # Σ w·r²
    sum_dt: float = 0.0  # Σ w·Δt, years
    sum_implied: float = 0.0  # Σ w·σ_implied²·Δt, over the intervals where the implied vol was known
    sum_dt_implied: float = 0.0  # Σ w·Δt over those intervals
    sum_r2_implied: float = 0.0  # Σ w·r² over those intervals
    last_price: float | None = None
    last_at: datetime | None = None
    last_implied: float | None = None  # decimal
    first_at: datetime | None = None  # the first observation: history is measured from it
    first_implied_at: datetime | None = None  # the first interval with a known implied vol

    @property
    def history_days(self) -> float:
        """How long the estimate has been observing (days): a cold start has none."""
        return _days(self.first_at, self.last_at)

    @property
    def implied_history_days(self) -> float:
        return _days(self.first_implied_at, self.last_at)


def _days(start: datetime | None, end: datetime | None) -> float:
    return 0.0 if start is None or end is None else max((end - start).total_seconds(), 0.0) / 86400.0


def observe(
    state: VarianceEwma, *, price: float, at: datetime, half_life_s: float, implied: float | None = None
) -> VarianceEwma:
    """One observation of the index (and of the implied vol then in force, decimal)."""
    if not (price > 0 and math.isfinite(price)):
        raise ValueError(f"an index price must be positive and finite, got {price}")
    if implied is not None and not (implied > 0 and math.isfinite(implied)):
        implied = None
    if state.last_price is None or state.last_at is None:
        return VarianceEwma(last_price=price, last_at=at, last_implied=implied, first_at=at)
    elapsed = (at - state.last_at).total_seconds()
    if elapsed <= 0:  # the same instant again, or a clock going back: keep the sums
        return replace(state, last_implied=implied if implied is not None else state.last_implied)
    decay = 0.5 ** (elapsed / half_life_s) if half_life_s > 0 else 0.0
    r = math.log(price / state.last_price)
    dt = elapsed / YEAR_S
    known = state.last_implied is not None  # the implied vol in force over this interval: at its start
    return VarianceEwma(
        sum_r2=decay * state.sum_r2 + r * r,
        sum_dt=decay * state.sum_dt + dt,
        sum_implied=decay * state.sum_implied + (state.last_implied**2 * dt if known else 0.0),  # type: ignore[operator]
        sum_dt_implied=decay * state.sum_dt_implied + (dt if known else 0.0),
        sum_r2_implied=decay * state.sum_r2_implied + (r * r if known else 0.0),
        last_price=price,
        last_at=at,
        last_implied=implied,
        first_at=state.first_at,
        first_implied_at=state.first_implied_at or (state.last_at if known else None),
    )


def ewma_vol(state: VarianceEwma, *, min_history_days: float = 0.0) -> float | None:
    """The exponentially weighted realised volatility (decimal), once enough history is behind it."""
    if state.sum_dt <= 0 or state.history_days < min_history_days or state.sum_r2 <= 0:
        return None
    return math.sqrt(state.sum_r2 / state.sum_dt)


def vrp_ratio(state: VarianceEwma, *, min_history_days: float = 0.0) -> float | None:
    """Realised over implied volatility on the same past intervals: ``sqrt(Σ w r² / Σ w σ_impl² Δt)``."""
    if state.sum_implied <= 0 or state.implied_history_days < min_history_days or state.sum_r2_implied <= 0:
        return None
    return math.sqrt(state.sum_r2_implied / state.sum_implied)
