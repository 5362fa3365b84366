"""Instruments (options, perpetuals, dated futures) and Deribit instrument names.

Deribit names:

* ``BTC-PERPETUAL`` – inverse perpetual: sized in USD, margined and settled in BTC;
* ``BTC_USDC-PERPETUAL`` – linear perpetual: sized in BTC, settled in USDC;
* ``BTC-27SEP24`` – inverse dated future, expiring 27 Sep 2024 at 08:00 UTC;
* ``BTC-27SEP24-40000-C`` – coin-settled (inverse) option: premium quoted in BTC;
* ``XRP_USDC-30AUG24-0d625-C`` – linear option: premium in USDC, ``d`` marks a decimal point.

Every Deribit expiry is at 08:00 UTC.  Time to expiry is ACT/365 (DESIGN §2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

SECONDS_PER_YEAR = 365.0 * 86400.0
EXPIRY_HOUR_UTC = 8

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
_NAME = re.compile(
    r"""^(?P<base>[A-Z][A-Z0-9]*)(?:_(?P<settle>[A-Z]+))?-
        (?:(?P<perpetual>PERPETUAL)
          |(?P<day>\d{1,2})(?P<month>[A-Z]{3})(?P<year>\d{2})
           (?:-(?P<strike>\d+(?:d\d+)?)-(?P<right>[CP]))?)$""",
    re.VERBOSE,
)
_EXAMPLES = "BTC-PERPETUAL, BTC_USDC-PERPETUAL, BTC-27SEP24 or BTC-27SEP24-40000-C"


class InstrumentNameError(ValueError):
    """An instrument name does not follow Deribit's naming rules."""


class Settlement(StrEnum):
    INVERSE = "inverse"  # margined and settled in the underlying coin; futures sized in USD
    LINEAR = "linear"  # margined and settled in a stablecoin; sized in the underlying


@dataclass(frozen=True)
class Option:
    name: str
    underlying: str  # the coin, e.g. "BTC"
    settlement: Settlement
    settle_currency: str  # "BTC" for inverse options, "USDC" for linear ones
    expiry: datetime  # UTC
    strike: float  # USD
    is_call: bool
    contract_size: float = 1.0  # units of underlying per contract

    @property
    def kind(self) -> str:
        return "option"


@dataclass(frozen=True)
class Perpetual:
    name: str
    underlying: str
    settlement: Settlement
    settle_currency: str
    contract_size: float = 10.0  # USD per contract for inverse BTC-PERPETUAL; coin for linear

    @property
    def kind(self) -> str:
        return "perpetual"

    @property
    def expiry(self) -> None:
        return None


@dataclass(frozen=True)
class Future:
    name: str
    underlying: str
    settlement: Settlement
    settle_currency: str
    expiry: datetime
    contract_size: float = 10.0

    @property
    def kind(self) -> str:
        return "future"


Instrument = Option | Perpetual | Future


def parse_deribit_name(name: str) -> Instrument:
    """Parse a Deribit instrument name into an :data:`Instrument`.

    Raises :class:`InstrumentNameError` naming the problem for anything else (combos, spreads,
    lower case, impossible dates, zero strikes).
    """
    if not isinstance(name, str):
        raise InstrumentNameError(f"instrument name must be a string, got {type(name).__name__}")
    return _parse_name(name)


@lru_cache(maxsize=65536)  # instruments are immutable and a chain repeats its names every cycle
def _parse_name(name: str) -> Instrument:
    match = _NAME.match(name)
    if match is None:
        raise InstrumentNameError(f"cannot parse instrument name {name!r}: expected e.g. {_EXAMPLES}")
    base = match["base"]
    settle = match["settle"]
    settlement = Settlement.LINEAR if settle else Settlement.INVERSE
    settle_currency = settle or base
    if match["perpetual"]:
        size = 1.0 if settle else 10.0
        return Perpetual(name, base, settlement, settle_currency, contract_size=size)
    expiry = _parse_expiry(name, match["day"], match["month"], match["year"])
    if match["strike"] is None:
        size = 1.0 if settle else 10.0
        return Future(name, base, settlement, settle_currency, expiry, contract_size=size)
    strike = float(match["strike"].replace("d", "."))
    if strike <= 0:
        raise InstrumentNameError(f"instrument {name!r}: strike must be positive")
    return Option(name, base, settlement, settle_currency, expiry, strike, match["right"] == "C")


def _parse_expiry(name: str, day: str, month: str, year: str) -> datetime:
    if month not in _MONTHS:
        raise InstrumentNameError(f"instrument {name!r}: unknown month {month!r}")
    try:
        return datetime(2000 + int(year), _MONTHS[month], int(day), EXPIRY_HOUR_UTC, tzinfo=UTC)
    except ValueError as exc:
        raise InstrumentNameError(f"instrument {name!r}: invalid expiry date ({exc})") from exc


def deribit_expiry_code(expiry: datetime) -> str:
    """The date part of a Deribit name: ``27SEP24``, ``4DEC26`` (no leading zero)."""
    month = next(m for m, i in _MONTHS.items() if i == expiry.month)
    return f"{expiry.day}{month}{expiry.year % 100:02d}"


def year_fraction(*, start: datetime, end: datetime) -> float:
    """ACT/365 years from ``start`` to ``end`` (negative if ``end`` is earlier); both tz-aware."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("year_fraction needs timezone-aware datetimes (UTC)")
    return (end - start) / timedelta(seconds=1) / SECONDS_PER_YEAR


__all__ = [
    "EXPIRY_HOUR_UTC",
    "SECONDS_PER_YEAR",
    "Future",
    "Instrument",
    "InstrumentNameError",
    "Option",
    "Perpetual",
    "Settlement",
    "deribit_expiry_code",
    "parse_deribit_name",
    "year_fraction",
]
