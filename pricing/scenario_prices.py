"""Black-76 prices of one set of options under many scenarios: price only, inputs validated once.

A risk engine revalues the same options over and over: a scenario grid, stressed moves, a search
for the liquidation point.  :class:`ScenarioPricer` checks the options once when it is built, keeps
``ln(F/K)``, ``σ·√t``, the signs and the discount factors, and then prices a whole grid of scenarios
in one vectorised pass with nothing but the price's own arithmetic (no greeks, no broadcasting or
validation per call).  Scenario ``i`` multiplies every forward by ``forward_factor[i]`` and every
volatility by ``vol_factor[i]`` — or, with a 2-D ``vol_factor`` of shape (scenarios, options), option
``j``'s volatility by ``vol_factor[i, j]`` (a shock that depends on the option, e.g. on its tenor as
in Deribit's portfolio margin); time does not pass.

Conventions and units are those of :mod:`pricing.black76` (DESIGN §2): forward and strike in USD,
time in ACT/365 years, volatility and rate as decimals, prices in USD per unit of underlying.  The
same rules hold for degenerate inputs: with no diffusion left (expired, zero volatility, or a
scenario that scales the volatility to zero) an option is worth its intrinsic value, discounted
unless expired.  Prices agree with :func:`pricing.black76.black_price` of the shocked inputs to
rounding (``ln(F·m/K)`` is computed as ``ln(F/K) + ln(m)``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from pricing._inputs import FloatArray, InvalidInputError
from pricing.black76 import _invalid_mask, black_inputs


class ScenarioPricer:
    """Options ready to be priced under scenarios (all inputs 1-D, or scalars broadcast to them).

    Args:
        forward: forward F, USD per unit (finite, > 0).
        strike: strike K, USD (finite, > 0).
        t_years: time to expiry, ACT/365 years; ``<= 0`` is expired.
        vol: Black volatility, decimal (finite, >= 0).
        is_call: True for a call, False for a put.
        rate: continuously compounded discount rate, decimal per year (finite).

    Raises :class:`~pricing.InvalidInputError` naming the first invalid field and element.
    """

    def __init__(
        self,
        *,
        forward: ArrayLike,
        strike: ArrayLike,
        t_years: ArrayLike,
        vol: ArrayLike,
        is_call: ArrayLike,
        rate: ArrayLike = 0.0,
    ) -> None:
        raw, call, shape = black_inputs(
            forward=forward, strike=strike, t_years=t_years, vol=vol, is_call=is_call, rate=rate
        )
        if len(shape) > 1:
            raise InvalidInputError(f"ScenarioPricer takes 1-D inputs, got shape {shape}")
        _invalid_mask(raw, shape, "raise")
        size = shape[0] if shape else 1

        def column(a: np.ndarray) -> np.ndarray:
            return np.array(np.broadcast_to(a, (size,)), dtype=float)

        f, k, t, v, r = (column(raw[n]) for n in ("forward", "strike", "t_years", "vol", "rate"))
        w = np.where(np.broadcast_to(call, (size,)), 1.0, -1.0)
        t_live = np.maximum(t, 0.0)
        self.size = size
        self._log_fk = np.log(f / k)
        self._sd = v * np.sqrt(t_live)  # total standard deviation σ·√t
        self._w = w
        self._w_forward = w * f
        self._w_strike = w * k
        self._df = None if not r.any() else np.exp(-r * t_live)  # expired: exp(0) = 1, undiscounted
        self._dead = not bool((self._sd > 0.0).all())

    def prices(self, *, forward_factor: ArrayLike, vol_factor: ArrayLike) -> FloatArray:
        """USD prices, shape ``(scenarios, options)``.

        ``forward_factor`` is 1-D (one per scenario, or a scalar), finite and > 0 (a move of −100 %
        or beyond has no forward).  ``vol_factor`` (σ'/σ, finite and >= 0) is 1-D of the same length
        (one per scenario, every option alike) or a scalar, or 2-D of shape (scenarios, options):
        one per scenario and option.
        """
        ff = np.atleast_1d(np.asarray(forward_factor, dtype=float))
        vf = np.atleast_1d(np.asarray(vol_factor, dtype=float))
        if ff.ndim != 1 or vf.ndim > 2:
            raise InvalidInputError("forward factors must be 1-D, vol factors 1-D or (scenarios, options)")
        if vf.ndim == 2:
            try:
                rows = np.broadcast_shapes(ff.shape, vf.shape[:1])
            except ValueError:
                rows = ()
            if vf.shape[1] != self.size or not rows:
                raise InvalidInputError(
                    f"vol factors of shape {vf.shape} do not fit {ff.size} scenarios × {self.size} options"
                )
            ff, vf = np.broadcast_to(ff, rows), np.broadcast_to(vf, (*rows, self.size))
        else:
            ff, vf = np.broadcast_arrays(ff, vf)
        if not ((ff > 0.0) & (ff < np.inf)).all() or not ((vf >= 0.0) & (vf < np.inf)).all():
            raise InvalidInputError("forward factors must be finite and > 0, vol factors finite and >= 0")
        return self.prices_of_valid(ff, vf)

    def prices_of_valid(self, forward_factor: FloatArray, vol_factor: FloatArray | None) -> FloatArray:
        """:meth:`prices` for factors the caller has already checked: forward factors a 1-D float
        array, finite and > 0; vol factors finite and >= 0, a 1-D array of the same length, a 2-D one
        of shape (scenarios, options), or None for volatility unchanged (a search's inner loop)."""
        ff, vf = forward_factor, vol_factor
        if vf is None:
            sd = self._sd
        elif vf.ndim == 2:
            sd = vf * self._sd
        else:
            sd = np.multiply.outer(vf, self._sd)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            d1 = np.add.outer(np.log(ff), self._log_fk)
            d1 /= sd
            d1 += 0.5 * sd
            d2 = d1 - sd
            d1 *= self._w
            d2 *= self._w
            n1 = ndtr(d1, out=d1)  # N(w·d1)
            n2 = ndtr(d2, out=d2)  # N(w·d2)
        price = np.multiply.outer(ff, self._w_forward)
        price *= n1
        n2 *= self._w_strike
        price -= n2
        if self._dead or (vf is not None and not (vf > 0.0).all()):
            flat = np.broadcast_to(~(sd > 0.0), price.shape)
            if flat.any():
                intrinsic = np.multiply.outer(ff, self._w_forward) - self._w_strike
                price[flat] = np.maximum(intrinsic[flat], 0.0)
        if self._df is not None:
            price *= self._df
        return price


__all__ = ["ScenarioPricer"]
