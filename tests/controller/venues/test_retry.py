"""Backoff for temporary venue errors, with the sleep passed in."""

from __future__ import annotations

import random

import pytest

from controller.venues import FatalVenueError, TemporaryVenueError
from controller.venues.retry import BackoffPolicy, call_with_retries


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_retries_temporary_errors_with_growing_delays():
    slept: list[float] = []
    retries: list[int] = []
    op = Flaky([TemporaryVenueError("503"), TemporaryVenueError("timeout")])
    policy = BackoffPolicy(attempts=4, base_delay_s=1.0, max_delay_s=10.0, jitter=0.0)
    result = call_with_retries(
        op, policy=policy, sleep=slept.append, on_retry=lambda n, e, d: retries.append(n)
    )
    assert result == "ok" and op.calls == 3
    assert slept == [1.0, 2.0] and retries == [1, 2]


def test_gives_up_after_the_attempts_with_the_last_error():
    slept: list[float] = []
    op = Flaky([TemporaryVenueError(str(i)) for i in range(10)])
    with pytest.raises(TemporaryVenueError, match="2"):
        call_with_retries(op, policy=BackoffPolicy(attempts=3, jitter=0.0), sleep=slept.append)
    assert op.calls == 3 and len(slept) == 2


def test_fatal_errors_are_not_retried():
    op = Flaky([FatalVenueError("bad key")])
    with pytest.raises(FatalVenueError):
        call_with_retries(op, policy=BackoffPolicy(), sleep=lambda s: pytest.fail("must not sleep"))
    assert op.calls == 1


def test_delays_are_capped_and_jittered_within_bounds():
    policy = BackoffPolicy(attempts=10, base_delay_s=0.5, max_delay_s=4.0, jitter=0.25)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(1, 10)]
    assert all(0.375 <= d <= 5.0 for d in delays)
    assert max(delays[4:]) <= 4.0 * 1.25 and min(delays[4:]) >= 4.0 * 0.75


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base_delay_s": 5, "max_delay_s": 1}, {"jitter": 1.0}])
def test_policy_validation(kwargs):
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)
