"""Positions of a coin-margined account: netting, average prices and P&L in coin.

Inverse futures and the perpetual (``size`` in USD, prices in USD)::

    unrealised = size · (1/avg − 1/mark)          realised on closing c USD at P: c · (1/avg − 1/P)
    avg after adding d USD at P: (|q| + |d|) / (|q|/avg + |d|/P)         (harmonic, as Deribit)

Deribit settles futures every day at 08:00 UTC: the session's P&L moves to the cash balance and
the position is carried on at the settlement price.  So beside the entry price ``avg`` (P&L since
entry: Deribit's ``total_profit_loss``) a position keeps a session price ``ses`` (the last
settlement price, or the trade price for what was bought since, averaged the same way): P&L since
it is the session's (``floating_profit_loss``), and the cash balance moves by it — on closing,
``c · (1/ses − 1/P)``, and at settlement, ``size · (1/ses − 1/mark)`` with ``ses`` then the mark.
Inverse P&L is linear in 1/price, so the two sums agree: the session bookings add up to the P&L
since entry.

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
    realised_pnl: float = 0.0  # since entry
    funding: float = 0.0  # received (+) or paid (−) in coin
    session_price: float = 0.0  # the last settlement price, or what was traded since (averaged)
    session_realised: float = 0.0  # realised in the current session (against session_price)

    def unrealised(self, mark: float) -> float:
        """P&L since entry of the open position (Deribit's ``total_profit_loss``)."""
        return self._pnl(self.average_price, mark)

    def session_unrealised(self, mark: float) -> float:
        """P&L since the last settlement of the open position (Deribit's ``floating_profit_loss``)."""
        return self._pnl(self.session_price, mark)

    def _pnl(self, reference: float, mark: float) -> float:
        if self.size == 0.0:
            return 0.0
        if self.is_option:
            return self.size * (mark - reference)
        return self.size * (1.0 / reference - 1.0 / mark)

    def value(self, mark: float) -> float:
        """What the position adds to equity beyond the cash balance (futures: the session's P&L)."""
        return self.size * mark if self.is_option else self.session_unrealised(mark)

    def apply_fill(self, signed_amount: float, price: float) -> tuple[float, float]:
        """Net a fill into the position; the realised P&L of the closed part (coin) since entry, and
        since the session's start (what moves a future's cash balance)."""
        realised = session = 0.0
        if self.size != 0.0 and math.copysign(1.0, signed_amount) != math.copysign(1.0, self.size):
            closed = min(abs(signed_amount), abs(self.size))
            direction = math.copysign(1.0, self.size)  # +1 closing a long, −1 closing a short
            realised = closed * direction * self._unit_pnl(self.average_price, price)
            session = closed * direction * self._unit_pnl(self.session_price, price)
            self.size -= direction * closed
            remaining = abs(signed_amount) - closed
            if abs(self.size) < 1e-12:
                self.size = 0.0
                self.average_price = self.session_price = 0.0
            signed_amount = math.copysign(remaining, signed_amount)
        if abs(signed_amount) > 1e-12:
            self._add(signed_amount, price)
        self.realised_pnl += realised
        self.session_realised += session
        return realised, session

    def _unit_pnl(self, reference: float, price: float) -> float:
        return price - reference if self.is_option else 1.0 / reference - 1.0 / price

    def settle_session(self, price: float) -> float:
        """The daily settlement at ``price``: the session's P&L of the open position (coin), after
        which the position is carried at that price."""
        booked = self.session_unrealised(price)
        if self.size != 0.0:
            self.session_price = price
        self.session_realised = 0.0
        return booked

    def _add(self, signed_amount: float, price: float) -> None:
        old = abs(self.size)
        self.average_price = self._averaged(self.average_price, old, abs(signed_amount), price)
        self.session_price = self._averaged(self.session_price, old, abs(signed_amount), price)
        self.size += signed_amount

    def _averaged(self, reference: float, old: float, new: float, price: float) -> float:
        if old == 0.0:
            return price
        if self.is_option:
            return (old * reference + new * price) / (old + new)
        return (old + new) / (old / reference + new / price)
