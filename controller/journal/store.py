"""The decision log: SQLite through sqlite-utils, WAL mode, one transaction per cycle, append-only.

Tables: ``runs``, ``cycles``, ``positions`` (per position per cycle), ``orders``, ``order_events``,
``events``, ``replays`` and ``meta`` (the schema version, upgraded in place by
:mod:`controller.journal.schema`).  WAL lets a reader (the CLI, datasette, ``sqlite3``) read while
the bot writes; a cycle is committed whole or not at all, so a ``kill -9`` mid-cycle leaves earlier
cycles intact.

Orders are written ahead: :meth:`Journal.record_intent` commits an order's row (``status =
'sending'``) in its own transaction *before* the request leaves, and :meth:`Journal.record_transition`
commits every change of state, with a row in the append-only ``order_events``.  What was sent is in
the log even when the process dies a microsecond later, and a restart resumes from
:meth:`Journal.in_flight`.  Runs that send orders open the log ``durable`` (``synchronous = FULL``:
a commit survives a power cut, not just ``kill -9``).

Any failure to write raises :class:`JournalError`: the controller halts rather than trade on a log
that cannot record what it does.  A replay (:mod:`controller.replay.run`) writes through
:meth:`Journal.batched`, committing every few thousand cycles instead: it runs on a virtual clock
and can be run again, so per-cycle durability would only cost time.  Nothing written here holds a
secret.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from controller.journal.schema import MIGRATIONS, SCHEMA_VERSION
from controller.orders import IN_FLIGHT, OrderState, TrackedOrder
from controller.venues import Side


class JournalError(Exception):
    """The decision log cannot be written (disk full, read-only, not a levctl log …)."""


def refuse_foreign(path: Path) -> None:
    """Raise :class:`JournalError` when ``path`` cannot be a decision log: a directory, a file that
    is not SQLite, another program's database.  Read-only: such a file is left exactly as it was
    (not even switched to WAL), and nothing is created beside it."""
    if path.is_dir():
        raise JournalError(f"{path} is a directory, not a decision log (pass the .db file with --db)")
    if not path.is_file() or path.stat().st_size == 0:
        return  # a new log
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise JournalError(f"{path} is not a SQLite database, so not a decision log") from None
        raise JournalError(f"the decision log {path} cannot be read: {exc}") from None
    if names and "meta" not in names:
        shown = ", ".join(sorted(names)[:6])
        raise JournalError(
            f"{path} is not a levctl decision log (another program's database: {shown}); pass another --db"
        )


@dataclass
class CycleRecord:
    """Everything one cycle writes, collected first and committed in one transaction.

    ``orders`` are the orders that were never sent (recommendations, denials); sent orders are
    already in the log, written ahead, and are linked to the cycle's row here.
    """

    row: dict[str, Any]
    positions: list[dict[str, Any]] = field(default_factory=list)
    orders: list[TrackedOrder] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # row ids of the orders this cycle sent


class Journal:
    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = path
        self._commit_every = 0  # 0: every cycle is its own transaction
        self._uncommitted = 0
        self._insert_sql: dict[tuple[str, ...], str] = {}
        refuse_foreign(path)
        with self._writing("open it"):
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(path)
            self.db.enable_wal()
            # WAL + NORMAL survives kill -9 (a commit is in the WAL file); FULL also a power cut
            self.db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self.db.execute("PRAGMA busy_timeout = 5000")
            self._migrate()

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"the decision log {self.path} cannot be written ({what}): {exc}") from None

    @contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        """One committed transaction, or a part of the open batch (replays)."""
        with self._writing(what):
            if self._commit_every:
                yield
            else:
                with self.db.atomic():
                    yield

    def _migrate(self) -> None:
        with self.db.atomic():
            if "meta" not in self.db.table_names():
                self.db.table("meta").create({"key": str, "value": str}, pk="key")
            row = next(iter(self.db.table("meta").rows_where("key = ?", ["schema_version"])), None)
            version = int(row["value"]) if row else 0
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"the decision log {self.path} has schema version {version}, newer than this levctl "
                    f"knows ({SCHEMA_VERSION}): upgrade levctl"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](self.db)
            self.db.table("meta").upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")

    @property
    def schema_version(self) -> int:
        return int(self.db.table("meta").get("schema_version")["value"])

    # ----------------------------------------------------------------- runs
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
        pid: int | None = None,
        host: str | None = None,
    ) -> int:
        with self._transaction("start a run"):
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
                    "pid": pid,
                    "host": host,
                }
            )
        return int(table.last_pk or 0)

    def finish_run(self, run_id: int, *, finished_at: datetime, status: str, reason: str) -> None:
        with self._transaction("close the run"):
            self.db.table("runs").update(
                run_id, {"finished_at": finished_at.isoformat(), "status": status, "exit_reason": reason}
            )

    def running_runs(self) -> list[dict[str, Any]]:
        return list(self.db.query("select * from runs where status = 'running' order by id"))

    def close_crashed_runs(self, *, now: datetime, found_by: str) -> list[dict[str, Any]]:
        """Runs still marked running, found by a process that holds the log's lock: their process is gone."""
        crashed = self.running_runs()
        with self._transaction("close crashed runs"):
            for run in crashed:
                where = f"process {run['pid']} on {run['host']}" if run.get("pid") else "its process"
                self.db.table("runs").update(
                    run["id"],
                    {
                        "finished_at": now.isoformat(),
                        "status": "crashed",
                        "exit_reason": f"{where} ended without closing the run (found by {found_by})",
                    },
                )
        return crashed

    @contextmanager
    def batched(self, *, cycles_per_commit: int = 2000) -> Iterator[Journal]:
        """Commit every ``cycles_per_commit`` cycles instead of each, and whatever is left at the end."""
        with self._writing("begin a batch"):
            self.db.conn.execute("BEGIN")
        self._commit_every, self._uncommitted = cycles_per_commit, 0
        try:
            yield self
        finally:
            self._commit_every = 0
            with self._writing("commit a batch"):
                if self.db.conn.in_transaction:
                    self.db.conn.execute("COMMIT")

    # ----------------------------------------------------------------- cycles
    def write_cycle(self, record: CycleRecord) -> int:
        """Commit one cycle (its row, positions, orders and events) in a single transaction."""
        if self._commit_every:
            with self._writing("record a cycle"):
                cycle_id = self._write_cycle_rows(record)
                self._uncommitted += 1
                if self._uncommitted >= self._commit_every:
                    self.db.conn.execute("COMMIT")
                    self.db.conn.execute("BEGIN")
                    self._uncommitted = 0
            return cycle_id
        with self._transaction("record a cycle"):
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
        if record.orders:
            self.db.table("orders").insert_all({**order_row(o), "cycle_id": cycle_id} for o in record.orders)
        if record.sent:  # orders sent this cycle, already written ahead: link them to the cycle
            self.db.conn.executemany(
                "update orders set cycle_id = ? where id = ?", [[cycle_id, i] for i in record.sent]
            )
        if record.events:
            self.db.table("events").insert_all(_clean({**r, "cycle_id": cycle_id}) for r in record.events)
        return cycle_id

    # ----------------------------------------------------------------- orders, written ahead
    def record_intent(self, order: TrackedOrder, *, detail: str = "intent, before sending") -> TrackedOrder:
        """Commit the order's row before its request leaves (or an order adopted at start-up)."""
        with self._transaction(f"record the intent to send {order.label}"):
            row_id = int(self.db.table("orders").insert(order_row(order)).last_pk or 0)
            self._order_event(row_id, order, None, order.state, detail)
        return _with_row(order, row_id)

    def record_transition(self, before: TrackedOrder, after: TrackedOrder, *, detail: str) -> TrackedOrder:
        """Commit an order's new state, and the transition in ``order_events``."""
        if before.row_id is None:
            raise ValueError(f"order {before.label} has no journal row to update")
        with self._transaction(f"record {after.label} {after.state.value}"):
            self.db.table("orders").update(before.row_id, order_row(after))
            self._order_event(before.row_id, after, before.state, after.state, detail)
        return _with_row(after, before.row_id)

    def _order_event(
        self, row_id: int, order: TrackedOrder, source: OrderState | None, target: OrderState, detail: str
    ) -> None:
        self.db.table("order_events").insert(
            {
                "order_id": row_id,
                "run_id": order.run_id,
                "label": order.label,
                "ts": order.updated_at.isoformat(),
                "from_status": None if source is None else source.value,
                "to_status": target.value,
                "detail": detail,
            }
        )

    def in_flight(self) -> list[TrackedOrder]:
        """Every order whose outcome is not settled, whichever run sent it, oldest first."""
        marks = ",".join("?" for _ in IN_FLIGHT)
        rows = self.db.query(
            f"select * from orders where status in ({marks}) order by id", [s.value for s in IN_FLIGHT]
        )
        return [tracked_from_row(r) for r in rows]

    def labels(self, prefix: str) -> set[str]:
        """Every order label the log holds that starts with ``prefix``."""
        rows = self.db.query("select label from orders where label like ? escape '\\'", [_like(prefix)])
        return {r["label"] for r in rows}

    # ----------------------------------------------------------------- the state a restart resumes
    def last_carried_state(self, currency: str) -> tuple[int, str] | None:
        """(cycle id, JSON) of the newest cycle in ``currency`` that saved the controller's state."""
        row = next(
            self.db.query(
                "select id, carried_state from cycles where carried_state is not null and currency = ? "
                "order by id desc limit 1",
                [currency],
            ),
            None,
        )
        return None if row is None else (row["id"], row["carried_state"])

    def last_portfolio_state(self) -> tuple[int, str] | None:
        """(cycle id, JSON) of the newest cycle whose portfolio figures saved the correlation's state."""
        row = next(
            self.db.query(
                "select id, portfolio from cycles where portfolio like '%\"correlation_state\"%' "
                "order by id desc limit 1"
            ),
            None,
        )
        return None if row is None else (row["id"], row["portfolio"])

    def index_history(self, currency: str, *, since: datetime) -> list[dict[str, Any]]:
        """The index (and implied vol) the controller saw in ``currency`` since ``since`` (exchange time)."""
        return list(
            self.db.query(
                "select venue_time, index_price, sigma_implied from cycles "
                "where currency = ? and venue_time >= ? and index_price is not null order by id",
                [currency, since.isoformat()],
            )
        )

    # ----------------------------------------------------------------- other records
    def record_replay(self, row: Mapping[str, Any]) -> None:
        with self._transaction("record a replay"):
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
        with self._transaction(f"record a {kind} event"):
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

    def close(self) -> None:
        self.db.close()


