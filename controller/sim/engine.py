"""The simulated exchange: a seeded, deterministic market and one coin-margined account.

One engine serves both faces (in-process venue, Deribit-compatible HTTP server).  Time is
virtual and only moves forward, through :meth:`SimExchange.advance_to`; between market steps the
engine accrues perpetual funding, settles expiries at the index, fills resting limit orders that
the market reaches, lists new expiries and liquidates the account when equity falls below its
maintenance margin.  Errors carry Deribit's JSON-RPC codes (:class:`SimError`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from controller.sim.account import PositionBook
from controller.sim.listing import (
    ListingParams,
    SmileParams,
    expiries_after,
    forward_price,
    future_name,
    is_futures_expiry,
    option_name,
    smile_vol,
    strike_grid,
)
from controller.sim.margin import (
    FeeParams,
    MarginParams,
    future_fee,
    future_margins,
    option_fee,
    option_margins,
)
from controller.sim.market import MarketPath, MarketState, ReplayPath, StochasticVolParams, StochasticVolPath
from pricing import greeks, parse_deribit_name, year_fraction
from pricing.instruments import Instrument

EIGHT_HOURS_S = 8 * 3600.0
DEFAULT_START = datetime(2026, 1, 2, 8, 0, tzinfo=UTC)


class SimError(Exception):
    """A request the exchange refuses, with Deribit's JSON-RPC error code."""

    def __init__(self, code: int, message: str, *, http_status: int = 400, reason: str | None = None) -> None:
        super().__init__(f"{message} ({code})" if reason is None else f"{message}: {reason} ({code})")
        self.code = code
        self.message = message
        self.reason = reason
        self.http_status = http_status


@dataclass(frozen=True)
class SimConfig:
    seed: int = 7
    start: datetime = DEFAULT_START
    initial_balance: float = 10.0  # coin
    market: StochasticVolParams = field(default_factory=StochasticVolParams)
    listing: ListingParams = field(default_factory=ListingParams)
    smile: SmileParams = field(default_factory=SmileParams)
    margin: MarginParams = field(default_factory=MarginParams)
    fees: FeeParams = field(default_factory=FeeParams)
    perp_half_spread: float = 0.0001  # relative to mark
    future_half_spread: float = 0.0002
    option_half_spread: float = 0.02  # relative to mark, at least one tick
    testnet: bool = True

    @property
    def currency(self) -> str:
        return self.listing.currency


@dataclass(frozen=True)
class Listed:
    """An instrument on the exchange with its trading rules."""

    name: str
    instrument: Instrument
    kind: str  # "option" or "future" (Deribit calls the perpetual a future too)
    expiry: datetime | None  # None for the perpetual
    strike: float | None
    is_call: bool | None
    tick_size: float
    min_amount: float
    contract_size: float
    maker_fee: float
    taker_fee: float
    created_at: datetime

    @property
    def is_perpetual(self) -> bool:
        return self.expiry is None


@dataclass(frozen=True)
class SimQuote:
    name: str
    mark_price: float  # coin per unit for options, USD for futures
    best_bid: float | None
    best_ask: float | None
    index_price: float
    underlying_price: float  # options: the expiry's forward; futures: their own mark
    mark_iv: float | None  # decimal, options only
    funding_8h: float | None  # perpetual only
    delta: float | None = None  # per unit, Black (options)
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    time: datetime = DEFAULT_START


@dataclass
class SimOrder:
    order_id: str
    label: str
    name: str
    direction: str  # "buy" / "sell"
    amount: float
    order_type: str  # "market" / "limit"
    price: float | None
    post_only: bool
    reduce_only: bool
    created: datetime
    updated: datetime
    state: str = "open"  # open, filled, cancelled, rejected
    filled: float = 0.0
    average_price: float = 0.0
    commission: float = 0.0
    trades: list[SimTrade] = field(default_factory=list)


@dataclass(frozen=True)
class SimTrade:
    trade_id: str
    order_id: str
    name: str
    direction: str
    amount: float
    price: float
    fee: float
    liquidity: str  # "T" taker, "M" maker
    time: datetime
    index_price: float
    mark_price: float


