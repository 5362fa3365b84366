"""Our errors at the command line: one clear line on stderr and an exit status, never a traceback.

A user error (a bad config, CSV, instrument name or input) exits 1; a run stopped on something a
person must act on (bad credentials, a halt that repetition cannot fix) exits 3.  The error classes
are named, not imported, so that handling them loads nothing a command does not use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

EXIT_USER_ERROR = 1
EXIT_STOPPED = 3

USER_ERRORS = frozenset(
    {
        "controller.config.base.ConfigError",
        "controller.journal.store.JournalError",
        "controller.lock.AlreadyRunningError",
        "controller.lock.LockFileError",
        "controller.cli.positions_file.PositionsFileError",
        "controller.sim.market.ReplayError",
        "controller.review.logdb.LogReadError",
        "controller.review.notify.NotifyError",
        "controller.review.live.ServeError",
        "controller.replay.walkforward.CalibrationError",
        "pricing._inputs.InvalidInputError",
        "pricing.book.BookError",
        "pricing.instruments.InstrumentNameError",
    }
)


def is_user_error(exc: BaseException) -> bool:
    """True when ``exc`` is (a subclass of) one of :data:`USER_ERRORS`."""
    return any(f"{c.__module__}.{c.__qualname__}" in USER_ERRORS for c in type(exc).__mro__)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn our own errors into ``click.ClickException`` (one line, exit status 1)."""
    try:
        yield
    except Exception as exc:
        if is_user_error(exc):
            raise click.ClickException(str(exc)) from None
        raise
