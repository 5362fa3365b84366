"""Reports from a decision log: a summary, plots and a self-contained HTML page.

Read-only and tolerant: an empty or half-written log (a run that died before its first cycle, a
database with no tables yet) gives an empty summary and a page that says so — never a traceback.
Figures:

* share of time inside the band: cycles whose signed leverage lay within ``[band_low, band_high]``;
* turnover: the USD notional of filled orders; fees: their fees in coin, at the cycle's index;
* maximum drawdown and realised volatility of equity (log returns between cycles, annualised with
  the median cycle interval) against the target ``median(L* · σ̂)`` — the volatility that
  volatility targeting aims the equity at.
"""

from __future__ import annotations

import base64
import html
import json
import math
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

MAX_PLOT_POINTS = 5_000
GUARD_WORDS = (
    "stale",
    "jump",
    "unavailable",
    "disagree",
    "cooldown",
    "kill switch",
    "drawdown",
    "margin ratio",
)


@dataclass(frozen=True)
class LogData:
    runs: list[dict[str, Any]]
    cycles: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class Summary:
    cycles: int
    failed_cycles: int
    runs: int
    start: str | None
    end: str | None
    share_in_band: float | None
    rebalances: int
    orders_filled: int
    orders_rejected: int
    orders_recommended: int
    turnover_usd: float
    fees_usd: float
    max_drawdown: float | None
    equity_start_usd: float | None
    equity_end_usd: float | None
    realised_vol_equity: float | None
    target_vol_equity: float | None
    guard_trips: int
    warnings: int


def load_log(
    db: Path, *, since: str | None = None, until: str | None = None, run_id: int | None = None
) -> LogData:
    if not db.exists():
        raise FileNotFoundError(f"no decision log at {db}")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        if not {"runs", "cycles", "orders", "events"} <= tables:
            return LogData([], [], [], [])
        where, args = _filters(since, until, run_id)
        cycles = [dict(r) for r in conn.execute(f"select * from cycles {where} order by id", args)]
        ids = [c["id"] for c in cycles]
        orders = _rows(conn, "orders", ids) if ids else []
        events = [dict(r) for r in conn.execute(f"select * from events {where} order by id", args)]
        runs = [
            dict(r)
            for r in conn.execute(
                "select * from runs" + (" where id = ?" if run_id is not None else "") + " order by id",
                [run_id] if run_id is not None else [],
            )
        ]
    return LogData(runs, cycles, orders, events)


def _filters(since: str | None, until: str | None, run_id: int | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for clause, value in (("ts >= ?", since), ("ts <= ?", until), ("run_id = ?", run_id)):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    return ("where " + " and ".join(clauses)) if clauses else "", args


def _rows(conn: sqlite3.Connection, table: str, cycle_ids: list[int]) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in conn.execute(
            f"select * from {table} where cycle_id between ? and ? order by id",
            [min(cycle_ids), max(cycle_ids)],
        )
    ]


def summarize(data: LogData) -> Summary:
    good = [c for c in data.cycles if c["action"] != "ERROR" and c["equity_usd"] is not None]
    banded = [c for c in good if c["band_low"] is not None and c["signed_leverage"] is not None]
    inside = sum(1 for c in banded if c["band_low"] <= c["signed_leverage"] <= c["band_high"])
    index_of = {c["id"]: c["index_price"] for c in data.cycles}
    filled = [o for o in data.orders if o["status"] == "filled"]
    turnover = sum(json.loads(o["request"] or "{}").get("notional_usd", 0.0) for o in filled)
    fees = sum((o["fee_coin"] or 0.0) * (index_of.get(o["cycle_id"]) or 0.0) for o in filled)
    equity = np.array([c["equity_usd"] for c in good], dtype=float)
    return Summary(
        cycles=len(data.cycles),
        failed_cycles=len(data.cycles) - len(good),
        runs=len({c["run_id"] for c in data.cycles}),
        start=data.cycles[0]["ts"] if data.cycles else None,
        end=data.cycles[-1]["ts"] if data.cycles else None,
        share_in_band=inside / len(banded) if banded else None,
        rebalances=sum(1 for c in good if c["action"] in ("REBALANCE", "REDUCE")),
        orders_filled=len(filled),
        orders_rejected=sum(1 for o in data.orders if o["status"] == "rejected"),
        orders_recommended=sum(1 for o in data.orders if o["status"] == "recommended"),
        turnover_usd=turnover,
        fees_usd=fees,
        max_drawdown=float(np.max(1.0 - equity / np.maximum.accumulate(equity))) if equity.size else None,
        equity_start_usd=float(equity[0]) if equity.size else None,
        equity_end_usd=float(equity[-1]) if equity.size else None,
        realised_vol_equity=_realised_vol(good),
        target_vol_equity=_target_vol(good),
        guard_trips=sum(1 for c in good if _guard_trip(c)),
        warnings=sum(1 for e in data.events if e["level"] in ("warning", "error")),
    )


