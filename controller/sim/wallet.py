"""The account's money: cash balance, positions, fees and funding, in coin.

Fills, funding and settlement move the balance and the positions here, and every movement is also
booked to a P&L component (realised, funding, fees, insurance), so that
``equity − start = realised + unrealised + funding − fees + insurance`` can be checked against two
independent ledgers (:meth:`controller.sim.engine.SimExchange.ledger`).

* A fill: options pay or receive their premium (``−signed_amount × price``); futures move the
  cash balance by the session's P&L of the part that closes (:mod:`.account`); both pay a fee
  (taker or maker rate for futures, the capped per-coin rate for options).
* Funding on the perpetual: ``−size_usd / index × rate × elapsed / 8 h`` coin, accrued
  continuously at the rate Deribit derives from the premium (:mod:`.funding`; a long pays a
  positive rate).
* The daily settlement (08:00 UTC): each future's session P&L at its mark moves to the cash
  balance and the position is carried on at that price.
* Delivery at expiry, at the delivery price (the 30-minute average of the index): an option pays
  its intrinsic value in coin (payoff / delivery price), a dated future its session's P&L.
* Insurance: when a liquidated account ends below zero, Deribit's insurance fund covers the
  shortfall and the balance is set back to zero; the amount is booked, never lost silently.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime

from controller.sim.account import PositionBook
from controller.sim.funding import EIGHT_HOURS_S
from controller.sim.listing import Listed
from controller.sim.margin import FeeParams, future_fee, option_fee
from controller.sim.model import SimOrder, SimQuote, SimTrade


class Wallet:
    def __init__(self, initial_balance: float, *, id_prefix: str = "") -> None:
        self.id_prefix = id_prefix
        self.balance = initial_balance
        self.positions: dict[str, PositionBook] = {}
        self.fees_paid = 0.0
        self.funding_total = 0.0
        self.insurance_total = 0.0  # shortfalls the insurance fund covered
        self.retired_pnl = 0.0  # realised P&L of positions removed by settlement
        self.revision = 0  # counts changes: what is derived from the wallet can be cached against it
        self._trade_ids = itertools.count(1)

    def size(self, name: str) -> float:
        book = self.positions.get(name)
        return 0.0 if book is None else book.size

    def fill(
        self,
        order: SimOrder,
        listed: Listed,
        amount: float,
        price: float,
        *,
        liquidity: str,
        quote: SimQuote,
        fees: FeeParams,
        now: datetime,
    ) -> SimTrade:
        """Execute ``amount`` of ``order`` at ``price`` ("T" taker or "M" maker) and record the trade."""
        self.revision += 1
        signed = amount if order.direction == "buy" else -amount
        if listed.kind == "option":
            fee = option_fee(amount=amount, price_coin=price, params=fees)
            self.balance -= signed * price  # the premium
        else:
            rate = listed.taker_fee if liquidity == "T" else listed.maker_fee
            fee = future_fee(amount_usd=amount, price=price, rate=rate)
        book = self.positions.setdefault(order.name, PositionBook(order.name, listed.kind == "option"))
        _, session = book.apply_fill(signed, price)
        if listed.kind != "option":
            self.balance += session
        self.charge(fee)
        trade = SimTrade(
            f"{self.id_prefix}SIMT-{next(self._trade_ids)}",
            order.order_id,
            order.name,
            order.direction,
            amount,
            price,
            fee,
            liquidity,
            now,
            quote.index_price,
            quote.mark_price,
            quote.underlying_price if listed.kind == "option" else None,
            None if quote.mark_iv is None else round(quote.mark_iv * 100.0, 4),
        )
        order.trades.append(trade)
        order.average_price = (order.average_price * order.filled + price * amount) / (order.filled + amount)
        order.filled += amount
        order.commission += fee
        order.updated = now
        if order.filled >= order.amount - 1e-12:
            order.state = "filled"
        return trade

    def charge(self, fee: float) -> None:
        """A fee (or penalty) in coin."""
        self.revision += 1
        self.balance -= fee
        self.fees_paid += fee

    def accrue_funding(
        self, listed: Mapping[str, Listed], *, index: float, rate_8h: float, seconds: float
    ) -> None:
        """Funding at the 8-hour ``rate_8h`` over ``seconds`` on every perpetual position."""
        self.revision += 1
        for name, book in self.positions.items():
            instrument = listed.get(name)
            if instrument is None or not instrument.is_perpetual or book.size == 0.0:
                continue
            payment = -(book.size / index) * rate_8h * seconds / EIGHT_HOURS_S
            book.funding += payment
            self.funding_total += payment
            self.balance += payment

    def settle_session(self, marks: Mapping[str, float]) -> None:
        """The daily settlement: each future's session P&L at its mark to the cash balance."""
        self.revision += 1
        for name, book in self.positions.items():
            if name in marks:
                booked = book.settle_session(marks[name])
                if not book.is_option:
                    self.balance += booked

    def deliver(self, listed: Listed, price: float) -> bool:
        """Settle and remove the position in an expired instrument at the delivery ``price``; False
        when there was none."""
        self.revision += 1
        book = self.positions.pop(listed.name, None)
        if book is None or book.size == 0.0:
            return False
        if listed.kind == "option":
            strike = listed.strike
            if strike is None:
                raise ValueError(f"{listed.name} has no strike")
            payoff_usd = max(price - strike, 0.0) if listed.is_call else max(strike - price, 0.0)
            value = payoff_usd / price
            book.realised_pnl += book.size * (value - book.average_price)
            self.balance += book.size * value
        else:
            book.realised_pnl += book.unrealised(price)
            self.balance += book.session_unrealised(price)
        self.retired_pnl += book.realised_pnl
        return True

    def cover_shortfall(self, equity: float) -> float:
        """The insurance fund sets a negative ``equity`` back to zero; returns the shortfall covered."""
        shortfall = max(-equity, 0.0)
        if shortfall > 0.0:
            self.revision += 1
            self.balance += shortfall
            self.insurance_total += shortfall
        return shortfall

    def realised_total(self) -> float:
        return self.retired_pnl + sum(b.realised_pnl for b in self.positions.values())
