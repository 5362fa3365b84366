"""The decision log: SQLite through sqlite-utils, WAL mode, one transaction per cycle, append-only.

Tables: ``runs``, ``cycles``, ``positions`` (per position per cycle), ``orders``, ``events`` and
``meta`` (the schema version, upgraded in place by :data:`MIGRATIONS`).  WAL lets a reader (the
CLI, datasette, ``sqlite3``) read while the bot writes; a cycle is committed whole or not at all,
so a ``kill -9`` mid-cycle leaves earlier cycles intact.  A replay (:mod:`controller.replay.run`)
writes through :meth:`Journal.batched`, committing every few thousand cycles instead: it runs on
a virtual clock and can be run again, so per-cycle durability would only cost time.  Nothing
written here holds a secret.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

SCHEMA_VERSION = 3


def _v1(db: sqlite_utils.Database) -> None:
    db.table("runs").create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "mode": str,
            "venue": str,
            "config_source": str,
            "config_json": str,
            "config_sha256": str,
            "version": str,
            "status": str,
            "exit_reason": str,
        },
        pk="id",
    )
    db.table("cycles").create(
        {
            "id": int,
            "run_id": int,
            "n": int,
            "ts": str,
            "venue_time": str,
            "state": str,
            "action": str,
            "reason": str,
            "equity_usd": float,
            "equity_coin": float,
            "index_price": float,
            "sigma_hat": float,
            "sigma_source": str,
            "delta_coin": float,
            "delta_usd": float,
            "dollar_gamma_usd": float,
            "vega_usd": float,
            "theta_usd": float,
            "leverage": float,
            "signed_leverage": float,
            "leverage_iv": float,
            "leverage_stress": float,
            "gross_leverage": float,
            "target_leverage": float,
            "band_low": float,
            "band_high": float,
            "margin_ratio": float,
            "worst_scenario_loss_usd": float,
            "worst_scenario": str,
            "liquidation_move": float,
            "latency_ms": float,
            "rest_calls": int,
            "advice": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("positions").create(
        {
            "id": int,
            "cycle_id": int,
            "instrument": str,
            "size": float,
            "mark_price": float,
            "mark_iv": float,
            "delta": float,
            "gamma": float,
            "vega": float,
            "theta": float,
            "dollar_gamma_usd": float,
            "exchange_delta": float,
        },
        pk="id",
        foreign_keys=[("cycle_id", "cycles", "id")],
    )
    db.table("orders").create(
        {
            "id": int,
            "run_id": int,
            "cycle_id": int,
            "label": str,
            "instrument": str,
            "side": str,
            "amount": float,
            "type": str,
            "reduce_only": int,
            "status": str,
            "exchange_order_id": str,
            "filled_amount": float,
            "avg_price": float,
            "fee_coin": float,
            "error": str,
            "request": str,
            "ts": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id"), ("cycle_id", "cycles", "id")],
    )
    db.table("events").create(
        {"id": int, "run_id": int, "cycle_id": int, "ts": str, "level": str, "kind": str, "message": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )


def _v2(db: sqlite_utils.Database) -> None:
    db.table("cycles").create_index(["run_id", "n"], if_not_exists=True)
    db.table("orders").create_index(["label"], if_not_exists=True)
    db.table("events").create_index(["run_id", "kind"], if_not_exists=True)


def _v3(db: sqlite_utils.Database) -> None:
    db.table("replays").create(
        {
            "id": int,
            "replay_key": str,  # one `levctl replay` invocation: its runs are compared side by side
            "run_id": int,
            "role": str,  # controller | fixed-leverage | buy-and-hold
            "book": str,
            "data_source": str,
            "data_sha256": str,
            "rows": int,
            "first_ts": str,
            "last_ts": str,
            "gaps": str,  # JSON list of [from, to]
            "target_vol": float,
            "ledger": str,  # JSON: the simulator's fees, funding, realised P&L … at the end
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("replays").create_index(["replay_key"], if_not_exists=True)


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _v1, 2: _v2, 3: _v3}


@dataclass
class CycleRecord:
    """Everything one cycle writes, collected first and committed in one transaction."""

    row: dict[str, Any]
    positions: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite_utils.Database(path)
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
        self.db.execute("PRAGMA busy_timeout = 5000")
        self._migrate()
        self._commit_every = 0  # 0: every cycle is its own transaction
        self._uncommitted = 0
        self._insert_sql: dict[tuple[str, ...], str] = {}

    def _migrate(self) -> None:
        with self.db.atomic():
            if "meta" not in self.db.table_names():
                self.db.table("meta").create({"key": str, "value": str}, pk="key")
            row = next(iter(self.db.table("meta").rows_where("key = ?", ["schema_version"])), None)
            version = int(row["value"]) if row else 0
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](self.db)
            self.db.table("meta").upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")

    @property
    def schema_version(self) -> int:
        return int(self.db.table("meta").get("schema_version")["value"])

    def start_run(
        self,
        *,
        started_at: datetime,
        mode: str,
        venue: str,
        config_source: str,
        config_json: str,
        config_sha256: str,
        version: str,
    ) -> int:
        with self.db.atomic():
            table = self.db.table("runs").insert(
                {
                    "started_at": started_at.isoformat(),
                    "mode": mode,
                    "venue": venue,
                    "config_source": config_source,
                    "config_json": config_json,
                    "config_sha256": config_sha256,
                    "version": version,
                    "status": "running",
                }
            )
        return int(table.last_pk or 0)

    def finish_run(self, run_id: int, *, finished_at: datetime, status: str, reason: str) -> None:
        with self.db.atomic():
            self.db.table("runs").update(
                run_id, {"finished_at": finished_at.isoformat(), "status": status, "exit_reason": reason}
            )

    @contextmanager
    def batched(self, *, cycles_per_commit: int = 2000) -> Iterator[Journal]:
        """Commit every ``cycles_per_commit`` cycles instead of each, and whatever is left at the end."""
        self.db.conn.execute("BEGIN")
        self._commit_every, self._uncommitted = cycles_per_commit, 0
        try:
            yield self
        finally:
            self._commit_every = 0
            if self.db.conn.in_transaction:
                self.db.conn.execute("COMMIT")

    def write_cycle(self, record: CycleRecord) -> int:
        """Commit one cycle (its row, positions, orders and events) in a single transaction."""
        if self._commit_every:
            cycle_id = self._write_cycle_rows(record)
            self._uncommitted += 1
            if self._uncommitted >= self._commit_every:
                self.db.conn.execute("COMMIT")
                self.db.conn.execute("BEGIN")
                self._uncommitted = 0
            return cycle_id
        with self.db.atomic():
            return self._write_cycle_rows(record)

    def _write_cycle_rows(self, record: CycleRecord) -> int:
        row = _clean(record.row)
        columns = tuple(row)
        sql = self._insert_sql.get(columns)
        if sql is None:  # one statement per shape of row (a failed cycle has fewer columns)
            sql = f"insert into cycles ({', '.join(columns)}) values ({', '.join('?' for _ in columns)})"
            self._insert_sql[columns] = sql
        cycle_id = int(self.db.conn.execute(sql, list(row.values())).lastrowid or 0)
        if record.positions:  # many rows of plain numbers: one executemany, no per-row checks
            names = [*POSITION_COLUMNS, "cycle_id"]
            marks = ", ".join("?" for _ in names)
            self.db.conn.executemany(
                f"insert into positions ({', '.join(names)}) values ({marks})",
                [[_plain(r.get(c)) for c in POSITION_COLUMNS] + [cycle_id] for r in record.positions],
            )
        for rows, table in ((record.orders, "orders"), (record.events, "events")):
            if rows:
                self.db.table(table).insert_all(_clean({**r, "cycle_id": cycle_id}) for r in rows)
        return cycle_id

    def record_replay(self, row: Mapping[str, Any]) -> None:
        with self.db.atomic():
            self.db.table("replays").insert(_clean(row))

    def event(
        self,
        *,
        run_id: int | None,
        ts: datetime,
        level: str,
        kind: str,
        message: str,
        cycle_id: int | None = None,
    ) -> None:
        """An event outside a cycle (start-up, reconciliation, shutdown), committed at once."""
        with self.db.atomic():
            self.db.table("events").insert(
                {
                    "run_id": run_id,
                    "cycle_id": cycle_id,
                    "ts": ts.isoformat(),
                    "level": level,
                    "kind": kind,
                    "message": message,
                }
            )

    def orders_with_labels(self, labels: Iterable[str]) -> list[dict[str, Any]]:
        wanted = list(labels)
        if not wanted:
            return []
        marks = ",".join("?" for _ in wanted)
        return list(self.db.table("orders").rows_where(f"label in ({marks})", wanted))

    def close(self) -> None:
        self.db.close()


def integrity_ok(path: Path) -> bool:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


POSITION_COLUMNS = (
    "instrument",
    "size",
    "mark_price",
    "mark_iv",
    "delta",
    "gamma",
    "vega",
    "theta",
    "dollar_gamma_usd",
    "exchange_delta",
)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    """JSON for structures, plain numbers for numpy scalars, None for NaN."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, default=str)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[key] = _plain(value)
    return out
