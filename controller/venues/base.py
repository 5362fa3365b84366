"""The venue protocol: what the controller sees of any exchange (ccxt-backed or simulated).

Everything here is data: frozen dataclasses with UTC timestamps.  A venue translates its own
failures into the small hierarchy of :mod:`controller.venues.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, Protocol, runtime_checkable

from controller.venues.errors import OrderRejectedError
from pricing import Instrument


@dataclass(frozen=True)
class InstrumentSpec:
    """Trading rules of one instrument, as the venue publishes them."""

    name: str
    instrument: Instrument  # the parsed contract (kind, underlying, expiry, strike, settlement)
    tick_size: float  # price increment, in the instrument's quote (coin for inverse options)
    min_amount: float  # smallest order amount; amounts are multiples of it
    contract_size: float
    inverse: bool
    maker_fee: float
    taker_fee: float
    # Deribit's tick_size_steps: (above_price, tick) — from that price up, that tick applies
    tick_size_steps: tuple[tuple[float, float], ...] = ()

    def tick_at(self, price: float) -> float:
        """The tick in force at ``price``: the step with the highest ``above_price`` at or below it."""
        tick = self.tick_size
        for above, step in self.tick_size_steps:
            if price >= above:
                tick = step
        return tick

    @property
    def kind(self) -> str:
        return self.instrument.kind

    @property
    def expiry(self) -> datetime | None:
        return self.instrument.expiry


@dataclass(frozen=True)
class ExchangeGreeks:
    """Position-level greeks as the exchange reports them (Deribit: coin delta, USD vega/theta)."""

    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None


@dataclass(frozen=True)
class PositionSnapshot:
    """One position.  ``size`` is signed: USD for inverse futures/perpetuals, coin otherwise."""

    name: str
    instrument: Instrument
    size: float
    average_price: float
    mark_price: float  # coin per unit for inverse options, USD otherwise
    index_price: float
    underlying_price: float | None  # options: the forward (Deribit's underlying_price)
    mark_iv: float | None  # decimal
    exchange_greeks: ExchangeGreeks
    unrealized_pnl: float  # coin, since entry (Deribit's total_profit_loss)
    realized_pnl: float  # coin
    observed_at: datetime
    session_pnl: float | None = None  # coin, since the last daily settlement (floating_profit_loss)


@dataclass(frozen=True)
class Quote:
    """A ticker / book-summary line for one instrument."""

    name: str
    mark_price: float
    best_bid: float | None
    best_ask: float | None
    index_price: float | None
    underlying_price: float | None
    mark_iv: float | None  # decimal, options only
    observed_at: datetime


class ChainQuote(NamedTuple):
    """An option of the chain, enough to interpolate a 30-day ATM implied volatility (a tuple, not
    a dataclass: a cycle reads hundreds to thousands of them and a tuple is built 5x faster)."""

    name: str
    expiry: datetime
    strike: float
    is_call: bool
    underlying_price: float
    mark_iv: float  # decimal
    mark_price: float  # coin per unit (inverse) or USD (linear)
    observed_at: datetime


@dataclass(frozen=True)
class AccountSnapshot:
    """Everything one cycle needs from a venue, each figure with the time it was observed."""

    venue: str
    currency: str  # the margin currency, e.g. "BTC"
    taken_at: datetime  # local clock when the snapshot completed
    server_time: datetime  # the venue's clock at the last reply
    equity_coin: float
    balance_coin: float
    initial_margin_coin: float
    maintenance_margin_coin: float
    available_funds_coin: float
    index_price: float
    index_observed_at: datetime
    positions: tuple[PositionSnapshot, ...]
    hedge: Quote  # the hedge perpetual's ticker
    chain: tuple[ChainQuote, ...]
    funding_rate_8h: float | None
    funding_observed_at: datetime | None
    delta_total_coin: float | None = None  # the exchange's own position delta total, if given
    vol_index: float | None = None  # the venue's volatility index (Deribit DVOL), decimal, if read
    vol_index_observed_at: datetime | None = None
    rest_calls: int = 0  # requests this snapshot cost (for the bounded-API goal)

    @property
    def equity_usd(self) -> float:
        return self.equity_coin * self.index_price

    @property
    def clock_skew_s(self) -> float:
        """Local clock minus the exchange's, in seconds, at the end of the snapshot."""
        return (self.taken_at - self.server_time).total_seconds()

    @property
    def margin_ratio(self) -> float:
        """Maintenance margin over equity (0 when flat; >= 1 means liquidation)."""
        return self.maintenance_margin_coin / self.equity_coin if self.equity_coin > 0 else float("inf")


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self is not OrderStatus.OPEN