def integrity_ok(path: Path) -> bool:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def order_row(o: TrackedOrder) -> dict[str, Any]:
    """The ``orders`` row of an order (the request as sent, and what became of it)."""
    return _clean(
        {
            "run_id": o.run_id,
            "cycle_n": o.cycle_n,
            "label": o.label,
            "instrument": o.instrument,
            "currency": o.instrument.split("-", 1)[0],
            "side": o.side.value,
            "amount": o.amount,
            "type": "market",
            "reduce_only": int(o.reduce_only),
            "status": o.state.value,
            "exchange_order_id": o.exchange_order_id,
            "filled_amount": o.filled_amount,
            "avg_price": o.avg_price,
            "fee_coin": o.fee_coin,
            "error": o.error,
            "ts": o.created_at,
            "updated_at": o.updated_at,
            "valid_until": o.valid_until,
            "position_before": o.position_before,
            "notional_usd": o.notional_usd,
            "lookups": o.lookups,
            "resolved_by": o.resolved_by,
            "request": {
                "instrument": o.instrument,
                "side": o.side.value,
                "amount": o.amount,
                "reduce_only": o.reduce_only,
                "notional_usd": o.notional_usd,
                "delta_usd_change": o.delta_usd_change,
                "valid_until": None if o.valid_until is None else o.valid_until.isoformat(),
            },
        }
    )


