"""Stochastic-volatility paths of several currencies whose shocks are correlated (BTC and ETH).

Each currency keeps its own :class:`CorrelatedPath` (a :class:`~controller.sim.market.MarketPath`
on the same grid as :class:`~controller.sim.market.StochasticVolPath`, with the same model and the
currency's own parameters), so an engine reads it as it reads a single-currency path.  One seeded
generator, :class:`CorrelatedVolPaths`, draws every currency's shocks together a chunk at a time,
so the market at a time depends on the seed and the time only, not on which currency asked first.

Every shock of one currency has correlation ``rho`` with the same shock of another: the index
shocks ``z1``, the volatility's own shocks (so ``z2 = ρ_c z1 + √(1 − ρ_c²) w`` keeps each currency's
leverage effect ``ρ_c`` and the two volatilities move together as the prices do), the premium's
shocks, and the jumps (a Gaussian copula: a jump happens when a correlated normal falls below
``Φ⁻¹(λ dt)``; its size is ``μ_J + s_J ·`` another correlated normal).  One common factor ``m`` per
shock: ``z_c = a_c m + √(1 − |ρ|) e_c`` with ``a_c = √|ρ|`` (the second currency's sign is
``ρ``'s, so a negative ``rho`` needs exactly two currencies).  ``rho = 1`` gives identical shocks,
``rho = 0`` independent ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from statistics import NormalDist

import numpy as np

from controller.sim.market import SECONDS_PER_YEAR, GridPath, StochasticVolParams, integrate_steps

DEFAULT_RHO = 0.8  # BTC/ETH: the correlation of their daily log returns has run near 0.8
SHOCKS = ("index", "vol", "funding", "jump", "jump_size")


class CorrelatedPath(GridPath):
    """One currency's path; its generator extends every currency's path together."""

    def __init__(self, generator: CorrelatedVolPaths, currency: str, params: StochasticVolParams) -> None:
        self._begin(generator.start, params)
        self.currency = currency
        self._generator = generator

    def _extend(self) -> None:
        self._generator.extend()


class CorrelatedVolPaths:
    """Seeded, lazily extended paths of several currencies on one grid, their shocks correlated."""

    _CHUNK = 4096

    def __init__(
        self,
        *,
        seed: int,
        start: datetime,
        params: Mapping[str, StochasticVolParams],
        rho: float,
    ) -> None:
        if not params:
            raise ValueError("correlated paths need at least one currency")
        if not -1.0 <= rho <= 1.0:
            raise ValueError(f"rho must lie in [-1, 1], not {rho}")
        if rho < 0.0 and len(params) != 2:
            raise ValueError("a negative rho needs exactly two currencies")
        if len({p.step_s for p in params.values()}) != 1:
            raise ValueError("the currencies' paths must share one grid (step_s)")
        self.start = start
        self.rho = rho
        self._rng = np.random.default_rng(seed)
        self.paths = {c: CorrelatedPath(self, c, p) for c, p in params.items()}
        signs = [1.0] + [math.copysign(1.0, rho)] * (len(params) - 1)
        self._loadings = np.array(signs) * math.sqrt(abs(rho))
        self._own = math.sqrt(1.0 - abs(rho))

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(self.paths)

    def path(self, currency: str) -> CorrelatedPath:
        return self.paths[currency]

    def shocks(self, n: int) -> np.ndarray:
        """The next ``n`` steps' normal shocks, ``[shock, currency, step]`` (the order of ``SHOCKS``)."""
        k = len(self.paths)
        draws = self._rng.standard_normal((len(SHOCKS), k + 1, n))  # row 0: the common factor
        return self._loadings[None, :, None] * draws[:, :1, :] + self._own * draws[:, 1:, :]

    def extend(self) -> None:
        """One more chunk of steps for every currency."""
        z = self.shocks(self._CHUNK)
        for c, path in enumerate(self.paths.values()):
            p = path.params
            z_vol = p.rho * z[0, c] + math.sqrt(1.0 - p.rho**2) * z[1, c]
            jumps = z[3, c] < _normal_quantile(p.jump_intensity * p.step_s / SECONDS_PER_YEAR)
            jump_sizes = np.where(jumps, p.jump_mean + p.jump_std * z[4, c], 0.0)
            path._append(
                *integrate_steps(
                    p,
                    last=(path._log_s[-1], path._log_v[-1], path._funding[-1]),
                    z_index=z[0, c],
                    z_vol=z_vol,
                    z_funding=z[2, c],
                    jump_sizes=jump_sizes,
                )
            )


def _normal_quantile(probability: float) -> float:
    if probability <= 0.0:
        return -math.inf
    if probability >= 1.0:
        return math.inf
    return NormalDist().inv_cdf(probability)
