"""An option's forward and mark IV from the lines Deribit actually sends.

Deribit's positions carry neither (``private/get_positions``: no ``mark_iv``, no
``underlying_price`` in the schema, tests/fixtures/deribit/FINDINGS.md §1).  They are on:

* the option's line of ``public/get_book_summary_by_currency``: ``underlying_price`` always, and
  ``mark_iv`` only sometimes (the schema lists it, not required; the four published option lines
  lack it);
* its ``public/ticker``: both, always.

When a line has the forward and the mark price but no ``mark_iv``, the mark IV is the Black-76
volatility that reprices the mark: Deribit computes ``mark_price`` from ``mark_iv`` on that forward
(coin-settled: ``mark_price_in_coin × forward`` is the USD price, DESIGN §2), so inverting it gives
Deribit's mark IV back, up to the difference between its clock and the line's timestamp.  No extra
request is needed for such a line; only an option missing from the book summary needs its ticker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from controller.venues.errors import MalformedReplyError
from pricing import IVReason, Option, implied_vol, year_fraction

Json = Mapping[str, Any]


def has_option_marks(line: Json | None) -> bool:
    """Does this line give the forward and, directly or through its mark price, the mark IV?"""
    if line is None or line.get("underlying_price") is None:
        return False
    return line.get("mark_iv") is not None or line.get("mark_price") is not None


def implied_mark_ivs(
    options: Sequence[Option],
    *,
    mark_coin: Sequence[float],
    forward: Sequence[float],
    as_of: Sequence[datetime],
    inverse: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Mark IVs (decimal) implied by mark prices, with the :class:`~pricing.IVReason` of each.

    ``mark_coin`` is the mark in coin for coin-settled options (USD price = mark × forward), in USD
    otherwise.  An expired option gets 0 (it is worth its intrinsic value whatever the volatility).
    """
    f = np.asarray(forward, dtype=float)
    price = np.asarray(mark_coin, dtype=float) * (f if inverse else 1.0)
    t = np.array([year_fraction(start=a, end=o.expiry) for o, a in zip(options, as_of, strict=True)])
    result = implied_vol(
        price=price,
        forward=f,
        strike=np.array([o.strike for o in options], dtype=float),
        t_years=t,
        is_call=np.array([o.is_call for o in options], dtype=bool),
    )
    vol = np.where(result.reason == IVReason.EXPIRED, 0.0, result.vol)
    reason = np.where(result.reason == IVReason.EXPIRED, IVReason.OK, result.reason)
    return vol, reason


def mark_iv_from_price(option: Option, *, mark_coin: float, forward: float, as_of: datetime) -> float:
    """One option's implied mark IV, or :class:`MalformedReplyError` naming why there is none."""
    vol, reason = implied_mark_ivs([option], mark_coin=[mark_coin], forward=[forward], as_of=[as_of])
    if reason[0] != IVReason.OK:
        raise MalformedReplyError(
            f"exchange reply: {option.name} has no mark_iv and its mark_price {mark_coin!r} at "
            f"underlying_price {forward!r} implies none ({IVReason(int(reason[0])).name})"
        )
    return float(vol[0])
