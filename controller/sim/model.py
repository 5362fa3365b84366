"""The simulated exchange's data: its configuration, errors, quotes, orders, trades and views.

Errors carry Deribit's JSON-RPC codes (:class:`SimError`); everything else is plain data that the
engine owns and the Deribit face (:mod:`controller.sim.deribit_api`) renders as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from controller.sim.account import PositionBook
from controller.sim.funding import FundingParams
from controller.sim.listing import Listed, ListingParams, SmileParams
from controller.sim.margin import FeeParams, MarginParams
from controller.sim.market import StochasticVolParams

DEFAULT_START = datetime(2026, 1, 2, 8, 0, tzinfo=UTC)


class SimError(Exception):
    """A request the exchange refuses, with Deribit's JSON-RPC error code."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int = 400,
        reason: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(f"{message} ({code})" if reason is None else f"{message}: {reason} ({code})")
        self.code = code
        self.message = message
        self.reason = reason
        self.param = param  # Deribit's data.param: the parameter an "Invalid params" error is about
        self.http_status = http_status

    @property
    def data(self) -> dict[str, str] | None:
        """The error's ``data``: ``{reason, param}`` as Deribit sends them (absent when neither)."""
        data = {k: v for k, v in (("reason", self.reason), ("param", self.param)) if v}
        return data or None


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
    perp_price_band: float = 0.015  # the perpetual's min/max price: ±1.5 % of its mark
    future_price_band: float = 0.10
    funding: FundingParams = field(default_factory=FundingParams)
    margin_model: str = "standard"  # or "portfolio": Deribit's portfolio margin (.portfolio_margin)
    testnet: bool = True
    id_prefix: str = ""  # before the SIM-n / SIMT-n ids: unique ids across the engines of a MultiSim

    def __post_init__(self) -> None:
        if self.margin_model not in ("standard", "portfolio"):
            raise ValueError(f"margin_model must be 'standard' or 'portfolio', not {self.margin_model!r}")

    @property
    def currency(self) -> str:
        return self.listing.currency


@dataclass(frozen=True)
class SimQuote:
    name: str
    mark_price: float  # coin per unit for options, USD for futures
    best_bid: float | None
    best_ask: float | None
    index_price: float
    underlying_price: float  # options: the expiry's forward; futures: their own mark
    mark_iv: float | None  # decimal, options only
    current_funding: float | None  # perpetual only: the funding rate (per 8 h) in force
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
    band_price: float | None = None  # a market order: the price band's edge it may trade up to
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
    underlying_price: float | None = None  # options: the forward and mark IV (percent) at the fill
    iv: float | None = None


@dataclass(frozen=True)
class AccountView:
    balance: float
    equity: float
    initial_margin: float
    maintenance_margin: float
    unrealised_pnl: float  # since entry
    realised_pnl: float
    funding: float
    fees: float
    options_value: float
    futures_session_upl: float  # since the last daily settlement
    options_session_upl: float
    futures_session_rpl: float
    options_session_rpl: float
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
