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


CYCLE_NUMBERS = (
    "equity_usd",
    "index_price",
    "sigma_hat",
    "signed_leverage",
    "target_leverage",
    "band_low",
    "band_high",
    "delta_usd",
    "dollar_gamma_usd",
    "vega_usd",
    "theta_usd",
    "margin_ratio",
    "worst_scenario_loss_usd",
)
# epoch seconds, to SQLite's millisecond; a trip: halted, reducing, or a guard's words in the reason
_GUARD_TRIP = " or ".join(
    ["action = 'HALT'", "state = 'REDUCING'", *(f"coalesce(reason, '') like '%{w}%'" for w in GUARD_WORDS)]
)
_CYCLE_QUERY = (
    "select id, run_id, round((julianday(ts) - 2440587.5) * 86400000.0) / 1000.0, "
    "action != 'ERROR' and equity_usd is not null, action in ('REBALANCE', 'REDUCE'), "
    f"coalesce({_GUARD_TRIP}, 0), {', '.join(CYCLE_NUMBERS)} from cycles {{where}} order by id"
)
CHUNK_ROWS = 20_000  # rows turned into arrays at a time: the log never sits in memory as Python objects
LAST_ROWS = 500  # rows of the page's tables (orders, guard trips, events)


@dataclass(frozen=True)
class CycleColumns:
    """The cycles in scope as arrays (NULL is NaN), in log order: what the summary and plots read."""

    id: np.ndarray
    run_id: np.ndarray
    t_s: np.ndarray  # epoch seconds
    good: np.ndarray  # neither failed nor without equity
    rebalance: np.ndarray  # REBALANCE or REDUCE
    guard_trip: np.ndarray
    numbers: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.id.size)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.numbers[name]

    @staticmethod
    def empty() -> CycleColumns:
        return CycleColumns.of(np.empty((0, 6 + len(CYCLE_NUMBERS))))

    @staticmethod
    def of(table: np.ndarray) -> CycleColumns:
        ids, runs, times, good, rebalance, trip = table[:, :6].T
        return CycleColumns(
            ids.astype(np.int64),
            runs.astype(np.int64),
            times,
            good == 1,
            rebalance == 1,
            trip == 1,
            dict(zip(CYCLE_NUMBERS, table[:, 6:].T, strict=True)),
        )


@dataclass(frozen=True)
class LogData:
    runs: list[dict[str, Any]]
    cycles: CycleColumns
    span: tuple[str | None, str | None]  # the first and last cycle's time, as logged
    orders: list[dict[str, Any]]  # the orders of the cycles in scope
    trips: list[dict[str, Any]]  # the last guard trips and failed cycles
    events: list[dict[str, Any]]  # the last warnings and errors
    warnings: int  # warnings and errors in all


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
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        if not {"runs", "cycles", "orders", "events"} <= tables:
            return LogData([], CycleColumns.empty(), (None, None), [], [], [], 0)
        where, args = _filters(since, until, run_id)
        cycles = _cycle_columns(conn, where, args)
        conn.row_factory = sqlite3.Row
        first, last = (
            conn.execute(f"select ts from cycles {where} order by id {way} limit 1", args).fetchone()
            for way in ("asc", "desc")
        )
        orders = (
            _rows(conn, "orders", "*", "cycle_id between ? and ?", [int(cycles.id[0]), int(cycles.id[-1])])
            if len(cycles)
            else []
        )
        trips = _rows(
            conn,
            "cycles",
            "n, ts, state, action, reason",
            f"(action = 'ERROR' or {_GUARD_TRIP})",
            [],
            where,
            args,
        )
        events = _rows(conn, "events", "ts, level, kind, message", "level != 'info'", [], where, args)
        warned = f"{where} and" if where else "where"
        (warnings,) = conn.execute(
            f"select count(*) from events {warned} level in ('warning', 'error')", args
        ).fetchone()
        runs = [
            dict(r)
            for r in conn.execute(
                "select * from runs" + (" where id = ?" if run_id is not None else "") + " order by id",
                [run_id] if run_id is not None else [],
            )
        ]
    span = (first and first[0], last and last[0])
    return LogData(runs, cycles, span, orders, trips, events, warnings)


def _cycle_columns(conn: sqlite3.Connection, where: str, args: list[Any]) -> CycleColumns:
    cursor = conn.execute(_CYCLE_QUERY.format(where=where), args)
    chunks = []
    while rows := cursor.fetchmany(CHUNK_ROWS):
        chunks.append(np.array(rows, dtype=float))  # None becomes NaN
    return CycleColumns.of(np.concatenate(chunks)) if chunks else CycleColumns.empty()


