"""Vectorised Black-76 implied volatility with a reason code for every element.

Method.  Put-call parity turns every price into the price of the out-of-the-money option
(the in-the-money one minus its intrinsic value), and normalising by ``sqrt(F·K)`` leaves one
equation in the total deviation ``s = vol·sqrt(t)``::

    b(x, s) = exp(x/2)·N(x/s + s/2) - exp(-x/2)·N(x/s - s/2) = beta,   x = -|ln(F/K)| <= 0

``b`` rises from 0 to ``exp(x/2)`` as ``s`` goes from 0 to infinity.  We solve ``ln b(s) = ln
beta`` by Halley's method (cubic convergence) inside a bracket that every step tightens, falling
back to bisection whenever a step would leave the bracket, from a starting point on the right
side of the inflection point ``s_c = sqrt(2|x|)``.  For ``d1 <= 0`` the price is evaluated in the
scaled form ``0.5·exp(-(x²/s² + s²/4)/2)·(erfcx(-d1/√2) - erfcx(-d2/√2))``, so deep
out-of-the-money prices never underflow and their logarithm keeps full relative precision.

Reasons (``IVReason``): a NaN volatility always comes with the reason it does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erfcx, ndtr, ndtri

from pricing._inputs import FloatArray, as_float, as_is_call

_SQRT_HALF = np.sqrt(0.5)
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
_MAX_ITERATIONS = 60
_REL_STEP_TOL = 1e-8  # relative step; Halley is cubic, so the error after it is far smaller


class IVReason(IntEnum):
    """Why an implied volatility is (or is not) available."""

    OK = 0
    INVALID_INPUT = 1  # forward/strike not finite > 0, price NaN or negative, t_years or rate NaN
    EXPIRED = 2  # t_years <= 0: no time left, no volatility to imply
    BELOW_INTRINSIC = 3  # price below the (discounted) intrinsic value
    AT_INTRINSIC = 4  # price equals intrinsic: zero time value, volatility 0 or undetermined
    ABOVE_MAXIMUM = 5  # price at or above the bound (forward for a call, strike for a put)
    NOT_CONVERGED = 6  # the solver ran out of iterations (should not happen; reported if it does)


@dataclass(frozen=True)
class ImpliedVol:
    """Implied volatilities (decimal, NaN where none exists) with a parallel ``reason`` array."""

    vol: FloatArray
    reason: NDArray[np.int8]
    iterations: NDArray[np.int16]

    @property
    def ok(self) -> NDArray[np.bool_]:
        return self.reason == IVReason.OK

    def reason_names(self) -> NDArray[np.str_]:
        names = np.array([r.name for r in IVReason])
        return names[self.reason]

    def counts(self) -> dict[str, int]:
        """Number of elements per reason, e.g. ``{"OK": 305, "AT_INTRINSIC": 5}``."""
        values, counts = np.unique(self.reason, return_counts=True)
        return {IVReason(int(v)).name: int(c) for v, c in zip(values, counts, strict=True)}


def implied_vol(
    *,
    price: ArrayLike,
    forward: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    is_call: ArrayLike,
    rate: ArrayLike = 0.0,
) -> ImpliedVol:
    """Black-76 implied volatility of (discounted) option prices, elementwise.

    Args:
        price: option price in USD per unit of underlying (for a coin-settled Deribit option,
            ``mark_price_in_coin × forward``).
        forward: forward price F in USD; strike: strike K in USD.
        t_years: ACT/365 years to expiry.
        is_call: True for calls, False for puts.
        rate: continuously compounded discount rate (decimal per year).

    Returns an :class:`ImpliedVol` whose ``vol`` is a decimal volatility, NaN wherever the
    ``reason`` is not ``IVReason.OK``.  Never raises for a bad element.
    """
    p, f, k, t, r = np.broadcast_arrays(
        as_float("price", price),
        as_float("forward", forward),
        as_float("strike", strike),
        as_float("t_years", t_years),
        as_float("rate", rate),
    )
    shape = np.broadcast_shapes(p.shape, np.shape(is_call))
    p, f, k, t, r = (np.atleast_1d(np.broadcast_to(a, shape)).ravel() for a in (p, f, k, t, r))
    call = np.atleast_1d(np.broadcast_to(as_is_call(is_call), shape)).ravel()

    vol = np.full(p.shape, np.nan)
    reason = np.full(p.shape, IVReason.OK, dtype=np.int8)
    iterations = np.zeros(p.shape, dtype=np.int16)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        invalid = ~(
            np.isfinite(f)
            & (f > 0)
            & np.isfinite(k)
            & (k > 0)
            & (p >= 0)
            & np.isfinite(p)
            & ~np.isnan(t)
            & np.isfinite(r)
        )
        reason[invalid] = IVReason.INVALID_INPUT
        expired = ~invalid & ~(t > 0)
        reason[expired] = IVReason.EXPIRED

        live = reason == IVReason.OK
        w = np.where(call, 1.0, -1.0)
        forward_price = p * np.exp(r * t)  # undiscounted
        intrinsic = np.maximum(w * (f - k), 0.0)
        time_value = forward_price - intrinsic  # = price of the out-of-the-money option
        x = -np.abs(np.log(f / k))
        beta = time_value / np.sqrt(f * k)

        _classify(live, time_value, intrinsic, np.minimum(f, k), reason)
        solve = reason == IVReason.OK
        s, its, converged = _solve_total_deviation(x[solve], beta[solve])
        vol[solve] = s / np.sqrt(t[solve])
        iterations[solve] = its
        failed = np.flatnonzero(solve)[~converged]
        reason[failed] = IVReason.NOT_CONVERGED
        vol[failed] = np.nan
    return ImpliedVol(vol.reshape(shape), reason.reshape(shape), iterations.reshape(shape))


def _classify(
    live: np.ndarray,
    time_value: FloatArray,
    intrinsic: FloatArray,
    otm_bound: FloatArray,
    reason: NDArray[np.int8],
) -> None:
    """The out-of-the-money option is worth less than min(F, K) (F for a call, K for a put)."""
    # Time value within a few ulps of the intrinsic value is no time value at all.
    at_tolerance = 4.0 * np.finfo(float).eps * np.maximum(intrinsic, 1e-300)
    below = live & (time_value < -at_tolerance)
    at = live & ~below & (time_value <= at_tolerance)
    above = live & ~below & ~at & (time_value >= otm_bound)
    reason[below] = IVReason.BELOW_INTRINSIC
    reason[at] = IVReason.AT_INTRINSIC
    reason[above] = IVReason.ABOVE_MAXIMUM


def _log_price_and_derivatives(
    x: FloatArray, s: FloatArray, e_half: FloatArray, e_minus_half: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``ln b(x, s)`` and its first two derivatives in ``s`` (x <= 0, s > 0).

    ``e_half`` and ``e_minus_half`` are ``exp(x/2)`` and ``exp(-x/2)``, hoisted out of the loop.
    """
    h = x / s
    d1 = h + 0.5 * s
    log_kernel = -0.5 * (h * h + 0.25 * s * s)  # ln(sqrt(2π)·b'(s))
    log_b = np.empty_like(s)
    scaled = d1 <= 0.0
    sc = np.flatnonzero(scaled)
    di = np.flatnonzero(~scaled)
    if sc.size:  # b = 0.5·exp(log_kernel)·(erfcx(-d1/√2) - erfcx(-d2/√2)): no underflow
        d1s = d1[sc]
        bracket = 0.5 * (erfcx(-_SQRT_HALF * d1s) - erfcx(-_SQRT_HALF * (d1s - s[sc])))
        log_b[sc] = log_kernel[sc] + np.log(bracket)
    if di.size:
        d1d = d1[di]
        direct = e_half[di] * ndtr(d1d) - e_minus_half[di] * ndtr(d1d - s[di])
        log_b[di] = np.log(direct)
    ratio = np.exp(log_kernel - _LOG_SQRT_2PI - log_b)  # b'/b, with b'(s) = exp(log_kernel)/√(2π)
    curvature = x * x / (s * s * s) - 0.25 * s  # b''/b'
    return log_b, ratio, ratio * (curvature - ratio)


