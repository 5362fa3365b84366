"""The report as one self-contained HTML page (plots inline) with its PNGs beside it.

Order: the replays' comparison table (when the log holds replays), a summary table with one column
per run, the advice and limit breaches with guard trips and failed cycles, then each run's own
section — its figures and plots — and the orders and events.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from controller.review.plots import plot_equity_together, plot_run
from controller.review.report import BOOK, LAST_ROWS, LogData, Summary, run_columns, summarize_runs

MAX_PLOTTED_RUNS = 12  # a log of many short runs: the latest ones are plotted
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
    "max_drawdown",
    "in band",
    "share_in_band",
    "return_total",
    "realised_vol_equity",
    "target_vol_equity",
    "nearest_cascade",
}
OPTIONAL_FIGURES = {
    "role",
    "part",
    "book_var_max_usd",
    "book_worst_scenario_usd",
    "nearest_cascade",
}  # rows shown when a run has them
USD_FIGURES = {
    "turnover_usd",
    "fees_usd",
    "equity_start_usd",
    "equity_end_usd",
    "book_var_max_usd",
    "book_worst_scenario_usd",
}
SUMMARY_LABELS = {
    "mode": "mode",
    "status": "status",
    "exit_reason": "exit reason",
    "role": "replay role",
    "part": "book or currency",
    "cycles": "cycles",
    "failed_cycles": "failed cycles",
    "start": "first cycle (UTC)",
    "end": "last cycle (UTC)",
    "share_in_band": "time inside the band",
    "rebalances": "rebalances",
    "orders_filled": "orders filled",
    "orders_rejected": "orders rejected",
    "orders_recommended": "orders recommended (dry run)",
    "turnover_usd": "turnover (USD)",
    "fees_usd": "fees (USD)",
    "max_drawdown": "maximum drawdown",
    "equity_start_usd": "equity at the start (USD)",
    "equity_end_usd": "equity at the end (USD)",
    "return_total": "return over the run",
    "realised_vol_equity": "realised volatility of equity (a year)",
    "target_vol_equity": "target volatility L*·σ̂ (median; a book: σ_book / E)",
    "book_var_max_usd": "largest joint 1-day VaR (USD)",
    "book_worst_scenario_usd": "worst joint scenario (USD, weighted)",
    "nearest_cascade": "nearest liquidation cascade (common move)",
    "guard_trips": "guard trips",
    "breaches": "limit breaches (episodes)",
    "warnings": "warnings and errors",
    "went_bust": "went bust",
}


def figure_text(name: str, value: Any) -> str:
    """A figure as text: fractions as percentages, USD with thousands separators, others plainly."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if name in PERCENT_FIGURES:
            return f"{value:.1%}"
        if name in USD_FIGURES:
            return f"{value:,.0f}"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def write_report(
    data: LogData, out: Path, *, title: str, replays: list[dict[str, Any]] | None = None
) -> Path:
    """``report.html`` (images inline, so the file stands alone) and the PNGs beside it.

    ``replays``: rows of :func:`controller.replay.metrics.comparison_rows`, shown first.
    """
    out.mkdir(parents=True, exist_ok=True)
    summaries = summarize_runs(data)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if not len(data.cycles):
        parts.append(
            "<p>The decision log has no cycles yet (empty, or the run stopped before its first cycle).</p>"
        )
    if replays:
        parts.append(
            html_table(
                "Replays: the controller beside its baselines",
                [{k: figure_text(k, v) for k, v in row.items()} for row in _with_bust(replays, summaries)],
            )
        )
        parts.append(f"<p>{html.escape(REPLAY_NOTE)}</p>")
    if summaries:
        parts.append(_summary_table(summaries))
        wholes = [(s, run_columns(data, s.run, s.part)) for s in summaries if s.part in (None, BOOK)]
        together = plot_equity_together(wholes, out)
        if together is not None:
            parts.append(_image("Equity of each run", together))
    parts.append(_breaches(data))
    runs = list(dict.fromkeys(s.run for s in summaries))
    plotted = [s for s in summaries if s.run in runs[-MAX_PLOTTED_RUNS:]]
    if len(runs) > MAX_PLOTTED_RUNS:
        parts.append(
            f"<p>{len(runs)} runs in scope: the last {MAX_PLOTTED_RUNS} are plotted "
            "(--run N for another).</p>"
        )
    for summary in plotted:
        parts.append(_run_section(data, summary, out))
    orders = data.orders[-LAST_ROWS:]
    order_columns = (
        *("run_id", "cycle_id", "currency", "label", "instrument", "side", "amount", "status"),
        *("filled_amount", "avg_price", "error"),
    )
    parts.append(html_table("Orders", [{k: o.get(k) for k in order_columns} for o in orders]))
    parts.append(html_table("Events (warnings and errors)", data.events))
    page = out / "report.html"
    page.write_text(html_page(title, "\n".join(parts)), encoding="utf-8")
    return page


