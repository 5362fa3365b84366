"""Co-movement of several indices: a time-decayed EWMA of the products of their log returns (pure).

The estimator is :mod:`controller.risk.realised`'s, for every pair of assets at once::

    Σᵢⱼ = Σₖ wₖ·rᵢₖ·rⱼₖ / Σₖ wₖ·Δtₖ       ρᵢⱼ = Σₖ wₖ·rᵢₖ·rⱼₖ / sqrt(Σₖ wₖ·rᵢₖ² · Σₖ wₖ·rⱼₖ²)

with ``rᵢₖ = ln(Sᵢ / Sᵢ_prev)`` over the k-th interval, ``Δtₖ`` its length in years (ACT/365), and
``wₖ = 2^(−(t_now − tₖ) / half_life)``: weights decay with elapsed time, not with the count of
observations.  No mean is removed.  A return is taken only between instants at which *every* asset
has a price (the common timestamps), so the returns of a pair always span the same interval; an
instant some asset misses is skipped and the next common one's return spans the gap at its real
length.  The diagonal gives each asset's realised vol (the same figure as
:func:`controller.risk.realised.ewma_vol` on the common timestamps).

A correlation that cannot be estimated — no common return yet, too little history, or an asset
whose price has not moved — is reported as unknown with the reason (:class:`CorrelationEstimate`,
``None`` per pair in :func:`correlation_by_pair`), never as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from pricing.realised import YEAR_S

Matrix = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class CovarianceEwma:
    """Exponentially weighted sums of products of log returns of ``assets`` and of their time."""

    assets: tuple[str, ...]
    sum_rr: Matrix = ()  # Σ w·rᵢ·rⱼ, in the order of ``assets``
    sum_dt: float = 0.0  # Σ w·Δt, years
    returns: int = 0  # common returns observed (unweighted count)
    last_prices: tuple[float, ...] | None = None  # USD, at the last common instant
    last_at: datetime | None = None
    first_at: datetime | None = None

    @property
    def history_days(self) -> float:
        """How long the estimate has been observing common instants (days)."""
        if self.first_at is None or self.last_at is None:
            return 0.0
        return max((self.last_at - self.first_at).total_seconds(), 0.0) / 86400.0


@dataclass(frozen=True, eq=False)
class CorrelationEstimate:
    """The correlation matrix of ``assets`` (unit diagonal), or None with the reason it is unknown."""

    assets: tuple[str, ...]
    matrix: np.ndarray | None
    vols: np.ndarray | None  # each asset's realised vol over the same returns, annualised decimal
    reason: str | None  # why ``matrix`` is None


def observe(
    state: CovarianceEwma, *, prices: Mapping[str, float | None], at: datetime, half_life_s: float
) -> CovarianceEwma:
    """One instant: the price (USD) of each asset, None or absent where it is not known.

    An instant at which some asset has no price is not common: the state is returned unchanged.
    """
    _check_half_life(half_life_s)
    if not state.assets:
        raise ValueError("a covariance EWMA needs at least one asset")
    quoted = [prices.get(a) for a in state.assets]
    if any(p is None or not math.isfinite(p) for p in quoted):
        return state
    now = tuple(float(p) for p in quoted)  # type: ignore[arg-type]
    if min(now) <= 0:
        raise ValueError(f"index prices must be positive, got {dict(zip(state.assets, now, strict=True))}")
    if state.last_prices is None or state.last_at is None:
        return CovarianceEwma(state.assets, _zeros(len(now)), last_prices=now, last_at=at, first_at=at)
    elapsed = (at - state.last_at).total_seconds()
    if elapsed <= 0:  # the same instant again, or a clock going back: keep the sums
        return state
    decay = 0.5 ** (elapsed / half_life_s)
    r = np.log(np.array(now) / np.array(state.last_prices))
    sums = decay * np.array(state.sum_rr) + np.outer(r, r)
    return CovarianceEwma(
        state.assets,
        _as_matrix(sums),
        decay * state.sum_dt + elapsed / YEAR_S,
        state.returns + 1,
        now,
        at,
        state.first_at,
    )


def covariance_ewma(
    *, times_s: Mapping[str, np.ndarray], prices: Mapping[str, np.ndarray], half_life_s: float
) -> CovarianceEwma:
    """The state :func:`observe` reaches over whole histories (epoch seconds, increasing; USD), on the
    timestamps common to every asset, in one vectorised pass: return k, ending at ``tₖ``, carries the
    weight ``2^(−(t_last − tₖ) / half_life)``."""
    _check_half_life(half_life_s)
    assets = tuple(times_s)
    if not assets or set(assets) != set(prices):
        raise ValueError("times_s and prices must name the same assets, at least one")
    common, columns = common_samples(times_s=times_s, prices=prices)
    if common.size == 0:
        return CovarianceEwma(assets)
    last = datetime.fromtimestamp(float(common[-1]), UTC)
    first = datetime.fromtimestamp(float(common[0]), UTC)
    if common.size == 1:
        return CovarianceEwma(assets, _zeros(len(assets)), 0.0, 0, tuple(columns[0]), last, first)
    r = np.diff(np.log(columns), axis=0)
    weights = 0.5 ** ((common[-1] - common[1:]) / half_life_s)
    sums = (r * weights[:, None]).T @ r
    sums = 0.5 * (sums + sums.T)  # exactly symmetric, as the fold's outer products are
    sum_dt = float(np.sum(weights * np.diff(common))) / YEAR_S
    return CovarianceEwma(assets, _as_matrix(sums), sum_dt, int(r.shape[0]), tuple(columns[-1]), last, first)


def common_samples(
    *, times_s: Mapping[str, np.ndarray], prices: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(common times, prices at them as (times, assets) in the order of ``times_s``)."""
    common: np.ndarray | None = None
    for asset, t in times_s.items():
        t = np.asarray(t, dtype=float)
        if np.any(np.diff(t) <= 0):
            raise ValueError(f"{asset}: times must increase strictly")
        if np.asarray(prices[asset]).shape != t.shape:
            raise ValueError(f"{asset}: {t.size} times but {np.asarray(prices[asset]).size} prices")
        common = t if common is None else np.intersect1d(common, t, assume_unique=True)
    assert common is not None
    columns = [
        np.asarray(prices[a], dtype=float)[np.searchsorted(np.asarray(times_s[a], dtype=float), common)]
        for a in times_s
    ]
    out = np.column_stack(columns) if columns else np.empty((0, 0))
    if out.size and not np.all(out > 0):
        raise ValueError("index prices must be positive")
    return common, out