@dataclass(frozen=True)
class OrderRequest:
    instrument: str
    side: Side
    amount: float  # venue units: USD for inverse perpetuals/futures, coin for options
    label: str  # our deterministic client label; the venue echoes it back
    type: OrderType = OrderType.MARKET
    price: float | None = None  # limit orders only
    reduce_only: bool = False
    post_only: bool = False
    # Deribit's valid_until, in the exchange's clock: a request that reaches the matching engine
    # later is refused (13888 timed_out), so after it a lookup that finds nothing is proof
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        if not self.amount > 0:
            raise ValueError(f"order amount must be positive, got {self.amount}")
        if self.type is OrderType.LIMIT and (self.price is None or not self.price > 0):
            raise ValueError("a limit order needs a positive price")
        if self.type is OrderType.MARKET and self.post_only:
            raise ValueError("a market order cannot be post-only")
        if not self.label or len(self.label) > 64:
            raise ValueError("an order label is required (at most 64 characters)")


@dataclass(frozen=True)
class OrderReport:
    """An order as the venue reports it (its word for the order's state: ``status``)."""

    order_id: str
    label: str | None
    instrument: str
    side: Side
    type: OrderType
    amount: float
    filled_amount: float
    average_price: float | None
    price: float | None
    status: OrderStatus
    reduce_only: bool
    post_only: bool
    fee_coin: float | None  # signed (a maker rebate is < 0); None: not in the reply that reported it
    created_at: datetime
    updated_at: datetime
    info: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class TradeReport:
    """One fill of one of our orders, as the venue reports it (``fee_coin`` signed: a rebate is < 0)."""

    trade_id: str
    order_id: str
    label: str | None
    instrument: str
    side: Side
    amount: float
    price: float
    fee_coin: float
    time: datetime


def latest_order(orders: list[OrderReport]) -> OrderReport | None:
    """The newest of the orders a label lookup found (a label is sent once, but be safe)."""
    return max(orders, key=lambda o: o.created_at) if orders else None


def check_order(request: OrderRequest, spec: InstrumentSpec) -> None:
    """Refuse what the exchange would refuse or, worse, silently round (ccxt truncates amounts).

    Raises :class:`OrderRejectedError` before anything is sent.
    """
    lots = request.amount / spec.min_amount
    if abs(lots - round(lots)) > 1e-9 * max(1.0, lots) or round(lots) < 1:
        raise OrderRejectedError(
            f"order {request.label}: amount {request.amount:g} of {spec.name} is not a whole multiple of the "
            f"lot size {spec.min_amount:g}"
        )
    if request.price is not None:
        tick = spec.tick_at(request.price)
        ticks = request.price / tick
        if abs(ticks - round(ticks)) > 1e-9 * max(1.0, ticks):
            raise OrderRejectedError(
                f"order {request.label}: price {request.price:g} of {spec.name} is not a multiple of the "
                f"tick size {tick:g} in force at that price"
            )


@runtime_checkable
class Venue(Protocol):
    """Anything that can describe an account and take orders."""

    name: str

    def load_instruments(self) -> Mapping[str, InstrumentSpec]: ...

    def snapshot(self) -> AccountSnapshot: ...

    def place_order(self, request: OrderRequest) -> OrderReport: ...

    def get_order(self, *, order_id: str | None = None, label: str | None = None) -> OrderReport | None: ...

    def trades_by_label(self, label: str, instrument: str) -> list[TradeReport]:
        """Our recent fills in ``instrument`` that carry ``label`` (the order itself may be gone)."""
        ...

    def server_time(self) -> datetime:
        """The exchange's clock at its last reply (asked for when there was none)."""
        ...

    def cancel_order(self, order_id: str) -> OrderReport: ...

    def open_orders(self) -> list[OrderReport]: ...
