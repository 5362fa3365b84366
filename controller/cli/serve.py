"""``levctl serve``: the live page of a decision log on 127.0.0.1 (read-only)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from controller.cli.errors import user_errors


@click.command()
@click.option("--db", type=click.Path(path_type=Path), default=Path("logs/levctl.db"), show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; any other than the loopback needs LEVCTL_SERVE_TOKEN.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8787, show_default=True)
@click.option(
    "--poll",
    "poll_s",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between looks at the log.",
)
def serve(db: Path, host: str, port: int, poll_s: float) -> None:
    """A live, read-only web page following a decision log while the bot runs."""
    try:
        from controller.review.live import TOKEN_ENV, check_bind, check_listen, serve_live
    except ImportError as exc:
        raise click.ClickException(
            f"levctl serve needs its web stack ({exc.name}): pip install 'levctl[live]'"
        ) from None
    token = os.environ.get(TOKEN_ENV) or None
    with user_errors():
        check_bind(host, token)
        check_listen(host, port)
        if db.exists():  # refuse a file that is not a decision log now; a missing one may come
            from controller.review.logdb import open_log

            with open_log(db):
                pass
        click.echo(f"levctl: serving {db} at http://{host}:{port}/ (read-only; Ctrl-C to stop)", err=True)
        serve_live(db, host=host, port=port, token=token, poll_s=poll_s)
