"""Realised volatility of a path: the one estimator of the product (pure numerics).

``σ² = Σ rᵢ² / Σ Δtᵢ`` with ``rᵢ = ln(Sᵢ / Sᵢ₋₁)`` and ``Δtᵢ`` in years (ACT/365): no mean removed (over
a day the drift is noise), and a gap counts at its true length.  The controller's σ̂ sources, the
replay's figures and the report's summary all use it (``controller.risk.realised`` re-exports it).
"""

from __future__ import annotations

import math

import numpy as np

YEAR_S = 365.0 * 86400.0


def realised_vol(times_s: np.ndarray, values: np.ndarray, *, window_s: float | None = None) -> float | None:
    """Annualised realised volatility of ``values`` (positive) at ``times_s`` (epoch seconds, increasing).

    ``window_s`` keeps only returns ending in the trailing window.  None with fewer than two returns.
    """
    times_s, values = np.asarray(times_s, dtype=float), np.asarray(values, dtype=float)
    if times_s.size < 3 or not np.all(values > 0):
        return None
    r = np.diff(np.log(values))
    dt = np.diff(times_s) / YEAR_S
    if window_s is not None:
        keep = times_s[1:] > times_s[-1] - window_s
        r, dt = r[keep], dt[keep]
    total = float(np.sum(dt))
    return math.sqrt(float(np.sum(r * r)) / total) if r.size >= 2 and total > 0 else None
