"""Black-76 prices and greeks, vectorised over numpy arrays.

Conventions (DESIGN §2, Deribit's): the model is Black-76 on the forward ``F`` (for Deribit
options the ``underlying_price``: the dated future or the synthetic ``SYN.*`` future), with a
continuously compounded ``rate`` that is zero unless configured.  Time is ACT/365 in years.

Units of the result, all per one unit of underlying (one coin):

* ``price`` – USD (the quote currency of ``forward`` and ``strike``);
* ``delta`` – dV/dF, dimensionless (Black delta ``df·N(d1)`` for calls, ``df·(N(d1) - 1)`` for puts);
* ``gamma`` – d²V/dF², per USD of underlying;
* ``vega``  – USD per volatility point (0.01 of volatility);
* ``theta`` – USD per calendar day (the change of value as one day of the 365-day year passes);
* ``vanna`` – change of ``delta`` per volatility point;
* ``volga`` – change of ``vega`` (USD per vol point) per volatility point.

Degenerate and invalid inputs follow one documented rule:

* **no diffusion left** — ``t_years <= 0`` (expired) or ``vol == 0``: the option is worth its
  discounted intrinsic value; delta is ``±df`` in the money, 0 out of the money and ``±df/2`` exactly
  at the money (the limit of N(d1)); gamma, vega, theta, vanna and volga are 0.  An expired option
  is not discounted (df = 1).
* **invalid** — ``forward`` or ``strike`` not a finite positive number, ``vol`` negative, infinite
  or NaN, ``t_years`` NaN or +inf, ``rate`` not finite: with ``invalid="nan"`` (default) every field
  of that element is NaN, so one bad quote in a chain cannot poison the rest and can never pass
  for a number; with ``invalid="raise"`` an :class:`InvalidInputError` names the field and index.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from pricing._inputs import (
    FloatArray,
    InvalidInputError,
    InvalidPolicy,
    as_float,
    as_is_call,
    describe_first_invalid,
)

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_BLOCK = 16_384  # elements per block: the temporaries of one block stay in cache
_PARALLEL_MIN_SIZE = 8 * _BLOCK
_POOL: ThreadPoolExecutor | None = None


def _default_threads() -> int:
    configured = os.environ.get("LEVCTL_PRICING_THREADS", "").strip()
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    return min(os.cpu_count() or 1, 4)


_WORKERS = _default_threads()


def set_threads(count: int) -> int:
    """Threads used by :func:`greeks` on large inputs (>= 131,072 elements); returns the old count.

    The default is ``LEVCTL_PRICING_THREADS`` or the number of cores (at most 4).  Results are
    bit-identical whatever the count: the kernel is elementwise.
    """
    global _WORKERS, _POOL
    if count < 1:
        raise ValueError("thread count must be >= 1")
    previous, _WORKERS = _WORKERS, int(count)
    if _POOL is not None:
        _POOL.shutdown(wait=True)
        _POOL = None
    return previous


DAYS_PER_YEAR = 365.0
VOL_POINT = 0.01


@dataclass(frozen=True)
class Greeks:
    """Black-76 value and sensitivities per unit of underlying; units in the module docstring."""

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    vanna: FloatArray
    volga: FloatArray


def greeks(
    *,
    forward: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
    rate: ArrayLike = 0.0,
    invalid: InvalidPolicy = "nan",
) -> Greeks:
    """Black-76 price and greeks in one pass that shares d1, d2 and the normal density.

    Args:
        forward: forward price F, USD per unit of underlying (> 0).
        strike: strike K, USD (> 0).
        t_years: time to expiry, ACT/365 years; ``<= 0`` means expired (intrinsic value).
        vol: Black volatility as a decimal (0.6127 for 61.27 %), ``>= 0``.
        is_call: True for a call, False for a put.
        rate: continuously compounded discount rate, decimal per year (0 for Deribit).
        invalid: ``"nan"`` to give NaN for invalid elements, ``"raise"`` to raise.

    All array arguments broadcast together; the result fields have the broadcast shape.
    """
    raw, call, shape = black_inputs(
        forward=forward, strike=strike, t_years=t_years, vol=vol, is_call=is_call, rate=rate
    )
    # validity is checked on each input at its own size: a broadcast scalar costs nothing
    bad = _invalid_mask(raw, shape, invalid)
    f, k, t, v = (_full(raw[n], shape) for n in ("forward", "strike", "t_years", "vol"))
    signs = np.where(call, 1.0, -1.0)  # +1 call, -1 put: price = w·df·(F·N(w·d1) - K·N(w·d2))
    w: FloatArray | float = float(signs) if signs.ndim == 0 else _full(signs, shape)
    rate_values = raw["rate"]
    r = None if not rate_values.any() else _full(rate_values, shape)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        fields, no_diffusion = _evaluate(f, k, t, v, w, r)
        if bad is not None:
            no_diffusion &= ~bad
        if no_diffusion.any():
            _set_intrinsic(no_diffusion, f, k, t, np.broadcast_to(w, f.shape), r, fields)
    if bad is not None:
        for field in fields:
            field[bad] = np.nan
    return Greeks(*(a.reshape(shape) for a in fields))


def black_inputs(
    *,
    forward: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
    rate: ArrayLike,
) -> tuple[dict[str, FloatArray], np.ndarray, tuple[int, ...]]:
    """The numeric inputs as float arrays by name, ``is_call`` as booleans, and their broadcast shape."""
    raw = {
        "forward": as_float("forward", forward),
        "strike": as_float("strike", strike),
        "t_years": as_float("t_years", t_years),
        "vol": as_float("vol", vol),
        "rate": as_float("rate", rate),
    }
    call = as_is_call(is_call)
    return raw, call, np.broadcast_shapes(*(a.shape for a in raw.values()), call.shape)


def _full(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` in the broadcast shape, at least 1-D (a view; no work when it has that shape already)."""
    return np.atleast_1d(a if a.shape == shape else np.broadcast_to(a, shape))


