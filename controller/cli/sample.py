"""A built-in sample portfolio: a coin-margined BTC account with options and a perpetual hedge.

Deterministic (a fixed valuation time and fixed marks), so ``levctl run`` shows the same book on
every machine with no account and no network.  Marks are Black-76 prices at a smile of mark IVs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from pricing import Option, Position, black_price, parse_deribit_name, year_fraction

SAMPLE_AS_OF = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
SAMPLE_INDEX = 91_850.0
_FORWARDS = {"25DEC26": 92_310.0, "26MAR27": 93_720.0}
_ATM_IV = {"25DEC26": 0.52, "26MAR27": 0.55}
_BOOK = [  # name, size (coin for options, USD for the inverse perpetual)
    ("BTC-25DEC26-100000-C", -6.0),
    ("BTC-25DEC26-85000-P", 4.0),
    ("BTC-26MAR27-90000-C", 2.5),
    ("BTC-26MAR27-70000-P", -3.0),
    ("BTC-PERPETUAL", -180_000.0),
]


@dataclass(frozen=True)
class SampleAccount:
    as_of: datetime
    index_prices: dict[str, float]
    collateral: dict[str, float]
    positions: tuple[Position, ...]


def smile_iv(*, atm_iv: float, forward: float, strike: float) -> float:
    """A plain skewed smile: puts richer than calls, curvature away from the money."""
    k = np.log(strike / forward)
    return float(atm_iv * (1.0 - 0.35 * k + 0.9 * k * k))


def sample_account() -> SampleAccount:
    positions = []
    for name, size in _BOOK:
        inst = parse_deribit_name(name)
        if not isinstance(inst, Option):
            positions.append(Position(inst, size, mark_price=SAMPLE_INDEX * 1.0003))
            continue
        code = name.split("-")[1]
        forward = _FORWARDS[code]
        iv = smile_iv(atm_iv=_ATM_IV[code], forward=forward, strike=inst.strike)
        t = year_fraction(start=SAMPLE_AS_OF, end=inst.expiry)
        usd = float(black_price(forward=forward, strike=inst.strike, t_years=t, vol=iv, is_call=inst.is_call))
        positions.append(Position(inst, size, mark_price=usd / forward, underlying_price=forward, mark_iv=iv))
    return SampleAccount(
        as_of=SAMPLE_AS_OF,
        index_prices={"BTC": SAMPLE_INDEX},
        collateral={"BTC": 12.0},
        positions=tuple(positions),
    )
