"""levctl pricing: pure numerics (no I/O, no clock, no exchange).

Black-76 greeks and implied volatility, vectorised over numpy arrays, Deribit instruments and
book aggregation, in the units of DESIGN §2.
"""

from pricing._inputs import InvalidInputError
from pricing.black76 import DAYS_PER_YEAR, VOL_POINT, Greeks, black_price, greeks
from pricing.book import (
    BookError,
    BookGreeks,
    Position,
    PositionRisk,
    RiskTotals,
    UnderlyingRisk,
    book_greeks,
)
from pricing.implied_vol import ImpliedVol, IVReason, implied_vol
from pricing.instruments import (
    Future,
    Instrument,
    InstrumentNameError,
    Option,
    Perpetual,
    Settlement,
    deribit_expiry_code,
    parse_deribit_name,
    year_fraction,
)
from pricing.scenario_prices import ScenarioPricer

__all__ = [
    "DAYS_PER_YEAR",
    "VOL_POINT",
    "BookError",
    "BookGreeks",
    "Future",
    "Greeks",
    "IVReason",
    "ImpliedVol",
    "Instrument",
    "InstrumentNameError",
    "InvalidInputError",
    "Option",
    "Perpetual",
    "Position",
    "PositionRisk",
    "RiskTotals",
    "ScenarioPricer",
    "Settlement",
    "UnderlyingRisk",
    "black_price",
    "book_greeks",
    "deribit_expiry_code",
    "greeks",
    "implied_vol",
    "parse_deribit_name",
    "year_fraction",
]
