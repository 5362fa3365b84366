"""The exchange boundary: the venue protocol and its data, the error hierarchy, and the venues.

* :mod:`.base` — the protocol (:class:`Venue`) and its frozen data (snapshots, orders, specs);
* :mod:`.errors` — our own small error hierarchy (temporary → retry; fatal → stop safely);
* :mod:`.deribit_json` — Deribit-shaped replies parsed into that data (both venues use it);
* :mod:`.ccxt_deribit` — the ccxt-backed venue (Deribit; testnet through sandbox mode);
* :mod:`.sim` — the simulated exchange in process (a paper account);
* :mod:`.readonly` — what a dry run may do with a venue: read;
* :mod:`.retry` — backoff for temporary errors.

``CcxtVenue`` and ``SimVenue`` are imported on first use, so that reading a config or a decision
log never loads ccxt or the simulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controller.venues.base import (
    AccountSnapshot,
    ChainQuote,
    ExchangeGreeks,
    InstrumentSpec,
    OrderReport,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionSnapshot,
    Quote,
    Side,
    TradeReport,
    Venue,
    check_order,
    latest_order,
)
from controller.venues.errors import (
    AccessDeniedError,
    FatalVenueError,
    MalformedReplyError,
    OrderNotFoundError,
    OrderRejectedError,
    TemporaryVenueError,
    UnknownInstrumentError,
    VenueError,
    send_outcome,
)
from controller.venues.readonly import ReadOnlyVenue
from controller.venues.retry import BackoffPolicy, call_with_retries
from controller.venues.settings import CcxtVenueSettings, SimSettings, StartingPosition

if TYPE_CHECKING:
    from controller.venues.ccxt_deribit import CcxtVenue
    from controller.venues.sim import SimVenue

_LAZY = {"CcxtVenue": "controller.venues.ccxt_deribit", "SimVenue": "controller.venues.sim"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AccessDeniedError",
    "AccountSnapshot",
    "BackoffPolicy",
    "CcxtVenue",
    "CcxtVenueSettings",
    "ChainQuote",
    "ExchangeGreeks",
    "FatalVenueError",
    "InstrumentSpec",
    "MalformedReplyError",
    "OrderNotFoundError",
    "OrderRejectedError",
    "OrderReport",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "PositionSnapshot",
    "Quote",
    "ReadOnlyVenue",
    "Side",
    "SimSettings",
    "SimVenue",
    "StartingPosition",
    "TemporaryVenueError",
    "TradeReport",
    "UnknownInstrumentError",
    "Venue",
    "VenueError",
    "call_with_retries",
    "check_order",
    "latest_order",
    "send_outcome",
]