def _normalised_otm_price(x: FloatArray, s: FloatArray) -> FloatArray:
    return np.exp(0.5 * x) * ndtr(x / s + 0.5 * s) - np.exp(-0.5 * x) * ndtr(x / s - 0.5 * s)


def _tail_guess(x: FloatArray, beta: FloatArray) -> FloatArray:
    """Invert the Mills-ratio asymptote ``ln b ≈ -x²/(2s²) + 3 ln s - 2 ln|x| - ln sqrt(2π)``."""
    log_beta = np.log(np.maximum(beta, 1e-300))
    abs_x = np.maximum(-x, 1e-300)
    s = abs_x / np.sqrt(np.maximum(-2.0 * log_beta, 1e-300))
    for _ in range(3):  # fixed point: the log terms move slowly with s
        rhs = 3.0 * np.log(s) - 2.0 * np.log(abs_x) - _LOG_SQRT_2PI - log_beta
        s = abs_x / np.sqrt(np.maximum(2.0 * rhs, 1e-300))
    return s


def _initial_guess(x: FloatArray, beta: FloatArray) -> FloatArray:
    """A starting ``s`` within a few Halley steps of the root, from two asymptotic branches."""
    s_c = np.sqrt(-2.0 * x)  # inflection point of b in s (vega is largest there)
    safe_s_c = np.where(s_c > 0, s_c, 1.0)
    b_c = np.where(s_c > 0, _normalised_otm_price(x, safe_s_c), 0.0)
    # at the money b = 2N(s/2) - 1 exactly, and b(x, s) <= b(0, s): a lower bound for s
    at_the_money = 2.0 * ndtri(0.5 * (1.0 + beta))
    # lower branch: the tail asymptote where it is below the inflection point, else the
    # at-the-money bound (an underestimate, from which Newton on the concave ln b climbs)
    tail = _tail_guess(x, beta)
    lower = np.where(tail < s_c, np.maximum(tail, at_the_money), at_the_money)
    # upper branch: b_max - b ≈ (e^{x/2} + e^{-x/2})·N(-s/2) for large s
    gap = np.exp(0.5 * x) - beta
    upper = -2.0 * ndtri(np.clip(gap / (np.exp(0.5 * x) + np.exp(-0.5 * x)), 1e-300, 0.5))
    guess = np.where(beta < b_c, lower, np.maximum(upper, s_c))
    return np.where(np.isfinite(guess) & (guess > 0), guess, np.maximum(s_c, 0.5))


