"""``levctl doctor``: check what a run needs — one line per check; exit 0, or 3 when one fails."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from controller.app import RunOptions
from controller.cli.errors import EXIT_STOPPED, user_errors
from controller.config import load_config
from controller.doctor import run_checks

MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="TOML config (default: embedded)."
)
@click.option("--db", type=click.Path(path_type=Path), help="Decision log (default: run.db of the config).")
@click.option("--venue-url", help="Override the REST base URL of a ccxt venue (e.g. http://127.0.0.1:8765).")
@click.option("--dry-run", is_flag=True, help="Check for a dry run (read scopes are enough).")
@click.option("--live", is_flag=True, help="Check a live config (it needs run.allow_live = true too).")
def doctor(
    config_path: Path | None, db: Path | None, venue_url: str | None, dry_run: bool, live: bool
) -> None:
    """Check credentials, key scopes, clock, hedge instrument, account and log before a run."""
    with user_errors():
        config = load_config(config_path)
    checks = run_checks(config, RunOptions(dry_run=dry_run, live=live, db=db, venue_url=venue_url))
    width = max(len(c.name) for c in checks)
    for c in checks:
        click.echo(f"{MARKS[c.status]}  {c.name:<{width}}  {c.detail}")
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        click.echo(f"levctl doctor: {len(failed)} check(s) failed: {', '.join(failed)}", err=True)
        sys.exit(EXIT_STOPPED)
