"""The venue error hierarchy: what can go wrong at the exchange boundary, in our own words.

A venue translates its own failures (ccxt exceptions, simulator error codes) into these, with
messages a person understands and that never contain a secret: :class:`TemporaryVenueError`
(retry with backoff) and :class:`FatalVenueError` (stop safely), with finer kinds below it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

# What Python raises when a reply is not the shape a parser expects (truncated JSON, a null where a
# number belongs, NaN, a missing key, an unknown enum value …).
READ_ERRORS = (TypeError, KeyError, ValueError, AttributeError, IndexError, ArithmeticError)


class VenueError(Exception):
    """A venue operation failed; the message is fit for a person and holds no secret."""


class TemporaryVenueError(VenueError):
    """Network trouble, rate limiting, maintenance: worth retrying with backoff."""


class FatalVenueError(VenueError):
    """Bad credentials, missing permission, rejected order, malformed reply: do not retry blindly."""


class AccessDeniedError(FatalVenueError):
    """Bad or missing credentials, or a permission the key lacks: the loop must stop."""


class OrderRejectedError(FatalVenueError):
    """The venue refused an order (insufficient funds, invalid amount, post-only would cross …)."""


class OrderNotFoundError(FatalVenueError):
    """No order with that id or label."""


class MalformedReplyError(FatalVenueError):
    """The venue answered with something that is not what its API promises (missing or NaN fields)."""


class UnknownInstrumentError(MalformedReplyError):
    """The account holds something the controller cannot price (an instrument it does not know)."""


SendOutcome = Literal["rejected", "unknown"]


def send_outcome(exc: BaseException) -> SendOutcome:
    """What a failed order send tells us about the order: ``rejected`` only when the venue said no.

    An error reply (not enough funds, a bad amount, bad credentials …) means the request was
    refused and nothing was placed.  A timeout, a network error, a 5xx, a rate limit or a reply we
    could not read says nothing: the order may have reached the matching engine, so it is
    ``unknown`` until it is found by its label or proven never placed.
    """
    if isinstance(exc, (TemporaryVenueError, MalformedReplyError)):
        return "unknown"
    if isinstance(exc, VenueError):
        return "rejected"
    return "unknown"


@contextmanager
def reading_reply(what: str) -> Iterator[None]:
    """Parse a reply: anything but our own errors becomes a :class:`MalformedReplyError` saying ``what``."""
    try:
        yield
    except VenueError:
        raise
    except READ_ERRORS as exc:
        detail = f"{type(exc).__name__}: {exc}"[:200]
        raise MalformedReplyError(f"{what}: the exchange's reply could not be read [{detail}]") from None
