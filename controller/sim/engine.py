"""The simulated exchange: a seeded, deterministic market and one coin-margined account.

One engine serves both faces (in-process venue, Deribit-compatible HTTP server).  Time is
virtual and only moves forward, through :meth:`SimExchange.advance_to`; between market steps the
engine accrues perpetual funding (Deribit's formula, :mod:`.funding`), settles the day's session
at 08:00 UTC and delivers expiries at the 30-minute average of the index (:mod:`.settlement`),
fills resting limit orders that the market reaches, lists new expiries and liquidates the account,
step by step, when equity falls below its maintenance margin (:mod:`.liquidation`).  Errors carry
Deribit's JSON-RPC codes (:class:`SimError`).

The parts: :mod:`.model` (data), :mod:`.market` (price paths), :mod:`.listing` (what is listed),
:mod:`.quotes` (how it is marked), :mod:`.orders` (validation and the order book),
:mod:`.wallet` (balance, positions, fills, funding, settlement), :mod:`.margin_model` (standard or
portfolio margin) and :mod:`.margin` (standard margin, fees).  This module is the clock and the
rules that tie them together.

A bankrupt account (equity at or below zero after liquidation) is the signal a run must stop on:
:attr:`SimExchange.bankrupt_at` is set and a ``bankrupt`` event recorded, the shortfall booked to
the insurance fund (``ledger()["insurance"]``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from controller.sim.account import PositionBook
from controller.sim.funding import funding_over, funding_rate
from controller.sim.liquidation import liquidate_if_needed
from controller.sim.listing import Listed, list_expiries, list_perpetual
from controller.sim.margin_model import MarginModel, standard_margins
from controller.sim.market import MarketPath, MarketState, StochasticVolPath
from controller.sim.model import (
    AccountView,
    PositionView,
    SimConfig,
    SimError,
    SimEvent,
    SimOrder,
    SimQuote,
    SimTrade,
)
from controller.sim.orders import OrderBook, reduce_only_amount, validate_order
from controller.sim.quotes import compute_quotes, price_band
from controller.sim.settlement import delivery_price, next_settlement_after
from controller.sim.wallet import Wallet


class SimExchange:
    """The engine.  Not thread-safe by itself: the HTTP face serialises calls with a lock."""

    def __init__(self, config: SimConfig | None = None, *, path: MarketPath | None = None) -> None:
        self.config = config or SimConfig()
        if path is None:
            path = StochasticVolPath(
                seed=self.config.seed, start=self.config.start, params=self.config.market
            )
        self.path = path
        self._now = path.start
        self._price_factor = 1.0
        self._vol_shift = 0.0
        self.wallet = Wallet(self.config.initial_balance, id_prefix=self.config.id_prefix)
        self.book = OrderBook(id_prefix=self.config.id_prefix)
        self.listed: dict[str, Listed] = {}
        self.events: list[SimEvent] = []
        self.margin_model = MarginModel(self.config)
        self.settlement_prices: dict[str, float] = {}  # each instrument's last settlement (or delivery)
        self.bankrupt_at: datetime | None = None  # when liquidation left the account at or below zero
        self._next_settlement = next_settlement_after(self._now)
        self._quotes: dict[str, SimQuote] = {}  # marks of the current market state, filled as asked for
        self._marks_generation = 0  # counts market states: a new one clears the marks
        self._views: tuple[tuple[int, int], list[PositionView]] | None = None
        self._market: tuple[int, MarketState] | None = None
        self._account: tuple[tuple[int, int], AccountView] | None = None
        perpetual = list_perpetual(self.config.listing, self.config.fees, self._now)
        self.listed[perpetual.name] = perpetual
        self._list_new_expiries()

    # ----------------------------------------------------------------- the account's state, read-only
    @property
    def balance(self) -> float:
        return self.wallet.balance

    @property
    def positions(self) -> dict[str, PositionBook]:
        return self.wallet.positions

    @property
    def fees_paid(self) -> float:
        return self.wallet.fees_paid

    @property
    def funding_total(self) -> float:
        return self.wallet.funding_total

    @property
    def orders(self) -> dict[str, SimOrder]:
        return self.book.orders

    # ----------------------------------------------------------------- time and market
    @property
    def now(self) -> datetime:
        return self._now

    def market(self) -> MarketState:
        if self._market is not None and self._market[0] == self._marks_generation:
            return self._market[1]
        state = self.path.state_at(self._now)
        market = MarketState(
            time=state.time,
            index=state.index * self._price_factor,
            atm_vol=self._shifted_vol(state.atm_vol),
            perp_premium=state.perp_premium,
        )
        self._market = (self._marks_generation, market)  # the marks change with the market, and only then
        return market

    def advance(self, seconds: float) -> None:
        self.advance_to(self._now + timedelta(seconds=seconds))

    def advance_to(self, target: datetime) -> None:
        """Move the virtual clock forward, processing every market step and expiry on the way."""
        if target < self._now:
            raise ValueError(f"the virtual clock only moves forward ({target} < {self._now})")
        while True:
            step_to = min(self._next_event_after(self._now), target)
            self._accrue_funding(step_to)
            self._now = step_to
            self._new_marks()
            self._settle()  # lists the next expiries when one passes
            self._match_resting_orders()
            liquidate_if_needed(self)
            if step_to >= target:
                return

    def shock(self, *, price_factor: float = 1.0, vol_shift: float = 0.0) -> None:
        """Move the market now (admin/tests): multiply the index, add to the ATM volatility."""
        if not (price_factor > 0 and math.isfinite(price_factor) and math.isfinite(vol_shift)):
            raise ValueError("price_factor must be positive and vol_shift finite")
        self._price_factor *= price_factor
        self._vol_shift += vol_shift
        self._new_marks()
        self._match_resting_orders()
        liquidate_if_needed(self)

    def _new_marks(self) -> None:
        self._quotes.clear()
        self._marks_generation += 1

    def _next_event_after(self, t: datetime) -> datetime:
        candidates = [t + timedelta(days=3650), self._next_settlement]
        change = self.path.next_change_after(t)
        if change is not None:
            candidates.append(change)
        candidates.extend(x.expiry for x in self.listed.values() if x.expiry is not None and x.expiry > t)
        return min(candidates)

    def funding_rate(self) -> float:
        """The perpetual's funding rate in force (per 8 h), from its premium (:mod:`.funding`)."""
        return funding_rate(self.market().perp_premium, self.config.funding)

    def funding_between(self, start: datetime, end: datetime) -> float:
        """The funding accrued per unit of the perpetual over ``[start, end)`` (not past now)."""
        return funding_over(self.path, start, min(end, self._now), self.config.funding)

    def vol_at(self, t: datetime) -> float:
        """The 30-day ATM volatility (decimal) at a past (or present) time, with the shocks in force now."""
        return self._shifted_vol(self.path.state_at(t).atm_vol)

    def _shifted_vol(self, atm_vol: float) -> float:
        return max(0.05, atm_vol + self._vol_shift)

    def index_at(self, t: datetime) -> float:
        """The index at a past (or present) time, with the shocks in force now."""
        return self.path.state_at(t).index * self._price_factor

    # ----------------------------------------------------------------- listing and quotes
    def instrument(self, name: str) -> Listed:
        listed = self.listed.get(name)
        if listed is None:
            raise SimError(10020, "invalid_or_unsupported_instrument", reason=name)
        return listed

    def instruments(self, *, kind: str | None = None) -> list[Listed]:
        return [x for x in self.listed.values() if kind is None or x.kind == kind]

    def quote(self, name: str) -> SimQuote:
        if name not in self._quotes:
            self._quotes.update(self._compute_quotes([self.instrument(name)]))
        return self._quotes[name]

    def quotes(self, *, kind: str | None = None) -> list[SimQuote]:
        wanted = self.instruments(kind=kind)
        missing = [x for x in wanted if x.name not in self._quotes]
        if missing:
            self._quotes.update(self._compute_quotes(missing))
        return [self._quotes[x.name] for x in wanted]

    def _compute_quotes(self, items: Iterable[Listed]) -> dict[str, SimQuote]:
        return compute_quotes(items, market=self.market(), now=self._now, config=self.config)

    def _list_new_expiries(self) -> None:
        m = self.market()
        for listed in list_expiries(
            self.config.listing,
            self.config.fees,
            now=self._now,
            index=m.index,
            atm_vol=m.atm_vol,
            listed_expiries={x.expiry for x in self.listed.values() if x.expiry is not None},
        ):
            self.listed[listed.name] = listed

    # ----------------------------------------------------------------- account
    def position_views(self) -> list[PositionView]:
        """Open positions with quotes, margins and greeks (cached until the wallet or the marks change)."""
        key = (self.wallet.revision, self._marks_generation)
        if self._views is not None and self._views[0] == key:
            return list(self._views[1])
        unmarked = [
            self.listed[n] for n, b in self.positions.items() if b.size != 0.0 and n not in self._quotes
        ]
        if unmarked:  # one vectorised pricing for all of them, not one per position
            self._quotes.update(self._compute_quotes(unmarked))
        views = []
        for name, book in self.positions.items():
            if book.size == 0.0:
                continue
            listed, quote = self.listed[name], self.quote(name)
            im, mm = self.margin_model.position(
                listed, book.size, quote, now=self._now, key=self._marks_generation
            )
            if listed.kind == "option":
                delta = book.size * ((quote.delta or 0.0) - quote.mark_price)
                gamma, vega, theta = (book.size * (v or 0.0) for v in (quote.gamma, quote.vega, quote.theta))
            else:
                delta, gamma, vega, theta = book.size / quote.mark_price, 0.0, 0.0, 0.0
            views.append(PositionView(listed, book, quote, im, mm, delta, gamma, vega, theta))
        self._views = (key, views)
        return list(views)

    def account(self) -> AccountView:
        """The account's figures; the positions' part is cached with the views, resting orders added."""
        key = (self.wallet.revision, self._marks_generation)
        if self._account is None or self._account[0] != key:
            self._account = (key, self._positions_account())
        account = self._account[1]
        if not self.book.has_open():
            return account
        return replace(account, initial_margin=account.initial_margin + self._open_orders_margin())

    def _positions_account(self) -> AccountView:
        views = self.position_views()
        options = [v for v in views if v.listed.kind == "option"]
        futures = [v for v in views if v.listed.kind != "option"]
        if self.margin_model.portfolio:
            initial, maintenance = self._account_margins({v.listed.name: v.book.size for v in views})
        else:
            initial = sum(v.initial_margin for v in views)
            maintenance = sum(v.maintenance_margin for v in views)
        options_value = sum(v.book.value(v.quote.mark_price) for v in options)
        books = self.positions.values()
        return AccountView(
            balance=self.balance,
            equity=self.balance + sum(v.book.value(v.quote.mark_price) for v in futures) + options_value,
            initial_margin=initial,
            maintenance_margin=maintenance,
            unrealised_pnl=sum(v.book.unrealised(v.quote.mark_price) for v in views),
            realised_pnl=sum(b.realised_pnl for b in books),
            funding=self.funding_total,
            fees=self.fees_paid,
            options_value=options_value,
            futures_session_upl=sum(v.book.session_unrealised(v.quote.mark_price) for v in futures),
            options_session_upl=sum(v.book.session_unrealised(v.quote.mark_price) for v in options),
            futures_session_rpl=sum(b.session_realised for b in books if not b.is_option),
            options_session_rpl=sum(b.session_realised for b in books if b.is_option),
            delta_total=sum(v.delta for v in views),
            options_delta=sum(v.delta for v in options),
            options_gamma=sum(v.gamma for v in options),
            options_vega=sum(v.vega for v in options),
            options_theta=sum(v.theta for v in options),
        )

    def _account_margins(self, sizes: dict[str, float]) -> tuple[float, float]:
        """(initial, maintenance) margin of the account if it held ``sizes`` (marked as now)."""
        held = {n: s for n, s in sizes.items() if s != 0.0}
        quotes = {n: self.quote(n) for n in held}
        return self.margin_model.account(held, self.listed, quotes, now=self._now, key=self._marks_generation)

    def maintenance_with(self, name: str, size: float) -> float:
        """The account's maintenance margin if its position in ``name`` were ``size``."""
        sizes = {n: b.size for n, b in self.positions.items()}
        sizes[name] = size
        return self._account_margins(sizes)[1]

    def _open_orders_margin(self) -> float:
        """Initial margin that resting orders would add if filled (orders that reduce add none)."""
        return sum(self._margin_increase(o.name, o.direction, o.amount - o.filled) for o in self.book.open())

    def _margin_increase(self, name: str, direction: str, amount: float) -> float:
        size = self.wallet.size(name)
        signed = amount if direction == "buy" else -amount
        if self.margin_model.portfolio:
            sizes = {n: b.size for n, b in self.positions.items()}
            before = self._account_margins(sizes)[0]
            sizes[name] = size + signed
            return max(self._account_margins(sizes)[0] - before, 0.0)
        listed, quote = self.listed[name], self.quote(name)
        before = standard_margins(listed, size, quote, self.config)[0]
        after = standard_margins(listed, size + signed, quote, self.config)[0]
        return max(after - before, 0.0)

    # ----------------------------------------------------------------- orders
    def place_order(
        self,
        *,
        name: str,
        direction: str,
        amount: float,
        order_type: str = "market",
        price: float | None = None,
        label: str = "",
        reduce_only: bool = False,
        post_only: bool = False,
        reject_post_only: bool = True,
    ) -> SimOrder:
        listed = self.instrument(name)
        amount, price = validate_order(listed, direction, amount, order_type, price, label)
        quote = self.quote(name)
        low, high = price_band(listed, quote.mark_price, self.config)
        if price is not None and listed.kind != "option":
            price = min(price, high) if direction == "buy" else max(price, low)  # clamped to the band
        if reduce_only:
            amount = reduce_only_amount(listed, direction, amount, self.wallet.size(name))
        crosses = order_type == "market" or (
            price is not None
            and (
                (direction == "buy" and quote.best_ask is not None and price >= quote.best_ask)
                or (direction == "sell" and quote.best_bid is not None and price <= quote.best_bid)
            )
        )
        if post_only and crosses:
            if reject_post_only:
                raise SimError(11054, "post_only_reject", reason="the order would trade immediately")
            price = quote.best_bid if direction == "buy" else quote.best_ask
            crosses = False
        self._check_margin(name, direction, amount)
        order = self.book.create(
            label=label,
            name=name,
            direction=direction,
            amount=amount,
            order_type=order_type,
            price=price,
            post_only=post_only,
            reduce_only=reduce_only,
            now=self._now,
        )
        if order_type == "market":
            order.band_price = high if direction == "buy" else low
        if crosses:
            touch = quote.best_ask if direction == "buy" else quote.best_bid
            if touch is None:
                order.state = "rejected"
                raise SimError(
                    10001, "error", reason=f"no {'offer' if direction == 'buy' else 'bid'} for {name}"
                )
            self._fill(order, amount, touch, liquidity="T")  # market and crossing limit orders take the touch
        return order

    def _check_margin(self, name: str, direction: str, amount: float) -> None:
        increase = self._margin_increase(name, direction, amount)
        if increase <= 0.0:
            return
        account = self.account()
        if account.initial_margin + increase > account.equity:
            raise SimError(
                10009,
                "not_enough_funds",
                reason=f"needs {account.initial_margin + increase:.8f} {self.config.currency} "
                f"initial margin, equity is {account.equity:.8f}",
            )

    def cancel(self, order_id: str) -> SimOrder:
        order = self.order(order_id)
        if order.state != "open":
            raise SimError(11044, "not_open_order", reason=f"order {order_id} is {order.state}")
        order.state = "cancelled"
        order.updated = self._now
        return order

    def order(self, order_id: str) -> SimOrder:
        return self.book.get(order_id)

    def orders_by_label(self, label: str) -> list[SimOrder]:
        return self.book.by_label(label)

    def open_orders(self, *, name: str | None = None) -> list[SimOrder]:
        return self.book.open(name=name)

    def _fill(self, order: SimOrder, amount: float, price: float, *, liquidity: str) -> SimTrade:
        return self.wallet.fill(
            order,
            self.listed[order.name],
            amount,
            price,
            liquidity=liquidity,
            quote=self.quote(order.name),
            fees=self.config.fees,
            now=self._now,
        )

    def _match_resting_orders(self) -> None:
        for order in self.book.open():
            if order.order_type != "limit" or order.price is None or order.name not in self.listed:
                continue
            quote = self.quote(order.name)
            reachable = (
                order.direction == "buy" and quote.best_ask is not None and quote.best_ask <= order.price
            ) or (order.direction == "sell" and quote.best_bid is not None and quote.best_bid >= order.price)
            if reachable:
                self._fill(order, order.amount - order.filled, order.price, liquidity="M")

    # ----------------------------------------------------------------- funding, expiry, liquidation
    def _accrue_funding(self, end: datetime) -> None:
        if end <= self._now:
            return
        seconds = (end - self._now).total_seconds()
        self.wallet.accrue_funding(
            self.listed, index=self.market().index, rate_8h=self.funding_rate(), seconds=seconds
        )

    def _settle(self) -> None:
        """Deliver what expired (at the 30-minute average of the index), then, at 08:00 UTC, settle
        the day's session of every other position at its mark."""
        due = [x for x in self.listed.values() if x.expiry is not None and x.expiry <= self._now]
        for listed in due:
            assert listed.expiry is not None
            price = delivery_price(self.index_at, listed.expiry)
            for order in self.open_orders(name=listed.name):
                order.state, order.updated = "cancelled", self._now
            if self.wallet.deliver(listed, price):
                self.events.append(
                    SimEvent(self._now, "settlement", f"{listed.name} delivered at {price:.2f}")
                )
            self.settlement_prices[listed.name] = price
            del self.listed[listed.name]
        if self._now >= self._next_settlement:
            marks = {q.name: q.mark_price for q in self.quotes()}
            self.wallet.settle_session({n: marks[n] for n in self.positions if n in marks})
            self.settlement_prices.update(marks)
            self._next_settlement = next_settlement_after(self._now)
        if due:
            self._list_new_expiries()  # the listing only moves when a listed expiry has passed

    def realised_total(self) -> float:
        return self.wallet.realised_total()

    def fill_liquidation(self, name: str, direction: str, amount: float, *, liquidation_fee: float) -> None:
        """The liquidation engine's order: ``amount`` closed at the mark as taker, its fee on top."""
        order = self.book.create(
            label="liquidation",
            name=name,
            direction=direction,
            amount=amount,
            order_type="market",
            price=None,
            post_only=False,
            reduce_only=True,
            now=self._now,
        )
        self._fill(order, amount, self.quote(name).mark_price, liquidity="T")
        self.wallet.charge(liquidation_fee)

    # ----------------------------------------------------------------- the ledger (for tests and admin)
    def ledger(self) -> dict[str, float]:
        """Equity against its P&L components:
        ``equity − start = realised + unrealised + funding − fees + insurance``."""
        account = self.account()
        return {
            "start": self.config.initial_balance,
            "equity": account.equity,
            "realised": self.realised_total(),
            "unrealised": account.unrealised_pnl,
            "funding": self.funding_total,
            "fees": self.fees_paid,
            "insurance": self.wallet.insurance_total,
        }