def _with_bust(replays: list[dict[str, Any]], summaries: list[Summary]) -> list[dict[str, Any]]:
    bust = {s.run: s.went_bust for s in summaries}
    return [{**row, "went bust": bust.get(row["run"]) or "no"} for row in replays]


def _summary_table(summaries: list[Summary]) -> str:
    rows = []
    for key, label in SUMMARY_LABELS.items():
        values = [getattr(s, key) for s in summaries]
        if key in OPTIONAL_FIGURES and all(v is None for v in values):
            continue
        rows.append(
            {
                "figure": label,
                **{_run_name(s): figure_text(key, v) for s, v in zip(summaries, values, strict=True)},
            }
        )
    bust = [s for s in summaries if s.went_bust]
    note = "".join(
        f"<p class='bust'>run {s.run} ({html.escape(s.role or s.mode)}) WENT BUST at "
        f"{html.escape(s.went_bust or '')}: "
        "its equity reached zero; the figures after that point are not returns.</p>"
        for s in bust
    )
    return html_table("Summary, one column per run", rows) + note


def _run_name(s: Summary) -> str:
    return f"run {s.run}" + (f" {s.part}" if s.part else "") + (f" {s.role}" if s.role else f" {s.mode}")


def _breaches(data: LogData) -> str:
    episodes = [e.as_dict() for e in data.breaches[-LAST_ROWS:]]
    text = (
        "<p>Advice in words and sizes when a limit is exceeded (options limits: dollar gamma, vega, "
        "worst scenario loss), as episodes: from the cycle it began to the cycle it ended. Guard trips "
        "(holds, REDUCING, halts) and failed cycles follow.</p>"
    )
    return (
        "<h2>Advice and limit breaches</h2>"
        + text
        + html_table("Limit breaches", episodes, level=3)
        + html_table("Guard trips and failed cycles", data.trips, level=3)
    )


def _run_section(data: LogData, summary: Summary, out: Path) -> str:
    """A run's (or, in a portfolio run, its book's or one currency's) heading, breaches and plots."""
    of = f" {summary.part}" if summary.part and summary.part != BOOK else ""
    heading = f"Run {summary.run}{of} — {summary.role or summary.mode}, {summary.cycles} cycles"
    if summary.part == BOOK:
        heading = (
            f"Run {summary.run} — {summary.role or summary.mode}, the whole book, {summary.cycles} cycles"
        )
    if summary.went_bust:
        heading += f" — WENT BUST at {summary.went_bust}"
    prefix = f"run-{summary.run}-" + (f"{summary.part}-" if summary.part and summary.part != BOOK else "")
    columns = run_columns(data, summary.run, summary.part)
    if summary.part == BOOK:
        from controller.review.plots_book import plot_book

        rows = data.cycles.of_run(summary.run)
        legs = {name: rows.of_currency(name) for name in rows.currencies_held()}
        plots = plot_book(columns, legs, summary, out, prefix=prefix)
    else:
        plots = plot_run(columns, summary, out, prefix=prefix)
    parts = [f"<h2>{html.escape(heading)}</h2>"]
    breaches = [
        e.as_dict()
        for e in data.breaches
        if e.run_id == summary.run and summary.part in (None, e.currency)  # a book's are its currencies'
    ][-20:]
    if breaches:
        parts.append(html_table(f"Run {summary.run}{of}: limit breaches (last 20)", breaches, level=3))
    parts += [_image(f"run {summary.run}{of}: {name}", path) for name, path in plots.items()]
    if not plots:
        parts.append("<p>Too few good cycles to plot.</p>")
    return "\n".join(parts)


def _image(caption: str, path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    alt = html.escape(caption)
    image = f'<img alt="{alt}" src="data:image/png;base64,{encoded}">'
    return f"<figure>{image}<figcaption>{alt}</figcaption></figure>"


def html_table(caption: str, rows: list[dict[str, Any]], *, level: int = 2) -> str:
    if not rows:
        return f"<h{level}>{html.escape(caption)}</h{level}><p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>" for r in rows
    )
    return f"<h{level}>{html.escape(caption)}</h{level}><table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


def html_page(title: str, body: str) -> str:
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
        "figure{margin:1em 0}figcaption{font-size:11px;color:#555}.bust{color:#b00;font-weight:bold}"
    )
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"
