"""Every ccxt exception class lands in our small hierarchy, with no secret in the message."""

from __future__ import annotations

import ccxt
import pytest

from controller.venues import (
    FatalVenueError,
    OrderNotFoundError,
    OrderRejectedError,
    OrderRequest,
    Side,
    TemporaryVenueError,
)
from controller.venues.ccxt_deribit import CcxtVenue, CcxtVenueSettings

SECRET = "s3cr3t-value-that-must-not-leak"
KEY = "key-value-also-private"


class FakeExchange:
    """Stands in for ccxt.deribit: raises what it is told to, on every call."""

    def __init__(self, config):
        self.urls = {"api": {"rest": "https://www.deribit.com"}, "test": {"rest": "https://test.deribit.com"}}
        self.error: Exception | None = None

    def set_sandbox_mode(self, on):
        self.urls["api"] = self.urls["test"]

    def load_markets(self, reload=False):
        raise self.error

    def fetch_balance(self, params):
        raise self.error


@pytest.mark.parametrize(
    ("error", "ours", "words"),
    [
        (ccxt.AuthenticationError, FatalVenueError, "API credentials"),
        (ccxt.PermissionDenied, FatalVenueError, "permission"),
        (ccxt.AccountSuspended, FatalVenueError, "suspended"),
        (ccxt.InsufficientFunds, OrderRejectedError, "not enough funds"),
        (ccxt.OrderNotFound, OrderNotFoundError, "no such order"),
        (ccxt.InvalidOrder, OrderRejectedError, "rejected the order"),
        (ccxt.RateLimitExceeded, TemporaryVenueError, "rate limited"),
        (ccxt.DDoSProtection, TemporaryVenueError, "rate limited"),
        (ccxt.RequestTimeout, TemporaryVenueError, "timed out"),
        (ccxt.OnMaintenance, TemporaryVenueError, "maintenance"),
        (ccxt.ExchangeNotAvailable, TemporaryVenueError, "not available"),
        (ccxt.NetworkError, TemporaryVenueError, "network error"),
        (ccxt.BadSymbol, FatalVenueError, "unknown instrument"),
        (ccxt.BadRequest, FatalVenueError, "malformed"),
        (ccxt.NotSupported, FatalVenueError, "not supported"),
        (ccxt.ExchangeError, FatalVenueError, "exchange error"),
    ],
)
def test_translation_table(error, ours, words):
    venue = CcxtVenue(CcxtVenueSettings(), api_key=KEY, api_secret=SECRET, exchange_factory=FakeExchange)
    venue._exchange.error = error(
        f'deribit {{"error": {{"code": 1, "message": "x", "data": {{"reason": "{SECRET} {KEY}"}}}}}}'
    )
    with pytest.raises(ours) as caught:
        venue.load_instruments()
    message = str(caught.value)
    assert words in message and "could not load instruments" in message
    assert SECRET not in message and KEY not in message and "***" in message
    assert type(caught.value) is ours or issubclass(type(caught.value), ours)


def test_unsupported_exchange_is_refused():
    with pytest.raises(FatalVenueError, match="not supported yet"):
        CcxtVenue(CcxtVenueSettings(exchange="binance"), api_key=None, api_secret=None)


def test_order_requests_are_validated_before_anything_is_sent():
    with pytest.raises(ValueError, match="positive"):
        OrderRequest("BTC-PERPETUAL", Side.BUY, 0, "x")
    with pytest.raises(ValueError, match="label"):
        OrderRequest("BTC-PERPETUAL", Side.BUY, 10, "")
