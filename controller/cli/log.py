"""``levctl log``: recent cycles, decisions, orders and events of a decision log.

It reads SQLite and prints tables: nothing of the controller, numpy or the plotting stack loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from controller.review.log import recent_activity, render_activity
from controller.review.render import console


@click.command(name="log")
@click.option("--db", type=click.Path(path_type=Path), default=Path("logs/levctl.db"), show_default=True)
@click.option("--since", metavar="ISO-TIME", help="Only cycles and events at or after this time.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Cycles to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def log_command(db: Path, since: str | None, limit: int, as_json: bool) -> None:
    """Recent cycles, decisions, orders and events of a decision log."""
    if not db.exists():
        raise click.ClickException(f"no decision log at {db} (run `levctl run` first, or pass --db)")
    activity = recent_activity(db, since=since, limit=limit)
    if as_json:
        click.echo(json.dumps(activity, indent=2, default=str))
    else:
        render_activity(console(), activity)