def _solve_total_deviation(
    x: FloatArray, beta: FloatArray
) -> tuple[FloatArray, NDArray[np.int16], NDArray[np.bool_]]:
    """Solve b(x, s) = beta for s; returns (s, iterations, converged)."""
    n = x.size
    s = _initial_guess(x, beta)
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    target = np.log(beta)
    iterations = np.zeros(n, dtype=np.int16)
    converged = np.zeros(n, dtype=bool)
    last_step = np.full(n, np.inf)
    step_before = np.full(n, np.inf)
    e_half, e_minus_half = np.exp(0.5 * x), np.exp(-0.5 * x)
    active = np.arange(n)
    for _ in range(_MAX_ITERATIONS):
        if active.size == 0:
            break
        xa, sa = x[active], s[active]
        log_b, d1f, d2f = _log_price_and_derivatives(xa, sa, e_half[active], e_minus_half[active])
        fval = log_b - target[active]
        lo_a = np.where(fval < 0, sa, lo[active])
        hi_a = np.where(fval > 0, sa, hi[active])
        newton = fval / d1f
        step = newton / (1.0 - 0.5 * newton * d2f / d1f)  # Halley
        step = np.where(np.isfinite(step), step, newton)
        proposal = sa - step
        # bisect when the step leaves the bracket or fails to halve two steps on (as in rtsafe)
        slow = np.abs(step) > 0.5 * step_before[active]
        outside = ~((proposal > lo_a) & (proposal < hi_a)) | slow
        bisect = np.where(np.isinf(hi_a), 2.0 * sa, np.where(lo_a > 0, np.sqrt(lo_a * hi_a), 0.5 * hi_a))
        # converged when the raw step is below tolerance, before any bracket test: a step
        # that rounds to nothing would otherwise sit on the bracket edge and be "bisected"
        done = (np.abs(step) <= _REL_STEP_TOL * sa) | (fval == 0.0)
        s_new = np.where(done, np.where(fval == 0.0, sa, proposal), np.where(outside, bisect, proposal))
        step_before[active] = last_step[active]
        last_step[active] = np.abs(s_new - sa)
        s[active] = s_new
        lo[active], hi[active] = lo_a, hi_a
        iterations[active] += 1
        converged[active[done]] = True
        active = active[~done]
    return s, iterations, converged


__all__ = ["IVReason", "ImpliedVol", "implied_vol"]
