"""``levctl report``: a self-contained HTML report (and plots) from a decision log, per run."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import click

from controller.cli.errors import user_errors
from controller.cli.params import INSTANT
from controller.replay.metrics import compare_replays, comparison_rows
from controller.review.report import load_log, summarize_runs


@click.command()
@click.option("--db", type=click.Path(path_type=Path), default=Path("logs/levctl.db"), show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("logs/report"),
    show_default=True,
    help="Folder for report.html and its PNG plots.",
)
@click.option("--since", type=INSTANT, help="Cycles at or after this time (ISO 8601, or 6h, 2d ago).")
@click.option("--until", type=INSTANT, help="Cycles at or before this time.")
@click.option("--run", "run_id", type=int, help="One run only.")
@click.option("--json", "as_json", is_flag=True, help="Print one summary per run as JSON (no files written).")
def report(
    db: Path, out: Path, since: datetime | None, until: datetime | None, run_id: int | None, as_json: bool
) -> None:
    """Summary per run, plots, advice and breaches, orders and events of a decision log."""
    with user_errors():
        data = load_log(db, since=since, until=until, run_id=run_id)
        replays = comparison_rows(compare_replays(db, run_ids={r["id"] for r in data.runs}))
    if as_json:
        runs = [asdict(s) for s in summarize_runs(data)]
        breaches = [e.as_dict() for e in data.breaches]
        click.echo(json.dumps({"runs": runs, "replays": replays, "breaches": breaches}, indent=2))
        return
    from controller.review.page import write_report  # the plotting stack loads only for the page

    title = f"levctl report — {db}" + (f", run {run_id}" if run_id else "")
    page = write_report(data, out, title=title, replays=replays)
    click.echo(f"levctl: report written to {page} ({len(data.cycles)} cycles, {len(data.runs)} runs)")