def _evaluate(
    f: FloatArray, k: FloatArray, t: FloatArray, v: FloatArray, w: FloatArray | float, r: FloatArray | None
) -> tuple[tuple[FloatArray, ...], np.ndarray]:
    """Run the kernel whole, or in cache-sized blocks on a few threads for large inputs.

    The kernel is elementwise, so blocked results are bit-identical to whole-array ones; numpy
    and scipy release the GIL inside their loops, so two cores give nearly twice the throughput.
    """
    n = f.size
    if n < _PARALLEL_MIN_SIZE or _WORKERS < 2:
        return _kernel(f, k, t, v, w, r)
    shape = f.shape
    f, k, t, v = (a.ravel() for a in (f, k, t, v))
    w_flat = w if isinstance(w, float) else w.ravel()
    r_flat = None if r is None else r.ravel()
    fields = tuple(np.empty(n) for _ in range(7))
    no_diffusion = np.empty(n, dtype=bool)

    def block(start: int) -> None:
        sl = slice(start, start + _BLOCK)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            part, flat = _kernel(
                f[sl],
                k[sl],
                t[sl],
                v[sl],
                w_flat if isinstance(w_flat, float) else w_flat[sl],
                None if r_flat is None else r_flat[sl],
            )
        for out, values in zip(fields, part, strict=True):
            out[sl] = values
        no_diffusion[sl] = flat

    list(_executor().map(block, range(0, n, _BLOCK)))
    return tuple(a.reshape(shape) for a in fields), no_diffusion.reshape(shape)


def _executor() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="levctl-pricing")
    return _POOL


def _kernel(
    f: FloatArray, k: FloatArray, t: FloatArray, v: FloatArray, w: FloatArray | float, r: FloatArray | None
) -> tuple[tuple[FloatArray, ...], np.ndarray]:
    """Price and greeks with in-place arithmetic (each temporary is one allocation of N doubles)."""
    t_live = np.maximum(t, 0.0)
    sqrt_t = np.sqrt(t_live)
    s = v * sqrt_t  # total standard deviation sigma·sqrt(t)
    d1 = np.divide(f, k)
    np.log(d1, out=d1)
    d1 /= s
    half_s = s * 0.5
    d1 += half_s
    d2 = d1 - s
    n_w1 = ndtr(d1 * w)
    n_w2 = ndtr(d2 * w)
    pdf = d1 * d1
    pdf *= -0.5
    np.exp(pdf, out=pdf)
    pdf *= _INV_SQRT_2PI

    price = f * n_w1
    n_w2 *= k
    price -= n_w2
    price *= w
    delta = n_w1
    delta *= w
    gamma = f * s
    np.divide(pdf, gamma, out=gamma)
    vega = f * pdf
    vega *= sqrt_t  # per 1.0 of volatility, for now
    theta = vega * v
    theta /= t_live
    theta *= -0.5 / DAYS_PER_YEAR
    vanna = pdf * d2
    vanna /= v
    vanna *= -VOL_POINT
    vega *= VOL_POINT
    volga = vega * d1
    volga *= d2
    volga /= v
    volga *= VOL_POINT
    if r is not None:
        df = np.exp(-r * t_live)
        for field in (price, delta, gamma, vega, vanna, volga, theta):
            field *= df
        theta += r * price / DAYS_PER_YEAR
    return (price, delta, gamma, vega, theta, vanna, volga), ~(s > 0.0)


