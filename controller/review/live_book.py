"""What the live page shows of a run of several currencies: the whole book and each currency.

A portfolio writes one row per currency each cycle (they share ``n``); every row carries the book's
figures.  The page reads the book from the latest cycle's rows, and each currency from its own rows:
its latest cycle, its latest good figures and the positions of that cycle.  The correlation's saved
state (part of the ``portfolio`` JSON) is left out: it is the controller's, not a figure.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from controller.review.breaches import advice_texts

POSITION_COLUMNS = (
    "instrument, size, mark_price, mark_iv, delta, dollar_gamma_usd, vega, theta, exchange_delta"
)
GOAL_KEYS = ("delta_usd", "goal_delta_usd", "hedge_change_usd", "risk_contribution_usd", "frozen")


def portfolio_state(conn: sqlite3.Connection, recent: list[dict[str, Any]]) -> dict[str, Any]:
    """``currencies``, ``legs`` (per currency: cycle, figures, positions, advice) and ``book``."""
    currencies = list(dict.fromkeys(c["currency"] for c in recent if c.get("currency")))
    legs = {}
    for name in currencies:
        rows = [c for c in recent if c.get("currency") == name]
        good = next((c for c in reversed(rows) if c["equity_usd"] is not None), None)
        legs[name] = {
            "cycle": rows[-1],
            "figures": good,
            "positions": positions_of(conn, good),
            "advice": advice_texts(good["advice"]) if good else [],
        }
    return {"currencies": currencies, "legs": legs, "book": book_figures(conn, recent, currencies)}


def positions_of(conn: sqlite3.Connection, cycle: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The positions a cycle recorded, with their greeks (none without a cycle)."""
    if cycle is None:
        return []
    query = f"select {POSITION_COLUMNS} from positions where cycle_id = ? order by id"
    return [dict(r) for r in conn.execute(query, [cycle["id"]])]


def book_figures(
    conn: sqlite3.Connection, recent: list[dict[str, Any]], currencies: list[str]
) -> dict[str, Any] | None:
    """The whole book at the latest cycle that recorded it (None before the first).

    A cycle whose currencies are still writing their rows is passed over for the one before it, so
    the book's equity is shown beside every currency's at the same cycle."""
    row = _latest_book_row(recent, set(currencies))
    if row is None:
        return None
    portfolio = _json(conn.execute("select portfolio from cycles where id = ?", [row["id"]]).fetchone()[0])
    equity, vol = row["portfolio_equity_usd"], row.get("book_vol_usd")
    goals = portfolio.get("goals") or {}
    return {
        "n": row["n"],
        "ts": row["ts"],
        "equity_usd": equity,
        "currency_equity_usd": {
            c["currency"]: c["equity_usd"] for c in recent if c["n"] == row["n"] and c.get("currency")
        },
        "book_vol_usd": vol,
        "vol_share": None if vol is None or not equity else vol / equity,
        "target_vol": portfolio.get("target_vol"),
        "risk_leverage": row.get("risk_leverage"),
        "portfolio_leverage": row.get("portfolio_leverage"),
        "correlation": _json(row.get("correlation")),
        "var_usd": row.get("portfolio_var_usd"),
        "es_usd": row.get("portfolio_es_usd"),
        "cascade_loss_usd": row.get("cascade_loss_usd"),
        "cascade_distance": row.get("cascade_distance"),
        "cascade_reason": (portfolio.get("cascade") or {}).get("reason"),
        "worst_scenario_usd": row.get("portfolio_worst_scenario_usd"),
        "worst_scenario": (portfolio.get("grid") or {}).get("worst") or {},
        "split": portfolio.get("split"),
        "scale": portfolio.get("scale"),
        "goals": {c: {k: g.get(k) for k in GOAL_KEYS} for c, g in goals.items()},
        "stresses": portfolio.get("stresses") or [],
        "reasons": portfolio.get("reasons") or [],
    }


def _latest_book_row(recent: list[dict[str, Any]], currencies: set[str]) -> dict[str, Any] | None:
    written: dict[int, set[str | None]] = {}
    for c in recent:
        written.setdefault(c["n"], set()).add(c.get("currency"))
    with_book = [c for c in reversed(recent) if c.get("portfolio_equity_usd") is not None]
    complete = (c for c in with_book if written[c["n"]] >= currencies)
    return next(complete, with_book[0] if with_book else None)


def _json(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