def correlation(state: CovarianceEwma, *, min_history_days: float = 0.0) -> CorrelationEstimate:
    """The correlation matrix, once ``min_history_days`` of common history and some movement of
    every asset are behind it; otherwise None and the reason."""
    reason = _unknown(state, min_history_days)
    if reason is None:
        sums = np.array(state.sum_rr)
        diag = np.diag(sums)
        flat = [a for a, v in zip(state.assets, diag, strict=True) if v <= 0]
        if flat:
            reason = f"no variance yet for {', '.join(flat)}: its index has not moved"
    if reason is not None:
        return CorrelationEstimate(state.assets, None, None, reason)
    scale = np.sqrt(diag)
    matrix = np.clip(sums / np.outer(scale, scale), -1.0, 1.0)  # rounding only: Cauchy–Schwarz
    np.fill_diagonal(matrix, 1.0)
    return CorrelationEstimate(state.assets, matrix, np.sqrt(diag / state.sum_dt), None)


def correlation_by_pair(state: CovarianceEwma, *, min_history_days: float = 0.0) -> dict[str, float | None]:
    """``{"BTC/ETH": 0.83}`` for every pair in the order of ``assets`` (JSON-ready); a pair is None
    while the history is too short or one of its two assets has not moved."""
    known = _unknown(state, min_history_days) is None
    sums = np.array(state.sum_rr) if known else None
    pairs: dict[str, float | None] = {}
    n = len(state.assets)
    for i in range(n):
        for j in range(i + 1, n):
            key = f"{state.assets[i]}/{state.assets[j]}"
            if sums is None or sums[i, i] <= 0 or sums[j, j] <= 0:
                pairs[key] = None
            else:
                rho = sums[i, j] / math.sqrt(sums[i, i] * sums[j, j])
                pairs[key] = min(1.0, max(-1.0, float(rho)))
    return pairs


def _unknown(state: CovarianceEwma, min_history_days: float) -> str | None:
    if state.returns == 0 or state.sum_dt <= 0:
        return "no common return yet"
    if state.history_days < min_history_days:
        return f"{state.history_days:.1f} days of common history, {min_history_days:g} needed"
    return None


def _check_half_life(half_life_s: float) -> None:
    if not half_life_s > 0:  # math.inf is allowed: equal weights
        raise ValueError(f"half_life_s must be positive, got {half_life_s}")


def _zeros(n: int) -> Matrix:
    return tuple((0.0,) * n for _ in range(n))


def _as_matrix(a: np.ndarray) -> Matrix:
    return tuple(tuple(float(v) for v in row) for row in a)
