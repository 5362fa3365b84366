"""``levctl report``: a self-contained HTML report (and plots) from a decision log."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from controller.replay.metrics import compare_replays, comparison_rows
from controller.review.report import load_log, summarize, write_report


@click.command()
@click.option("--db", type=click.Path(path_type=Path), default=Path("logs/levctl.db"), show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("logs/report"),
    show_default=True,
    help="Folder for report.html and its PNG plots.",
)
@click.option("--since", metavar="ISO-TIME", help="Cycles at or after this time.")
@click.option("--until", metavar="ISO-TIME", help="Cycles at or before this time.")
@click.option("--run", "run_id", type=int, help="One run only.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary figures as JSON (no files written).")
def report(
    db: Path, out: Path, since: str | None, until: str | None, run_id: int | None, as_json: bool
) -> None:
    """Summary, plots and tables of what the controller decided."""
    try:
        data = load_log(db, since=since, until=until, run_id=run_id)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    replays = comparison_rows(compare_replays(db, run_ids={r["id"] for r in data.runs}))
    if as_json:
        click.echo(json.dumps({**asdict(summarize(data)), "replays": replays}, indent=2))
        return
    page = write_report(
        data, out, title=f"levctl report — {db}" + (f", run {run_id}" if run_id else ""), replays=replays
    )
    click.echo(f"levctl: report written to {page} ({len(data.cycles)} cycles)")