def tracked_from_row(r: Mapping[str, Any]) -> TrackedOrder:
    request = json.loads(r.get("request") or "{}")
    return TrackedOrder(
        label=r["label"],
        run_id=r["run_id"],
        cycle_n=r.get("cycle_n") or 0,
        instrument=r["instrument"],
        side=Side(r["side"]),
        amount=r["amount"],
        reduce_only=bool(r["reduce_only"]),
        state=OrderState(r["status"]),
        created_at=datetime.fromisoformat(r["ts"]),
        updated_at=datetime.fromisoformat(r.get("updated_at") or r["ts"]),
        notional_usd=r.get("notional_usd") or 0.0,
        delta_usd_change=request.get("delta_usd_change", 0.0),
        valid_until=None if not r.get("valid_until") else datetime.fromisoformat(r["valid_until"]),
        position_before=r.get("position_before"),
        exchange_order_id=r.get("exchange_order_id"),
        filled_amount=r.get("filled_amount") or 0.0,
        avg_price=r.get("avg_price"),
        fee_coin=r.get("fee_coin"),
        lookups=r.get("lookups") or 0,
        error=r.get("error"),
        resolved_by=r.get("resolved_by"),
        row_id=r["id"],
    )


def _with_row(order: TrackedOrder, row_id: int) -> TrackedOrder:
    return replace(order, row_id=row_id)


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


POSITION_COLUMNS = (
    "instrument",
    "currency",
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
    kind = type(value)
    if kind is float:  # nearly every figure: the common case first
        return None if value != value else value
    if kind is str or value is None:
        return value
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    """JSON for structures, plain numbers for numpy scalars, None for NaN."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        kind = type(value)
        if kind is float:
            out[key] = None if value != value else value
        elif kind is str or kind is int or value is None:
            out[key] = value
        elif isinstance(value, (dict, list, tuple)):
            out[key] = json.dumps(value, default=str)
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        else:
            out[key] = _plain(value)
    return out
