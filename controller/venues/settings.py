"""Plain settings of the venues, apart from the venues themselves: reading a config loads neither
ccxt nor the simulator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class CcxtVenueSettings:
    exchange: str = "deribit"
    currency: str = "BTC"
    hedge_instrument: str = "BTC-PERPETUAL"
    sandbox: bool = True  # the exchange's testnet; False is the real exchange
    rest_url: str | None = None  # e.g. http://127.0.0.1:8765 for `levctl sim serve`
    timeout_ms: int = 10_000
    use_vol_index: bool = False  # also read the exchange's volatility index (DVOL): one more call


@dataclass(frozen=True)
class SimSettings:
    """The simulated exchange a run opens: its market, account and listing."""

    currency: str = "BTC"
    hedge_instrument: str = "BTC-PERPETUAL"
    seed: int = 7
    start: datetime = datetime(2026, 1, 2, 8, tzinfo=UTC)
    initial_balance: float = 10.0  # coin
    replay: str | None = None  # a market-history CSV instead of the stochastic market
    use_vol_index: bool = False
    weeklies: int = 3
    monthlies: int = 3
    quarterlies: int = 3
    strikes_each_side: int = 14
    margin_model: str = "standard"  # or "portfolio": Deribit's portfolio margin (an account setting)


@dataclass(frozen=True)
class StartingPosition:
    """A position the paper account opens with: the perpetual, or the listed option nearest a shape."""

    kind: str  # "option" or "perpetual"
    size: float  # coin for options, USD for the perpetual; signed
    right: str | None = None  # "call" or "put"
    expiry_days: float | None = None  # the listed expiry nearest this many days ahead
    moneyness: float | None = None  # strike / index: the nearest listed strike
