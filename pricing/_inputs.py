"""Input normalisation shared by the pricing kernels (broadcasting and validity rules)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
InvalidPolicy = Literal["nan", "raise"]


class InvalidInputError(ValueError):
    """An input to a pricing function is outside its domain (and the policy is ``"raise"``)."""


def as_float(name: str, value: ArrayLike) -> FloatArray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numeric, got {value!r}") from exc


def as_is_call(value: ArrayLike) -> BoolArray:
    """Accept booleans (True = call), or 0/1; anything else is an error, never a guess."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iu" and np.isin(arr, (0, 1)).all():
        return arr.astype(np.bool_)
    raise InvalidInputError(
        f"is_call must be boolean (True for a call, False for a put), got dtype {arr.dtype}"
    )


def describe_first_invalid(checks: dict[str, BoolArray]) -> str:
    """Name the first failing field and element, for ``invalid="raise"`` messages."""
    for name, bad in checks.items():
        if bad.any():
            where = np.argwhere(bad)[0]
            index = tuple(int(i) for i in where)
            count = int(bad.sum())
            place = f" at index {index[0] if len(index) == 1 else index}" if index else ""
            return f"{name}{place} ({count} element{'s' if count != 1 else ''} in all)"
    return "unknown input"