def black_price(
    *,
    forward: ArrayLike,
    strike: ArrayLike,
    t_years: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
    rate: ArrayLike = 0.0,
) -> FloatArray:
    """Black-76 price only (USD per unit), with the same rules as :func:`greeks`."""
    return greeks(forward=forward, strike=strike, t_years=t_years, vol=vol, is_call=is_call, rate=rate).price


_RULES = {
    "forward": ("must be finite and > 0", lambda a: ~((a > 0.0) & (a < np.inf))),
    "strike": ("must be finite and > 0", lambda a: ~((a > 0.0) & (a < np.inf))),
    "t_years": ("must not be NaN or +inf", lambda a: ~(a < np.inf)),
    "vol": ("must be finite and >= 0", lambda a: ~((a >= 0.0) & (a < np.inf))),
    "rate": ("must be finite", lambda a: ~np.isfinite(a)),
}


def _invalid_mask(
    raw: dict[str, FloatArray], shape: tuple[int, ...], policy: InvalidPolicy
) -> np.ndarray | None:
    """Elements with an invalid input, in the broadcast shape; None when every input is valid."""
    if policy not in ("nan", "raise"):
        raise InvalidInputError(f"invalid must be 'nan' or 'raise', got {policy!r}")
    if _all_valid(raw):
        return None
    checks = {f"{name} ({rule})": test(raw[name]) for name, (rule, test) in _RULES.items()}
    failing = {label: mask for label, mask in checks.items() if mask.any()}
    if not failing:
        return None
    if policy == "raise":
        raise InvalidInputError(f"invalid Black-76 input: {describe_first_invalid(failing)}")
    bad = np.zeros(shape if shape else (1,), dtype=bool)
    for mask in failing.values():
        bad |= np.broadcast_to(mask, shape) if shape else mask
    return bad


def _all_valid(raw: dict[str, FloatArray]) -> bool:
    """Every rule of :data:`_RULES` holds, by a few reductions (min and max propagate NaN, which
    fails every comparison): the common case costs no masks."""
    f, k, t, v, r = raw["forward"], raw["strike"], raw["t_years"], raw["vol"], raw["rate"]
    if f.size == 0 or k.size == 0 or t.size == 0 or v.size == 0 or r.size == 0:
        return True
    return bool(
        f.min() > 0.0
        and f.max() < np.inf
        and k.min() > 0.0
        and k.max() < np.inf
        and v.min() >= 0.0
        and v.max() < np.inf
        and t.max() < np.inf
        and np.isfinite(r.min())
        and np.isfinite(r.max())
    )


def _set_intrinsic(
    mask: np.ndarray,
    f: FloatArray,
    k: FloatArray,
    t: FloatArray,
    w: FloatArray,
    r: FloatArray | None,
    fields: tuple[FloatArray, ...],
) -> None:
    price, delta, *zeroed = fields
    df = 1.0 if r is None else np.exp(-r[mask] * np.maximum(t[mask], 0.0))
    moneyness = w[mask] * (f[mask] - k[mask])
    price[mask] = df * np.maximum(moneyness, 0.0)
    step = np.where(moneyness > 0.0, 1.0, np.where(moneyness == 0.0, 0.5, 0.0))
    delta[mask] = w[mask] * df * step
    for field in zeroed:
        field[mask] = 0.0


__all__ = [
    "DAYS_PER_YEAR",
    "VOL_POINT",
    "Greeks",
    "InvalidInputError",
    "black_price",
    "greeks",
    "set_threads",
]
