"""The decision log (SQLite through sqlite-utils): :class:`Journal` writes it, :mod:`.schema` upgrades it."""

from controller.journal.schema import MIGRATIONS, SCHEMA_VERSION
from controller.journal.store import CycleRecord, Journal, JournalError, integrity_ok, refuse_foreign

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CycleRecord",
    "Journal",
    "JournalError",
    "integrity_ok",
    "refuse_foreign",
]
