"""Reading a decision log back (read-only; works while the bot writes, thanks to WAL).

:func:`recent_activity` is what ``levctl log`` shows; :func:`follow` yields what is written after
it (``levctl log --follow``).  Nothing here loads numpy or the controller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.review.breaches import BreachTracker, advice_texts
from controller.review.logdb import is_log, open_log, time_filters

CYCLE_COLUMNS = (
    "id, run_id, n, ts, state, action, reason, equity_usd, index_price, sigma_hat, delta_usd, leverage, "
    "signed_leverage, leverage_iv, leverage_stress, target_leverage, band_low, band_high, margin_ratio, "
    "worst_scenario_loss_usd, liquidation_move, latency_ms, advice"
)
OPTIONAL_COLUMNS = ("var_usd", "es_usd", "currency", "risk_leverage", "book_vol_usd")  # schema 5 and 6


def _cycle_columns(conn: Any) -> str:
    have = {r[1] for r in conn.execute("pragma table_info(cycles)")}
    return CYCLE_COLUMNS + "".join(f", {c}" for c in OPTIONAL_COLUMNS if c in have)


ORDER_COLUMNS = (
    "id, run_id, cycle_id, label, instrument, side, amount, status, exchange_order_id, filled_amount, "
    "avg_price, error"
)  # an order's currency is its instrument's
EMPTY: dict[str, list[dict[str, Any]]] = {
    "runs": [],
    "cycles": [],
    "orders": [],
    "events": [],
    "in_flight": [],
    "breaches": [],
}


def recent_activity(
    db: Path, *, since: datetime | None = None, until: datetime | None = None, limit: int = 20
) -> dict[str, list[dict[str, Any]]]:
    """The latest runs, cycles (at most ``limit``), their orders, the events since the first of them,
    and the limit breaches over those cycles (each episode once, with when it began and ended)."""
    with open_log(db) as conn:
        if not is_log(conn, db):
            return {k: [] for k in EMPTY}
        clauses, args = time_filters(since, until)
        where = f"where {' and '.join(clauses)}" if clauses else ""
        cycles = [
            _cycle_dict(r)
            for r in conn.execute(
                f"select {_cycle_columns(conn)} from cycles {where} order by id desc limit ?", [*args, limit]
            )
        ][::-1]
        first = cycles[0] if cycles else None
        orders = (
            []
            if first is None
            else [
                dict(r)
                for r in conn.execute(
                    f"select {ORDER_COLUMNS} from orders where cycle_id >= ? order by id", [first["id"]]
                )
            ]
        )
        event_since = [first["ts"]] if first else ([since.isoformat()] if since else [])
        events = [
            dict(r)
            for r in conn.execute(
                "select id, ts, run_id, cycle_id, level, kind, message from events "
                + ("where julianday(ts) >= julianday(?) " if event_since else "")
                + "order by id desc limit 200",
                event_since,
            )
        ][::-1]
        runs = [
            dict(r)
            for r in conn.execute(
                "select id, started_at, finished_at, mode, venue, status, exit_reason, config_sha256 "
                "from runs order by id desc limit 5"
            )
        ][::-1]
        in_flight = [
            dict(r)
            for r in conn.execute(
                "select run_id, label, instrument, side, amount, status, ts, error from orders "
                "where status in ('sending', 'unknown', 'open') order by id"
            )
        ]
    tracker = BreachTracker()
    for c in cycles:
        tracker.observe(c["run_id"], c["n"], c["ts"], c["advice"], currency=c.get("currency"))
    tracker.finish_runs({r["id"] for r in runs if r["status"] != "running"})
    return {
        "runs": runs,
        "cycles": cycles,
        "orders": orders,
        "events": events,
        "in_flight": in_flight,
        "breaches": [e.as_dict() for e in tracker.episodes],
    }


def _cycle_dict(row: Any) -> dict[str, Any]:
    cycle = dict(row)
    cycle["advice"] = advice_texts(cycle["advice"])
    return cycle


def follow(
    db: Path,
    *,
    after_cycle: int,
    after_event: int,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``("cycle", row)`` and ``("event", row)`` as they are written after the given row ids, in order,
    polling every ``poll_s`` seconds; it never ends by itself."""
    while True:
        with open_log(db) as conn:
            if is_log(conn, db):
                for r in conn.execute(
                    f"select {_cycle_columns(conn)} from cycles where id > ? order by id", [after_cycle]
                ):
                    after_cycle = r["id"]
                    yield "cycle", _cycle_dict(r)
                for r in conn.execute(
                    "select id, ts, run_id, cycle_id, level, kind, message from events "
                    "where id > ? order by id",
                    [after_event],
                ):
                    after_event = r["id"]
                    yield "event", dict(r)
        sleep(poll_s)


def last_ids(db: Path) -> tuple[int, int]:
    """The ids of the last cycle and the last event written (0 when none)."""
    with open_log(db) as conn:
        if not is_log(conn, db):
            return 0, 0
        (cycle,) = conn.execute("select coalesce(max(id), 0) from cycles").fetchone()
        (event,) = conn.execute("select coalesce(max(id), 0) from events").fetchone()
    return int(cycle), int(event)
