"""``levctl log``: recent cycles, decisions, orders, events and breaches of a decision log.

It reads SQLite and prints tables: nothing of the controller, numpy or the plotting stack loads.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from controller.cli.errors import user_errors
from controller.cli.params import INSTANT
from controller.review.breaches import BreachTracker
from controller.review.log import follow, recent_activity
from controller.review.logview import breach_line, cycle_line, event_line, render_activity
from controller.review.render import console


@click.command(name="log")
@click.option("--db", type=click.Path(path_type=Path), default=Path("logs/levctl.db"), show_default=True)
@click.option(
    "--since", type=INSTANT, help="Cycles and events at or after this time (ISO 8601, or 6h, 2d ago)."
)
@click.option("--until", type=INSTANT, help="Cycles at or before this time.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Cycles to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--follow", "-f", is_flag=True, help="Then print new cycles, events and breaches as they are written."
)
def log_command(
    db: Path, since: datetime | None, until: datetime | None, limit: int, as_json: bool, follow: bool
) -> None:
    """Recent cycles, decisions, orders, events and limit breaches of a decision log (-f: follow it)."""
    if follow and (as_json or until):
        raise click.UsageError("--follow prints lines as they come: it goes with neither --json nor --until")
    with user_errors():
        activity = recent_activity(db, since=since, until=until, limit=limit)
    if as_json:
        click.echo(json.dumps(activity, indent=2, default=str))
        return
    render_activity(console(), activity)
    if follow:
        _follow(db, activity)


def _follow(db: Path, activity: dict[str, list[dict[str, Any]]]) -> None:
    tracker = BreachTracker()
    for c in activity["cycles"]:
        tracker.observe(c["run_id"], c["n"], c["ts"], c["advice"], currency=c.get("currency"))
    after_cycle = max((c["id"] for c in activity["cycles"]), default=0)
    after_event = max((e["id"] for e in activity["events"]), default=0)
    click.echo(f"following {db} (Ctrl-C to stop)")
    try:
        with user_errors():
            for kind, row in follow(db, after_cycle=after_cycle, after_event=after_event):
                if kind == "event":
                    if row["level"] != "info" or row["kind"] in ("start", "stop"):
                        click.echo(event_line(row))
                    continue
                click.echo(cycle_line(row))
                started, ended = tracker.observe(
                    row["run_id"], row["n"], row["ts"], row["advice"], currency=row.get("currency")
                )
                for episode in ended:
                    click.echo(breach_line(episode, started=False))
                for episode in started:
                    click.echo(breach_line(episode, started=True))
    except KeyboardInterrupt:
        return
