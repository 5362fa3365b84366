"""σ̂, the book's volatility signal: implied, realised, implied scaled by the risk premium, or a blend.

Every cycle computes every component from explicit state (pure), and the decision log records
them all beside the one chosen:

* ``implied`` — the 30-day ATM implied vol from the chain, or the venue's volatility index (DVOL),
  or a constant (``sigma_sources``, first available), EWMA-smoothed (``ewma_half_life_s``);
* ``realised`` — the time-decayed EWMA of squared log returns of the index (half-life
  ``realised_half_life_days``; :mod:`controller.risk.realised`), once ``realised_min_history_days``
  of weighted history are behind it;
* ``implied_vrp`` — implied × the realised/implied ratio measured over the past
  (``vrp_half_life_days``, at least ``vrp_min_history_days``): implied volatility carries a
  variance risk premium, and this removes the part of it the past has shown;
* ``blend`` — in variance: ``σ̂² = w·realised² + (1 − w)·implied_vrp²`` (``implied`` where the
  premium is not known yet), ``w = blend_weight``.

``estimator`` chooses; a component that has no value yet falls back to the implied vol (and says
so in ``source``), so a cold start trades on implied volatility until realised history builds up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from controller.risk.realised import VarianceEwma, ewma_vol, observe, vrp_ratio
from controller.risk.volatility import VolState, smooth

ESTIMATORS = ("implied", "realised", "implied_vrp", "blend")
DAY_S = 86400.0


@dataclass(frozen=True)
class SigmaSettings:
    estimator: str = "implied"
    ewma_half_life_s: float = 6 * 3600.0  # smoothing of the implied component
    realised_half_life_days: float = 3.0
    realised_min_history_days: float = 2.0
    vrp_half_life_days: float = 90.0
    vrp_min_history_days: float = 30.0
    blend_weight: float = 0.5  # weight of realised variance in the blend

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"sigma_estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if not 0.0 <= self.blend_weight <= 1.0:
            raise ValueError(f"blend_weight must be in [0, 1], got {self.blend_weight}")
        if not (self.realised_half_life_days > 0 and self.vrp_half_life_days > 0):
            raise ValueError("the half-lives must be positive")


@dataclass(frozen=True)
class SigmaState:
    """What σ̂ carries from cycle to cycle."""

    implied: VolState = field(default_factory=VolState)
    realised: VarianceEwma = field(default_factory=VarianceEwma)  # short half-life: realised vol
    premium: VarianceEwma = field(default_factory=VarianceEwma)  # long half-life: realised / implied


@dataclass(frozen=True)
class SigmaComponents:
    implied: float | None  # smoothed
    implied_source: str | None  # chain, index or constant
    realised: float | None
    vrp_ratio: float | None
    implied_vrp: float | None
    blend: float | None
    value: float | None  # σ̂, the one the policy uses
    source: str | None  # which gave it: chain, index, constant, realised, implied_vrp, blend, or a fallback


def update(
    state: SigmaState,
    *,
    implied_raw: float | None,
    implied_source: str | None,
    index: float,
    at: datetime,
    settings: SigmaSettings,
) -> tuple[SigmaComponents, SigmaState]:
    """This cycle's components from the implied observation and the index, and the state to carry."""
    implied_state = state.implied
    if implied_raw is not None:
        implied_state = smooth(
            state.implied,
            raw=implied_raw,
            source=implied_source or "",
            at=at,
            half_life_s=settings.ewma_half_life_s,
        )
    implied = implied_state.value if implied_raw is not None else None
    realised_state = observe(
        state.realised, price=index, at=at, half_life_s=settings.realised_half_life_days * DAY_S
    )
    premium_state = observe(
        state.premium, price=index, at=at, half_life_s=settings.vrp_half_life_days * DAY_S, implied=implied
    )
    realised = ewma_vol(realised_state, min_history_days=settings.realised_min_history_days)
    ratio = vrp_ratio(premium_state, min_history_days=settings.vrp_min_history_days)
    implied_vrp = None if implied is None or ratio is None else implied * ratio
    anchor = implied_vrp if implied_vrp is not None else implied
    blend = (
        None
        if realised is None or anchor is None
        else math.sqrt(settings.blend_weight * realised**2 + (1 - settings.blend_weight) * anchor**2)
    )
    value, source = _choose(settings.estimator, implied, implied_source, realised, implied_vrp, blend)
    components = SigmaComponents(implied, implied_source, realised, ratio, implied_vrp, blend, value, source)
    return components, SigmaState(implied_state, realised_state, premium_state)


def _choose(
    estimator: str,
    implied: float | None,
    implied_source: str | None,
    realised: float | None,
    implied_vrp: float | None,
    blend: float | None,
) -> tuple[float | None, str | None]:
    chosen = {"realised": realised, "implied_vrp": implied_vrp, "blend": blend}.get(estimator)
    if estimator != "implied" and chosen is not None:
        return chosen, estimator
    if implied is None:
        return None, None
    label = implied_source or "implied"
    if estimator != "implied":  # a cold start: not enough history for the chosen estimator yet
        label += f" (until {estimator} has history)"
    return implied, label
