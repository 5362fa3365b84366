"""Reading a decision log back (read-only; works while the bot writes, thanks to WAL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from controller.review.render import fmt_optional

CYCLE_COLUMNS = (
    "id, run_id, n, ts, state, action, reason, equity_usd, index_price, sigma_hat, delta_usd, leverage, "
    "signed_leverage, leverage_iv, leverage_stress, target_leverage, band_low, band_high, margin_ratio, "
    "worst_scenario_loss_usd, latency_ms"
)


def recent_activity(
    db: Path, *, since: str | None = None, limit: int = 20
) -> dict[str, list[dict[str, Any]]]:
    """The latest runs, cycles (at most ``limit``), their orders and the events since the first of them."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        if "cycles" not in tables:
            return {"runs": [], "cycles": [], "orders": [], "events": [], "in_flight": []}
        where, args = ("where ts >= ?", [since]) if since else ("", [])
        cycles = [
            dict(r)
            for r in conn.execute(
                f"select {CYCLE_COLUMNS} from cycles {where} order by id desc limit ?", [*args, limit]
            )
        ][::-1]
        first_id = cycles[0]["id"] if cycles else None
        orders = (
            []
            if first_id is None
            else [
                dict(r)
                for r in conn.execute(
                    "select cycle_id, label, instrument, side, amount, status, exchange_order_id, "
                    "filled_amount, avg_price, error "
                    "from orders where cycle_id >= ? order by id",
                    [first_id],
                )
            ]
        )
        first_ts = cycles[0]["ts"] if cycles else since
        events = [
            dict(r)
            for r in conn.execute(
                "select ts, run_id, cycle_id, level, kind, message from events "
                + ("where ts >= ? " if first_ts else "")
                + "order by id desc limit 200",
                [first_ts] if first_ts else [],
            )
        ][::-1]
        runs = [
            dict(r)
            for r in conn.execute(
                "select id, started_at, finished_at, mode, venue, status, exit_reason, config_sha256 "
                "from runs "
                "order by id desc limit 5"
            )
        ][::-1]
        in_flight = [
            dict(r)
            for r in conn.execute(
                "select run_id, label, instrument, side, amount, status, ts, error from orders "
                "where status in ('sending', 'unknown', 'open') order by id"
            )
        ]
    return {"runs": runs, "cycles": cycles, "orders": orders, "events": events, "in_flight": in_flight}


def render_activity(console: Console, activity: dict[str, list[dict[str, Any]]]) -> None:
    runs = Table(title="runs", title_justify="left")
    for column in ("id", "started", "mode", "venue", "status", "exit reason"):
        runs.add_column(column)
    for r in activity["runs"]:
        runs.add_row(
            str(r["id"]),
            str(r["started_at"])[:19],
            r["mode"],
            r["venue"],
            r["status"] or "",
            r["exit_reason"] or "",
        )
    console.print(runs)
    for r in activity["runs"]:
        if r["status"] in ("halted", "crashed", "failed"):
            console.print(f"[bold red]run {r['id']} {r['status'].upper()}[/]: {r['exit_reason'] or ''}")
    if activity.get("in_flight"):
        pending = Table(title="orders in flight (outcome not settled)", title_justify="left")
        for column in ("run", "label", "instrument", "side", "amount", "status", "since", "error"):
            pending.add_column(column)
        for o in activity["in_flight"]:
            pending.add_row(
                str(o["run_id"]),
                o["label"],
                o["instrument"],
                o["side"],
                f"{o['amount']:g}",
                o["status"],
                str(o["ts"])[:19],
                (o["error"] or "")[:60],
            )
        console.print(pending)
    cycles = Table(title="cycles", title_justify="left")
    for column in (
        "run",
        "n",
        "time",
        "state",
        "action",
        "equity $",
        "L",
        "L*",
        "band",
        "σ̂",
        "L_stress",
        "reason",
    ):
        cycles.add_column(
            column, justify="right" if column not in ("time", "state", "action", "reason") else "left"
        )
    for c in activity["cycles"]:
        band = "" if c["band_low"] is None else f"[{c['band_low']:+.2f}, {c['band_high']:+.2f}]"
        cycles.add_row(
            str(c["run_id"]),
            str(c["n"]),
            str(c["ts"])[:19],
            c["state"],
            c["action"],
            fmt_optional(c["equity_usd"], ",.0f", ""),
            fmt_optional(c["signed_leverage"], "+.2f", ""),
            fmt_optional(c["target_leverage"], "+.2f", ""),
            band,
            fmt_optional(c["sigma_hat"], ".1%", ""),
            fmt_optional(c["leverage_stress"], ".2f", ""),
            (c["reason"] or "")[:90],
        )
    console.print(cycles)
    if activity["orders"]:
        orders = Table(title="orders", title_justify="left")
        for column in (
            "cycle",
            "label",
            "instrument",
            "side",
            "amount",
            "status",
            "exchange id",
            "filled",
            "avg price",
            "error",
        ):
            orders.add_column(column)
        for o in activity["orders"]:
            orders.add_row(
                str(o["cycle_id"]),
                o["label"],
                o["instrument"],
                o["side"],
                f"{o['amount']:g}",
                o["status"],
                o["exchange_order_id"] or "",
                fmt_optional(o["filled_amount"], "g", ""),
                fmt_optional(o["avg_price"], "g", ""),
                (o["error"] or "")[:60],
            )
        console.print(orders)
    notable = [
        e for e in activity["events"] if e["level"] != "info" or e["kind"] in ("start", "stop", "reconcile")
    ]
    if notable:
        events = Table(title="events", title_justify="left")
        for column in ("time", "level", "kind", "message"):
            events.add_column(column)
        for e in notable[-40:]:
            events.add_row(str(e["ts"])[:19], e["level"], e["kind"], e["message"][:120])
        console.print(events)
