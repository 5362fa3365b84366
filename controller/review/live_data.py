"""What the live page shows, read from the decision log (read-only) in one pass.

The latest run and its latest cycle (state and why, leverage against the band and L*, every σ̂
column the log has, equity, margin ratio, distance to liquidation, VaR where cycles record it), the
positions of that cycle with their greeks and the totals, the last decisions with their reasons, the
last orders, warnings and errors, and the limit breaches over the recent cycles.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from controller.review.breaches import BreachTracker, advice_texts
from controller.review.live_book import portfolio_state, positions_of
from controller.review.logdb import LogReadError, is_log, open_log

RECENT_CYCLES = 300  # the breaches' and the plot's window
LAST_ROWS = 15
SIGMA_COLUMNS = (  # σ̂'s components, in logs whose cycles record them (schema 5), as the page names them
    ("sigma_implied", "implied"),
    ("sigma_realised", "realised"),
    ("vrp_ratio", "realised/implied"),
    ("sigma_implied_vrp", "implied × ratio"),
    ("sigma_blend", "blend"),
)
RISK_COLUMNS = ("currency", "var_usd", "es_usd", "var_dgv_usd", "es_dgv_usd", "var_worst_days")
BOOK_COLUMNS = (  # a portfolio's whole book (schema 6), the same on every currency's row of a cycle
    "portfolio_equity_usd",
    "portfolio_leverage",
    "risk_leverage",
    "book_vol_usd",
    "correlation",
    "portfolio_var_usd",
    "portfolio_es_usd",
    "cascade_loss_usd",
    "cascade_distance",
    "portfolio_worst_scenario_usd",
)


def live_state(db: Path) -> dict[str, Any]:
    """Everything the page shows; ``{"waiting": reason}`` while there is no cycle to show yet."""
    try:
        with open_log(db) as conn:
            if not is_log(conn, db):
                return {"waiting": f"the decision log {db} has no run yet"}
            return _read(conn, db)
    except LogReadError as exc:
        return {"waiting": str(exc)}


def _read(conn: sqlite3.Connection, db: Path) -> dict[str, Any]:
    run = conn.execute(
        "select id, started_at, finished_at, mode, venue, status, exit_reason, config_source, config_sha256, "
        "config_json from runs order by id desc limit 1"
    ).fetchone()
    if run is None:
        return {"waiting": f"the decision log {db} has no run yet"}
    columns = {r[1] for r in conn.execute("pragma table_info(cycles)")}
    sigma = [c for c, _ in SIGMA_COLUMNS if c in columns]
    extra = [c for c in (*RISK_COLUMNS, *sigma, *BOOK_COLUMNS) if c in columns]
    legs = _currencies_per_cycle(conn, run["id"], columns)
    select = (
        "id, run_id, n, ts, venue_time, state, action, reason, equity_usd, index_price, sigma_hat, "
        "sigma_source, delta_coin, delta_usd, dollar_gamma_usd, vega_usd, theta_usd, leverage, "
        "signed_leverage, leverage_iv, leverage_stress, gross_leverage, target_leverage, band_low, "
        "band_high, margin_ratio, "
        "worst_scenario_loss_usd, worst_scenario, liquidation_move, latency_ms, advice"
        + "".join(f", {c}" for c in extra)
        + (", json_extract(portfolio, '$.target_vol') as book_target_vol" if "portfolio" in columns else "")
    )
    recent = [
        dict(r)
        for r in conn.execute(
            f"select {select} from cycles where run_id = ? order by id desc limit ?",
            [run["id"], RECENT_CYCLES * legs],
        )
    ][::-1]
    last = recent[-1] if recent else None
    last_good = next((c for c in reversed(recent) if c["equity_usd"] is not None), None)
    positions = positions_of(conn, last_good)
    of = ", o.currency" if "currency" in {r[1] for r in conn.execute("pragma table_info(orders)")} else ""
    orders = [
        dict(r)
        for r in conn.execute(
            f"select o.ts, c.n{of}, o.label, o.instrument, o.side, o.amount, o.status, o.filled_amount, "
            "o.avg_price, o.error from orders o left join cycles c on c.id = o.cycle_id where o.run_id = ? "
            "order by o.id desc limit ?",
            [run["id"], LAST_ROWS],
        )
    ]
    events = [
        dict(r)
        for r in conn.execute(
            "select ts, level, kind, message from events where run_id = ? and level != 'info' "
            "order by id desc limit ?",
            [run["id"], LAST_ROWS],
        )
    ]
    tracker = BreachTracker()
    for c in recent:
        tracker.observe(c["run_id"], c["n"], c["ts"], advice_texts(c["advice"]), currency=c.get("currency"))
    if run["status"] != "running":
        tracker.finish_runs({run["id"]})
    portfolio = portfolio_state(conn, recent) if legs > 1 else {}
    return portfolio | {
        "run": {k: v for k, v in dict(run).items() if k != "config_json"},
        "limits": _limits(run["config_json"]),
        "cycle": last,
        "figures": last_good,
        "sigma_columns": sigma,
        "positions": positions,
        "decisions": [c for c in reversed(recent)][:LAST_ROWS],
        "orders": orders,
        "events": events,
        "breaches": [e.as_dict() for e in reversed(tracker.episodes)][:LAST_ROWS],
        "advice": advice_texts(last_good["advice"]) if last_good else [],
        "recent": recent,
    }


def _currencies_per_cycle(conn: sqlite3.Connection, run_id: int, columns: set[str]) -> int:
    """Rows per cycle of the run: its number of currencies (1 for a log without the column).

    Each currency commits its own row, so the latest cycle may hold only some of them yet: the two
    latest cycles are counted."""
    if "currency" not in columns:
        return 1
    count = conn.execute(
        "select count(distinct currency) from cycles where run_id = ? and n >= "
        "(select max(n) from cycles where run_id = ?) - 1",
        [run_id, run_id],
    ).fetchone()[0]
    return max(int(count or 1), 1)


def _limits(config_json: str | None) -> dict[str, Any]:
    """The run's own limits, from the config it logged: the VaR guard and level, the margin limit."""
    try:
        config = json.loads(config_json or "{}")
    except ValueError:
        config = {}
    guards, risk = config.get("guards") or {}, config.get("risk") or {}
    portfolio = config.get("portfolio") or {}
    return {
        "max_var_fraction": guards.get("max_var_fraction"),
        "var_level": risk.get("var_level"),
        "max_margin_ratio": guards.get("max_margin_ratio"),
        "book_max_var_fraction": portfolio.get("max_var_fraction"),
        "min_cascade_distance": portfolio.get("min_cascade_distance"),
    }