def _rows(
    conn: sqlite3.Connection,
    table: str,
    columns: str,
    condition: str,
    condition_args: list[Any],
    where: str = "",
    args: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``table`` meeting ``condition`` (and the filters), the last :data:`LAST_ROWS` unless
    it is the orders, in log order."""
    clause = f"{where} and {condition}" if where else f"where {condition}"
    limit = "" if table == "orders" else f" limit {LAST_ROWS}"
    query = f"select {columns} from {table} {clause} order by id desc{limit}"
    return [dict(r) for r in conn.execute(query, [*(args or []), *condition_args])][::-1]


def _filters(since: str | None, until: str | None, run_id: int | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for clause, value in (("ts >= ?", since), ("ts <= ?", until), ("run_id = ?", run_id)):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    return ("where " + " and ".join(clauses)) if clauses else "", args


def summarize(data: LogData) -> Summary:
    c = data.cycles
    good = c.good
    equity = c["equity_usd"][good]
    band_low, band_high, lev = (c[k][good] for k in ("band_low", "band_high", "signed_leverage"))
    banded = ~np.isnan(band_low) & ~np.isnan(lev)
    inside = int(np.count_nonzero((band_low <= lev) & (lev <= band_high) & banded))
    index_of = dict(zip(c.id.tolist(), c["index_price"].tolist(), strict=True))
    filled = [o for o in data.orders if o["status"] == "filled"]
    turnover = sum(json.loads(o["request"] or "{}").get("notional_usd", 0.0) for o in filled)
    fees = sum((o["fee_coin"] or 0.0) * _number(index_of.get(o["cycle_id"])) for o in filled)
    return Summary(
        cycles=len(c),
        failed_cycles=int(np.count_nonzero(~good)),
        runs=int(np.unique(c.run_id).size),
        start=data.span[0],
        end=data.span[1],
        share_in_band=inside / int(np.count_nonzero(banded)) if banded.any() else None,
        rebalances=int(np.count_nonzero(c.rebalance & good)),
        orders_filled=len(filled),
        orders_rejected=sum(1 for o in data.orders if o["status"] == "rejected"),
        orders_recommended=sum(1 for o in data.orders if o["status"] == "recommended"),
        turnover_usd=turnover,
        fees_usd=fees,
        max_drawdown=float(np.max(1.0 - equity / np.maximum.accumulate(equity))) if equity.size else None,
        equity_start_usd=float(equity[0]) if equity.size else None,
        equity_end_usd=float(equity[-1]) if equity.size else None,
        realised_vol_equity=_realised_vol(c.t_s[good], equity),
        target_vol_equity=_target_vol(c["target_leverage"][good], c["sigma_hat"][good]),
        guard_trips=int(np.count_nonzero(c.guard_trip & good)),
        warnings=data.warnings,
    )


def _number(value: float | None) -> float:
    return 0.0 if value is None or value != value else value  # NULL (None, NaN) counts as 0


def _realised_vol(times: np.ndarray, equity: np.ndarray) -> float | None:
    if equity.size < 3:
        return None
    step = float(np.median(np.diff(times)))
    if step <= 0:
        return None
    returns = np.diff(np.log(equity))
    return float(np.std(returns, ddof=1) * math.sqrt(365 * 86400 / step))


def _target_vol(target: np.ndarray, sigma: np.ndarray) -> float | None:
    values = np.abs(target) * sigma
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None


# --------------------------------------------------------------------- plots and the page


def plot(data: LogData, out: Path) -> dict[str, Path]:
    """Write the PNG plots; returns their paths by name (none when there is nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = data.cycles
    every = np.flatnonzero(c.good)
    if not every.size:
        return {}
    # a line needs no more points than a plot has pixels: thin long logs, keep every rebalance
    stride = max(1, every.size // MAX_PLOT_POINTS)
    kept = every[(np.arange(every.size) % stride == 0) | c.rebalance[every]]
    t = (c.t_s[kept] * 1e6).astype("datetime64[us]")  # UTC

    def col(name: str) -> np.ndarray:
        return c[name][kept]

    paths: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.fill_between(
        t, col("band_low"), col("band_high"), color="tab:green", alpha=0.15, label="no-trade band"
    )
    ax.plot(t, col("target_leverage"), color="tab:green", lw=1, label="target L*")
    ax.plot(t, col("signed_leverage"), color="tab:blue", lw=1.2, label="leverage L")
    trades = c.rebalance[kept]
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
    # fixed margins (room for the rotated dates and a twin axis): a tight layout would draw every
    # figure twice, and on a long log laying out the date ticks is most of the report's time
    fig.subplots_adjust(left=0.08, right=0.88, bottom=0.2, top=0.88, hspace=0.4, wspace=0.3)
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
    if not len(data.cycles):
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
                for o in data.orders[-LAST_ROWS:]
            ],
        )
    )
    parts.append(_table("Guard trips and failed cycles", data.trips))
    parts.append(_table("Events (warnings and errors)", data.events))
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