@dataclass(frozen=True)
class AccountView:
    balance: float
    equity: float
    initial_margin: float
    maintenance_margin: float
    unrealised_pnl: float
    realised_pnl: float
    funding: float
    fees: float
    options_value: float
    delta_total: float  # coin, options premium-adjusted, collateral excluded
    options_delta: float
    options_gamma: float
    options_vega: float
    options_theta: float

    @property
    def available_funds(self) -> float:
        return self.equity - self.initial_margin


@dataclass(frozen=True)
class PositionView:
    listed: Listed
    book: PositionBook
    quote: SimQuote
    initial_margin: float
    maintenance_margin: float
    delta: float  # coin (premium-adjusted for options)
    gamma: float
    vega: float
    theta: float


@dataclass(frozen=True)
class SimEvent:
    time: datetime
    kind: str
    message: str


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
        self.balance = self.config.initial_balance
        self.fees_paid = 0.0
        self.funding_total = 0.0
        self._retired_pnl = 0.0  # realised P&L of positions removed by settlement
        self.listed: dict[str, Listed] = {}
        self.positions: dict[str, PositionBook] = {}
        self.orders: dict[str, SimOrder] = {}
        self.events: list[SimEvent] = []
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._quotes: dict[str, SimQuote] = {}
        self._list_perpetual()
        self._list_new_expiries()

    # ----------------------------------------------------------------- time and market
    @property
    def now(self) -> datetime:
        return self._now

    def market(self) -> MarketState:
        state = self.path.state_at(self._now)
        return MarketState(
            time=state.time,
            index=state.index * self._price_factor,
            atm_vol=max(0.05, state.atm_vol + self._vol_shift),
            funding_8h=state.funding_8h,
        )

    def advance(self, seconds: float) -> None:
        self.advance_to(self._now + timedelta(seconds=seconds))

    def advance_to(self, target: datetime) -> None:
        """Move the virtual clock forward, processing every market step and expiry on the way."""
        if target < self._now:
            raise ValueError(f"the virtual clock only moves forward ({target} < {self._now})")
        while True:
            step_to = min(self._next_event_after(self._now), target)
            self._accrue_funding(self._now, step_to)
            self._now = step_to
            self._quotes.clear()
            self._settle_expired()  # lists the next expiries when one passes
            self._match_resting_orders()
            self._liquidate_if_needed()
            if step_to >= target:
                return

    def shock(self, *, price_factor: float = 1.0, vol_shift: float = 0.0) -> None:
        """Move the market now (admin/tests): multiply the index, add to the ATM volatility."""
        if not (price_factor > 0 and math.isfinite(price_factor) and math.isfinite(vol_shift)):
            raise ValueError("price_factor must be positive and vol_shift finite")
        self._price_factor *= price_factor
        self._vol_shift += vol_shift
        self._quotes.clear()
        self._match_resting_orders()
        self._liquidate_if_needed()

    def _next_event_after(self, t: datetime) -> datetime:
        candidates = [t + timedelta(days=3650)]
        if isinstance(self.path, StochasticVolPath):
            step_s = self.path.params.step_s
            elapsed = (t - self.path.start).total_seconds()
            candidates.append(
                self.path.start + timedelta(seconds=(math.floor(elapsed / step_s) + 1) * step_s)
            )
        elif isinstance(self.path, ReplayPath):
            times = self.path.data.times_ms
            i = int(np.searchsorted(times, t.timestamp() * 1000.0, side="right"))
            if i < times.size:
                candidates.append(datetime.fromtimestamp(times[i] / 1000.0, UTC))
        candidates.extend(x.expiry for x in self.listed.values() if x.expiry is not None and x.expiry > t)
        return min(candidates)

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
        m = self.market()
        out: dict[str, SimQuote] = {}
        options = []
        for x in items:
            if x.kind == "option":
                options.append(x)
                continue
            t = 0.0 if x.expiry is None else max(year_fraction(start=self._now, end=x.expiry), 0.0)
            if x.is_perpetual:
                mark = m.index * (1.0 + m.funding_8h)
                half = self.config.perp_half_spread
            else:
                mark = forward_price(
                    index=m.index, funding_8h=m.funding_8h, t_years=t, params=self.config.listing
                )
                half = self.config.future_half_spread
            bid = math.floor(mark * (1 - half) / x.tick_size) * x.tick_size
            ask = math.ceil(mark * (1 + half) / x.tick_size) * x.tick_size
            out[x.name] = SimQuote(
                name=x.name,
                mark_price=round(mark, 4),
                best_bid=bid,
                best_ask=ask,
                index_price=m.index,
                underlying_price=round(mark, 4),
                mark_iv=None,
                funding_8h=m.funding_8h if x.is_perpetual else None,
                time=self._now,
            )
        if options:
            out.update(self._option_quotes(options, m))
        return out

    def _option_quotes(self, options: list[Listed], m: MarketState) -> dict[str, SimQuote]:
        t = np.array([max(year_fraction(start=self._now, end=x.expiry), 0.0) for x in options])  # type: ignore[arg-type]
        strikes = np.array([x.strike for x in options], dtype=float)
        forward = np.array(
            [
                forward_price(index=m.index, funding_8h=m.funding_8h, t_years=ti, params=self.config.listing)
                for ti in t
            ]
        )
        vols = np.array(
            [
                smile_vol(atm_vol_30d=m.atm_vol, forward=f, strike=k, t_years=ti, smile=self.config.smile)
                for f, k, ti in zip(forward, strikes, t, strict=True)
            ]
        )
        calls = np.array([bool(x.is_call) for x in options])
        g = greeks(forward=forward, strike=strikes, t_years=t, vol=vols, is_call=calls)
        out = {}
        for i, x in enumerate(options):
            mark = round(float(g.price[i]) / forward[i], 8)
            half = max(x.tick_size, self.config.option_half_spread * mark)
            bid = math.floor((mark - half) / x.tick_size) * x.tick_size
            ask = math.ceil((mark + half) / x.tick_size) * x.tick_size
            out[x.name] = SimQuote(
                name=x.name,
                mark_price=mark,
                best_bid=bid if bid > 0 else None,
                best_ask=max(ask, x.tick_size),
                index_price=m.index,
                underlying_price=float(forward[i]),
                mark_iv=float(vols[i]),
                funding_8h=None,
                delta=float(g.delta[i]),
                gamma=float(g.gamma[i]),
                vega=float(g.vega[i]),
                theta=float(g.theta[i]),
                time=self._now,
            )
        return out

    def _list_perpetual(self) -> None:
        p = self.config.listing
        name = f"{p.currency}-PERPETUAL"
        self.listed[name] = Listed(
            name,
            parse_deribit_name(name),
            "future",
            None,
            None,
            None,
            p.future_tick,
            p.future_min_amount,
            p.future_min_amount,
            self.config.fees.future_maker,
            self.config.fees.future_taker,
            self._now,
        )

    def _list_new_expiries(self) -> None:
        p = self.config.listing
        listed_expiries = {x.expiry for x in self.listed.values() if x.expiry is not None}
        m = self.market()
        fees = self.config.fees
        for expiry in expiries_after(self._now, p):
            if expiry in listed_expiries:
                continue
            t = year_fraction(start=self._now, end=expiry)
            if is_futures_expiry(expiry, p):
                name = future_name(p.currency, expiry)
                self.listed[name] = Listed(
                    name,
                    parse_deribit_name(name),
                    "future",
                    expiry,
                    None,
                    None,
                    p.future_tick,
                    p.future_min_amount,
                    p.future_min_amount,
                    fees.future_maker,
                    fees.future_taker,
                    self._now,
                )
            for strike in strike_grid(index=m.index, atm_vol=m.atm_vol, t_years=t, params=p):
                for is_call in (True, False):
                    name = option_name(p.currency, expiry, strike, is_call)
                    self.listed[name] = Listed(
                        name,
                        parse_deribit_name(name),
                        "option",
                        expiry,
                        strike,
                        is_call,
                        p.option_tick,
                        p.option_min_amount,
                        1.0,
                        fees.option_rate,
                        fees.option_rate,
                        self._now,
                    )

    # ----------------------------------------------------------------- account
    def position_views(self) -> list[PositionView]:
        views = []
        for name, book in self.positions.items():
            if book.size == 0.0:
                continue
            listed, quote = self.listed[name], self.quote(name)
            im, mm = self._position_margins(listed, book.size, quote)
            if listed.kind == "option":
                delta = book.size * ((quote.delta or 0.0) - quote.mark_price)
                gamma, vega, theta = (book.size * (v or 0.0) for v in (quote.gamma, quote.vega, quote.theta))
            else:
                delta, gamma, vega, theta = book.size / quote.mark_price, 0.0, 0.0, 0.0
            views.append(PositionView(listed, book, quote, im, mm, delta, gamma, vega, theta))
        return views

    def account(self) -> AccountView:
        views = self.position_views()
        upl = sum(v.book.unrealised(v.quote.mark_price) for v in views)
        options_value = sum(v.book.value(v.quote.mark_price) for v in views if v.listed.kind == "option")
        futures_upl = sum(v.book.unrealised(v.quote.mark_price) for v in views if v.listed.kind != "option")
        opt = [v for v in views if v.listed.kind == "option"]
        return AccountView(
            balance=self.balance,
            equity=self.balance + futures_upl + options_value,
            initial_margin=sum(v.initial_margin for v in views) + self._open_orders_margin(),
            maintenance_margin=sum(v.maintenance_margin for v in views),
            unrealised_pnl=upl,
            realised_pnl=sum(b.realised_pnl for b in self.positions.values()),
            funding=self.funding_total,
            fees=self.fees_paid,
            options_value=options_value,
            delta_total=sum(v.delta for v in views),
            options_delta=sum(v.delta for v in opt),
            options_gamma=sum(v.gamma for v in opt),
            options_vega=sum(v.vega for v in opt),
            options_theta=sum(v.theta for v in opt),
        )

    def _position_margins(self, listed: Listed, size: float, quote: SimQuote) -> tuple[float, float]:
        if size == 0.0:
            return 0.0, 0.0
        if listed.kind == "option":
            return option_margins(
                size=size,
                mark_coin=quote.mark_price,
                underlying=quote.underlying_price,
                strike=_strike(listed),
                is_call=bool(listed.is_call),
                params=self.config.margin,
            )
        return future_margins(size_usd=size, mark=quote.mark_price, params=self.config.margin)

    def _open_orders_margin(self, exclude: str | None = None) -> float:
        """Initial margin that resting orders would add if filled (orders that reduce add none)."""
        total = 0.0
        for order in self.orders.values():
            if order.state != "open" or order.order_id == exclude:
                continue
            total += self._margin_increase(order.name, order.direction, order.amount - order.filled)
        return total

    def _margin_increase(self, name: str, direction: str, amount: float) -> float:
        listed, quote = self.listed[name], self.quote(name)
        size = self.positions[name].size if name in self.positions else 0.0
        signed = amount if direction == "buy" else -amount
        before = self._position_margins(listed, size, quote)[0]
        after = self._position_margins(listed, size + signed, quote)[0]
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
        amount, price = self._validate_order(listed, direction, amount, order_type, price, label)
        quote = self.quote(name)
        book_size = self.positions[name].size if name in self.positions else 0.0
        if reduce_only:
            amount = self._reduce_only_amount(listed, direction, amount, book_size)
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
        order = SimOrder(
            f"SIM-{next(self._order_ids)}",
            label,
            name,
            direction,
            amount,
            order_type,
            price,
            post_only,
            reduce_only,
            self._now,
            self._now,
        )
        self.orders[order.order_id] = order
        if crosses:
            touch = quote.best_ask if direction == "buy" else quote.best_bid
            if touch is None:
                order.state = "rejected"
                raise SimError(
                    10001, "error", reason=f"no {'offer' if direction == 'buy' else 'bid'} for {name}"
                )
            self._fill(order, amount, touch, liquidity="T")  # market and crossing limit orders take the touch
        return order

    def _validate_order(
        self, listed: Listed, direction: str, amount: float, order_type: str, price: float | None, label: str
    ) -> tuple[float, float | None]:
        if direction not in ("buy", "sell"):
            raise SimError(11029, "invalid_arguments", reason=f"direction {direction!r}")
        if order_type not in ("market", "limit"):
            raise SimError(
                11029, "invalid_arguments", reason=f"type {order_type!r} is not supported by the simulator"
            )
        if len(label) > 64:
            raise SimError(11029, "invalid_arguments", reason="label longer than 64 characters")
        if not (amount > 0 and math.isfinite(amount)):
            raise SimError(10021, "invalid_amount", reason=str(amount))
        lots = amount / listed.min_amount
        if abs(lots - round(lots)) > 1e-6:
            code = 10027 if listed.kind == "future" else 10021
            raise SimError(
                code, "invalid_amount", reason=f"{amount} is not a multiple of {listed.min_amount}"
            )
        amount = round(lots) * listed.min_amount
        if order_type == "limit":
            if price is None or not (price > 0 and math.isfinite(price)):
                raise SimError(10023, "invalid_price", reason=str(price))
            ticks = price / listed.tick_size
            if abs(ticks - round(ticks)) > 1e-6:
                raise SimError(
                    10043, "price_wrong_tick", reason=f"{price} is not a multiple of {listed.tick_size}"
                )
            price = round(ticks) * listed.tick_size
        else:
            price = None
        return amount, price

    def _reduce_only_amount(self, listed: Listed, direction: str, amount: float, size: float) -> float:
        reduces = (direction == "sell" and size > 0) or (direction == "buy" and size < 0)
        if not reduces:
            raise SimError(11030, "other_reject", reason="reduce_only order would not reduce the position")
        lots = math.floor(min(amount, abs(size)) / listed.min_amount + 1e-9)
        if lots == 0:
            raise SimError(10021, "invalid_amount", reason="reduce_only amount below the minimum")
        return lots * listed.min_amount

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
        order = self.orders.get(order_id)
        if order is None:
            raise SimError(10004, "order_not_found", reason=order_id)
        return order

    def orders_by_label(self, label: str) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.label == label]

    def open_orders(self, *, name: str | None = None) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.state == "open" and (name is None or o.name == name)]

    def _fill(self, order: SimOrder, amount: float, price: float, *, liquidity: str) -> None:
        listed = self.listed[order.name]
        signed = amount if order.direction == "buy" else -amount
        if listed.kind == "option":
            fee = option_fee(amount=amount, price_coin=price, params=self.config.fees)
            self.balance -= signed * price  # the premium
        else:
            rate = listed.taker_fee if liquidity == "T" else listed.maker_fee
            fee = future_fee(amount_usd=amount, price=price, rate=rate)
        book = self.positions.setdefault(order.name, PositionBook(order.name, listed.kind == "option"))
        realised = book.apply_fill(signed, price)
        if listed.kind != "option":
            self.balance += realised
        self.balance -= fee
        self.fees_paid += fee
        quote = self.quote(order.name)
        trade = SimTrade(
            f"SIMT-{next(self._trade_ids)}",
            order.order_id,
            order.name,
            order.direction,
            amount,
            price,
            fee,
            liquidity,
            self._now,
            quote.index_price,
            quote.mark_price,
        )
        order.trades.append(trade)
        order.average_price = (order.average_price * order.filled + price * amount) / (order.filled + amount)
        order.filled += amount
        order.commission += fee
        order.updated = self._now
        if order.filled >= order.amount - 1e-12:
            order.state = "filled"

    def _match_resting_orders(self) -> None:
        for order in list(self.orders.values()):
            if order.state != "open" or order.order_type != "limit" or order.price is None:
                continue
            if order.name not in self.listed:
                continue
            quote = self.quote(order.name)
            reachable = (
                order.direction == "buy" and quote.best_ask is not None and quote.best_ask <= order.price
            ) or (order.direction == "sell" and quote.best_bid is not None and quote.best_bid >= order.price)
            if reachable:
                self._fill(order, order.amount - order.filled, order.price, liquidity="M")

    # ----------------------------------------------------------------- funding, expiry, liquidation
    def _accrue_funding(self, start: datetime, end: datetime) -> None:
        if end <= start:
            return
        m = self.market()
        for name, book in self.positions.items():
            listed = self.listed.get(name)
            if listed is None or not listed.is_perpetual or book.size == 0.0:
                continue
            payment = -(book.size / m.index) * m.funding_8h * (end - start).total_seconds() / EIGHT_HOURS_S
            book.funding += payment
            self.funding_total += payment
            self.balance += payment

    def _settle_expired(self) -> None:
        due = [x for x in self.listed.values() if x.expiry is not None and x.expiry <= self._now]
        if not due:
            return
        index = self.market().index
        for listed in due:
            for order in self.open_orders(name=listed.name):
                order.state, order.updated = "cancelled", self._now
            book = self.positions.pop(listed.name, None)
            if book is not None and book.size != 0.0:
                self._settle_position(listed, book, index)
            del self.listed[listed.name]
        self._list_new_expiries()  # the listing only moves when a listed expiry has passed

    def _settle_position(self, listed: Listed, book: PositionBook, index: float) -> None:
        if listed.kind == "option":
            strike = _strike(listed)
            payoff_usd = max(index - strike, 0.0) if listed.is_call else max(strike - index, 0.0)
            value = payoff_usd / index
            book.realised_pnl += book.size * (value - book.average_price)
            self.balance += book.size * value
        else:
            realised = book.size * (1.0 / book.average_price - 1.0 / index)
            book.realised_pnl += realised
            self.balance += realised
        self._retired_pnl += book.realised_pnl
        self.events.append(SimEvent(self._now, "settlement", f"{listed.name} settled at {index:.2f}"))

    def realised_total(self) -> float:
        return self._retired_pnl + sum(b.realised_pnl for b in self.positions.values())

    def _liquidate_if_needed(self) -> None:
        if not any(b.size != 0.0 for b in self.positions.values()):
            return
        account = self.account()
        if account.maintenance_margin <= 0 or account.equity >= account.maintenance_margin:
            return
        for order in self.open_orders():
            order.state, order.updated = "cancelled", self._now
        for name, book in list(self.positions.items()):
            if book.size == 0.0:
                continue
            quote = self.quote(name)
            close = SimOrder(
                f"SIM-{next(self._order_ids)}",
                "liquidation",
                name,
                "sell" if book.size > 0 else "buy",
                abs(book.size),
                "market",
                None,
                False,
                True,
                self._now,
                self._now,
            )
            self.orders[close.order_id] = close
            self._fill(close, abs(book.size), quote.mark_price, liquidity="T")
            notional_coin = (
                abs(close.amount)
                if self.listed[name].kind == "option"
                else abs(close.amount) / quote.mark_price
            )
            penalty = self.config.fees.liquidation * notional_coin
            self.balance -= penalty
            self.fees_paid += penalty
        self.events.append(
            SimEvent(
                self._now,
                "liquidation",
                f"equity {account.equity:.8f} below maintenance {account.maintenance_margin:.8f}",
            )
        )

    # ----------------------------------------------------------------- the ledger (for tests and admin)
    def ledger(self) -> dict[str, float]:
        """Equity against its P&L components: ``equity − start = realised + unrealised + funding − fees``."""
        account = self.account()
        return {
            "start": self.config.initial_balance,
            "equity": account.equity,
            "realised": self.realised_total(),
            "unrealised": account.unrealised_pnl,
            "funding": self.funding_total,
            "fees": self.fees_paid,
        }


def _strike(listed: Listed) -> float:
    if listed.strike is None:
        raise ValueError(f"{listed.name} has no strike")
    return listed.strike
