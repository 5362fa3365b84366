"""Opening a decision log to read it: read-only, and one clear error when the file is not one.

Every reader of the log (``levctl log``, ``report``, ``serve``) opens it here.  SQLite's URI
``mode=ro`` never writes, never creates the file and, in WAL mode, reads while the bot writes.  What
is refused, with one line naming the file: a missing path, a directory, a file that is not SQLite,
and another program's database (tables, but no levctl ``meta`` table).  A file with no tables at all
is a log whose first run died before writing anything: it reads as empty.

Times given by a person (``--since``, ``--until``) are instants: :func:`parse_instant` reads ISO 8601
with or without an offset (none means UTC), a bare date (midnight UTC), or a duration back from now
(``90m``, ``6h``, ``2d``); SQL compares them with ``julianday`` so offsets are honoured.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

LOG_TABLES = frozenset({"runs", "cycles", "orders", "events"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class LogReadError(Exception):
    """The decision log cannot be read: missing, a directory, not SQLite, or not a levctl log."""


@contextmanager
def open_log(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the decision log ``db`` (rows as :class:`sqlite3.Row`)."""
    if not db.exists():
        raise LogReadError(f"no decision log at {db} (run `levctl run` first, or pass --db)")
    if db.is_dir():
        raise LogReadError(f"{db} is a directory, not a decision log (pass the .db file with --db)")
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise LogReadError(f"cannot open the decision log {db}: {exc}") from None
    with closing(conn):
        conn.row_factory = sqlite3.Row
        names = table_names(conn, db)
        if names and "meta" not in names:
            shown = ", ".join(sorted(names)[:6]) + (" …" if len(names) > 6 else "")
            raise LogReadError(f"{db} is not a levctl decision log (another program's database: {shown})")
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            raise LogReadError(f"cannot read the decision log {db}: {exc}") from None


def table_names(conn: sqlite3.Connection, db: Path) -> set[str]:
    try:
        return {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise LogReadError(f"{db} is not a SQLite database (and so not a decision log)") from None
        raise LogReadError(f"cannot read the decision log {db}: {exc}") from None


def is_log(conn: sqlite3.Connection, db: Path) -> bool:
    """True when the log has its tables (False: empty, its first run died before writing)."""
    return table_names(conn, db) >= LOG_TABLES


def parse_instant(text: str, *, now: datetime | None = None, default_hour: int = 0) -> datetime:
    """An aware UTC instant from ISO 8601 (offset or not: none is UTC), a bare date (at
    ``default_hour`` UTC) or a duration back from ``now`` (``30m``, ``6h``, ``2d``).

    Raises :class:`ValueError` naming the text when it is none of these.
    """
    duration = _DURATION.match(text)
    if duration:
        seconds = float(duration.group(1)) * _UNIT_S[duration.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (ISO 8601 such as 2026-01-02T08:00:00+00:00 or 2026-01-02, "
            "or a duration back from now such as 6h or 2d)"
        ) from None
    if len(text.strip()) == 10:  # a bare date
        parsed = datetime.combine(parsed.date(), time(default_hour))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def time_filters(
    since: datetime | None, until: datetime | None, *, column: str = "ts"
) -> tuple[list[str], list[str]]:
    """SQL clauses and their arguments keeping rows whose ``column`` lies in [since, until]."""
    clauses, args = [], []
    for op, value in ((">=", since), ("<=", until)):
        if value is not None:
            clauses.append(f"julianday({column}) {op} julianday(?)")
            args.append(value.isoformat())
    return clauses, args
