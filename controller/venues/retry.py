"""Retry temporary venue errors with exponential backoff; the clock (sleep) is passed in."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from controller.venues.errors import TemporaryVenueError

T = TypeVar("T")


@dataclass(frozen=True)
class BackoffPolicy:
    attempts: int = 4  # calls in all, the first included
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    jitter: float = 0.25  # +- share of each delay, drawn from the rng passed in

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, retry_number: int, rng: random.Random) -> float:
        """Delay before retry ``retry_number`` (1 for the first retry)."""
        raw = min(self.max_delay_s, self.base_delay_s * 2 ** (retry_number - 1))
        return raw * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))


def call_with_retries(
    operation: Callable[[], T],
    *,
    policy: BackoffPolicy,
    sleep: Callable[[float], None],
    rng: random.Random | None = None,
    on_retry: Callable[[int, TemporaryVenueError, float], None] | None = None,
) -> T:
    """Run ``operation``; on a :class:`TemporaryVenueError` wait and try again, up to the policy.

    Fatal errors and anything else propagate at once.  The last temporary error propagates when
    the attempts are used up.  ``on_retry(retry_number, error, delay)`` reports each retry.
    Only idempotent operations belong here: an order is never resent blindly (look it up by label).
    """
    rng = rng or random.Random(0)
    for attempt in range(1, policy.attempts + 1):
        try:
            return operation()
        except TemporaryVenueError as error:
            if attempt == policy.attempts:
                raise
            delay = policy.delay(attempt, rng)
            if on_retry is not None:
                on_retry(attempt, error, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