def _realised_vol(cycles: list[dict[str, Any]]) -> float | None:
    if len(cycles) < 3:
        return None
    equity = np.array([c["equity_usd"] for c in cycles], dtype=float)
    times = np.array([datetime.fromisoformat(c["ts"]).timestamp() for c in cycles])
    step = float(np.median(np.diff(times)))
    if step <= 0:
        return None
    returns = np.diff(np.log(equity))
    return float(np.std(returns, ddof=1) * math.sqrt(365 * 86400 / step))


def _target_vol(cycles: list[dict[str, Any]]) -> float | None:
    values = [
        abs(c["target_leverage"]) * c["sigma_hat"]
        for c in cycles
        if c["target_leverage"] is not None and c["sigma_hat"] is not None
    ]
    return float(np.median(values)) if values else None


def _guard_trip(cycle: dict[str, Any]) -> bool:
    reason = (cycle["reason"] or "").lower()
    return cycle["action"] == "HALT" or cycle["state"] == "REDUCING" or any(w in reason for w in GUARD_WORDS)


# --------------------------------------------------------------------- plots and the page


def plot(data: LogData, out: Path) -> dict[str, Path]:
    """Write the PNG plots; returns their paths by name (none when there is nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = [c for c in data.cycles if c["action"] != "ERROR" and c["equity_usd"] is not None]
    if not every:
        return {}
    # a line needs no more points than a plot has pixels: thin long logs, keep every rebalance
    stride = max(1, len(every) // MAX_PLOT_POINTS)
    good = [c for i, c in enumerate(every) if i % stride == 0 or c["action"] in ("REBALANCE", "REDUCE")]
    t = np.array(
        [datetime.fromisoformat(c["ts"]).replace(tzinfo=None) for c in good]
    )  # UTC, naive for matplotlib

    def col(name: str) -> np.ndarray:
        return np.array([np.nan if c[name] is None else c[name] for c in good], dtype=float)

    paths: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.fill_between(
        t, col("band_low"), col("band_high"), color="tab:green", alpha=0.15, label="no-trade band"
    )
    ax.plot(t, col("target_leverage"), color="tab:green", lw=1, label="target L*")
    ax.plot(t, col("signed_leverage"), color="tab:blue", lw=1.2, label="leverage L")
    trades = [i for i, c in enumerate(good) if c["action"] in ("REBALANCE", "REDUCE")]
    ax.scatter(t[trades], col("signed_leverage")[trades], color="tab:red", s=14, zorder=3, label="rebalance")
    ax.set_title("Effective leverage against the target band")
    ax.legend(loc="best", fontsize=8)
    paths["leverage"] = _save(fig, out / "leverage.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.plot(t, col("sigma_hat") * 100, color="tab:purple", label="σ̂ (%)")
    ax.set_ylabel("σ̂ %")
    twin = ax.twinx()
    twin.plot(t, col("target_leverage"), color="tab:green", label="L*")
    twin.set_ylabel("target leverage")
    ax.set_title("Volatility signal and the target it sets")
    paths["volatility"] = _save(fig, out / "volatility.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    equity = col("equity_usd")
    ax.plot(t, equity, color="tab:blue", label="equity (USD)")
    twin = ax.twinx()
    twin.plot(t, equity - equity[0], color="tab:orange", lw=0.8, label="P&L (USD)")
    ax.set_title("Equity and P&L")
    paths["equity"] = _save(fig, out / "equity.png")

    fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharex=True)
    for axis, (name, label) in zip(
        axes.flat,
        (
            ("delta_usd", "delta (USD)"),
            ("dollar_gamma_usd", "dollar gamma (USD/1 %)"),
            ("vega_usd", "vega (USD/vol pt)"),
            ("theta_usd", "theta (USD/day)"),
        ),
        strict=True,
    ):
        axis.plot(t, col(name), lw=1)
        axis.set_title(label, fontsize=9)
    fig.suptitle("Book greeks")
    paths["greeks"] = _save(fig, out / "greeks.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.plot(t, col("margin_ratio") * 100, color="tab:red", label="margin ratio (%)")
    ax.set_ylabel("margin ratio %")
    twin = ax.twinx()
    twin.plot(t, col("worst_scenario_loss_usd"), color="tab:gray", lw=0.8, label="worst scenario (USD)")
    twin.set_ylabel("worst scenario loss USD")
    ax.set_title("Margin ratio and worst scenario loss")
    paths["margin"] = _save(fig, out / "margin.png")
    plt.close("all")
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def write_report(
    data: LogData, out: Path, *, title: str, replays: list[dict[str, Any]] | None = None
) -> Path:
    """``report.html`` (images inline, so the file stands alone) and the PNGs beside it.

    ``replays``: rows of :func:`controller.replay_metrics.comparison_rows`, shown as a table of
    replayed runs side by side (the summary below mixes every run in scope).
    """
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(data)
    plots = plot(data, out)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if not data.cycles:
        parts.append(
            "<p>The decision log has no cycles yet (empty, or the run stopped before its first cycle).</p>"
        )
    if replays:
        parts.append(
            _table(
                "Replays: the controller beside its baselines",
                [{k: figure_text(k, v) for k, v in row.items()} for row in replays],
            )
        )
        parts.append(f"<p>{html.escape(REPLAY_NOTE)}</p>")
    parts.append(_table("Summary", [{"figure": k, "value": _fmt(v)} for k, v in asdict(summary).items()]))
    for name, path in plots.items():
        encoded = base64.b64encode(path.read_bytes()).decode()
        parts.append(f'<h2>{name}</h2><img alt="{name}" src="data:image/png;base64,{encoded}">')
    parts.append(
        _table(
            "Orders",
            [
                {
                    k: o[k]
                    for k in (
                        "cycle_id",
                        "label",
                        "instrument",
                        "side",
                        "amount",
                        "status",
                        "filled_amount",
                        "avg_price",
                        "error",
                    )
                }
                for o in data.orders[-500:]
            ],
        )
    )
    trips = [c for c in data.cycles if c["action"] == "ERROR" or _guard_trip(c)]
    parts.append(
        _table(
            "Guard trips and failed cycles",
            [{k: c[k] for k in ("n", "ts", "state", "action", "reason")} for c in trips[-500:]],
        )
    )
    parts.append(
        _table(
            "Events (warnings and errors)",
            [
                {k: e[k] for k in ("ts", "level", "kind", "message")}
                for e in data.events
                if e["level"] != "info"
            ][-500:],
        )
    )
    page = out / "report.html"
    page.write_text(_page(title, "\n".join(parts)), encoding="utf-8")
    return page


REPLAY_NOTE = (
    "vol: annualised volatility of equity over the whole run; vol of vol: standard deviation of its "
    "30-day rolling value; tracking error: root-mean-square distance of that rolling value from the "
    "target L_base·σ_ref. Turnover and trades count the controller's filled orders; fees and funding "
    "come from the simulator's ledger (funding paid is positive when the account paid it)."
)
PERCENT_FIGURES = {
    "target vol",
    "vol",
    "vol of vol",
    "tracking error",
    "return / yr",
    "worst day",
    "max drawdown",
    "in band",
}


def figure_text(name: str, value: Any) -> str:
    """A comparison figure as text: fractions as percentages, other numbers plainly."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if name in PERCENT_FIGURES:
            return f"{value:.1%}"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _table(caption: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"<h2>{html.escape(caption)}</h2><p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>" for r in rows
    )
    return f"<h2>{html.escape(caption)}</h2><table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


def _page(title: str, body: str) -> str:
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
    )
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"
