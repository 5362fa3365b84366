"""Positions of a coin-margined account: netting, average prices and P&L in coin.

Inverse futures and the perpetual (``size`` in USD, prices in USD)::

    unrealised = size · (1/avg − 1/mark)          realised on closing c USD at P: c · (1/avg − 1/P)
    avg after adding d USD at P: (|q| + |d|) / (|q|/avg + |d|/P)         (harmonic, as Deribit)

Coin-settled options (``size`` in coin, prices in coin per unit)::

    value = size · mark        unrealised = size · (mark − avg)
    realised on closing c coin at P: c · (P − avg) for a long, c · (avg − P) for a short
    avg after adding: the size-weighted arithmetic mean

The premium of an option trade moves the cash balance (``−signed_amount × price``); realised
futures P&L, funding and fees move it too.  Equity = balance + futures' unrealised P&L + options'
value, so that ``equity − start = realised + unrealised + funding − fees`` holds by construction
of two independent ledgers (the balance, and the P&L components), which the tests compare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class PositionBook:
    """One instrument's position in an account (mutable, owned by the engine)."""

    name: str
    is_option: bool
    size: float = 0.0
    average_price: float = 0.0
    realised_pnl: float = 0.0
    funding: float = 0.0  # received (+) or paid (−) in coin

    def unrealised(self, mark: float) -> float:
        if self.size == 0.0:
            return 0.0
        if self.is_option:
            return self.size * (mark - self.average_price)
        return self.size * (1.0 / self.average_price - 1.0 / mark)

    def value(self, mark: float) -> float:
        """What the position adds to equity beyond the cash balance."""
        return self.size * mark if self.is_option else self.unrealised(mark)

    def apply_fill(self, signed_amount: float, price: float) -> float:
        """Net a fill into the position; returns the realised P&L of the closed part (coin)."""
        realised = 0.0
        if self.size != 0.0 and math.copysign(1.0, signed_amount) != math.copysign(1.0, self.size):
            closed = min(abs(signed_amount), abs(self.size))
            direction = math.copysign(1.0, self.size)  # +1 closing a long, −1 closing a short
            if self.is_option:
                realised = closed * direction * (price - self.average_price)
            else:
                realised = closed * direction * (1.0 / self.average_price - 1.0 / price)
            self.size -= direction * closed
            remaining = abs(signed_amount) - closed
            if abs(self.size) < 1e-12:
                self.size = 0.0
                self.average_price = 0.0
            signed_amount = math.copysign(remaining, signed_amount)
        if abs(signed_amount) > 1e-12:
            self._add(signed_amount, price)
        self.realised_pnl += realised
        return realised

    def _add(self, signed_amount: float, price: float) -> None:
        old, new = abs(self.size), abs(signed_amount)
        if old == 0.0:
            self.average_price = price
        elif self.is_option:
            self.average_price = (old * self.average_price + new * price) / (old + new)
        else:
            self.average_price = (old + new) / (old / self.average_price + new / price)
        self.size += signed_amount
