"""``levctl replay``: the controller, and its baselines, on market history."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from controller.cli.errors import user_errors
from controller.config import load_config
from controller.replay.metrics import compare_replays, comparison_rows
from controller.replay.run import ROLES, in_currency, replay
from controller.review.page import figure_text
from controller.review.render import console
from controller.sim.market import load_replay_csv

REFERENCE_BOOKS = {"perpetual": "replay-perpetual.toml", "short-straddle": "replay-straddle.toml"}


@click.command(name="replay")
@click.option(
    "--data",
    "data_paths",
    multiple=True,
    required=True,
    help="Market history CSV: timestamp_ms, index_usd (or btc_usd), dvol (percent), funding_rate_8h. "
    "Give it once per currency (CURRENCY=path, or a file named after its currency) to replay a "
    "portfolio beside one controller per currency, on the files' common timestamps.",
)
@click.option(
    "--currency",
    type=click.Choice(["BTC", "ETH"]),
    help="The currency the history is of (default: the config's venue.currency): its perpetual is the hedge.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="TOML config (default: the reference book's).",
)
@click.option(
    "--book",
    type=click.Choice(sorted(REFERENCE_BOOKS)),
    help="An embedded reference book (default: perpetual); not with --config (its [replay] decides).",
)
@click.option("--db", type=click.Path(path_type=Path), help="Decision log (default: run.db of the config).")
@click.option(
    "--no-baselines", is_flag=True, help="Only the controller: no fixed-leverage and buy-and-hold runs."
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def replay_command(
    data_paths: tuple[str, ...],
    currency: str | None,
    config_path: Path | None,
    book: str | None,
    db: Path | None,
    no_baselines: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Replay market history through the controller on the simulator, beside its baselines.

    Every run is an ordinary run of the decision log: `levctl report --db DB` shows them all,
    with the comparison of the runs.
    """
    if config_path is not None and book is not None:
        raise click.UsageError(
            "give --config or --book, not both (a config's [replay] section names its book)"
        )
    if len(data_paths) > 1:
        if currency is not None:
            raise click.UsageError(
                "--currency names one history's currency: with several, name each CURRENCY=path"
            )
        from controller.cli.replay_portfolio import replay_portfolio_command

        with user_errors():
            config = load_config(config_path, embedded=REFERENCE_BOOKS[book or "perpetual"])
        replay_portfolio_command(config, data_paths, db=db, as_json=as_json, quiet=quiet)
        return
    data_path = Path(data_paths[0])
    with user_errors():
        config = load_config(config_path, embedded=REFERENCE_BOOKS[book or "perpetual"])
        if currency is not None:
            config = in_currency(config, currency)
        data = load_replay_csv(data_path)
    db = db or Path(config.run.db)
    out = console(stderr=True)
    if data.gaps:
        out.print(f"[yellow]{len(data.gaps)} gap(s) in {data_path}[/]: reported in the log, not filled")
        for a, b in data.gaps[:5]:
            out.print(f"  {a:%Y-%m-%d %H:%M} → {b:%Y-%m-%d %H:%M} ({(b - a).total_seconds() / 3600:.0f} h)")
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description:>15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        disable=quiet or as_json,
        transient=False,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(role: str, done: int, total: int) -> None:
            if role not in tasks:
                tasks[role] = bar.add_task(role, total=total)
            bar.update(tasks[role], completed=done)

        with user_errors():
            outcome = replay(config, data, db, roles=ROLES[:1] if no_baselines else ROLES, progress=progress)
    elapsed = time.perf_counter() - started
    rows = comparison_rows(compare_replays(db, outcome.replay_key))
    if as_json:
        click.echo(json.dumps({"replay_key": outcome.replay_key, "db": str(db), "runs": rows}, indent=2))
        return
    cycles = sum(r.cycles for r in outcome.runs)
    out.print(
        f"levctl: {len(outcome.runs)} run(s), {cycles:,} cycles in {elapsed:.1f} s "
        f"({cycles / elapsed:,.0f} cycles/s); decision log {db}, replay {outcome.replay_key}"
    )
    console().print(comparison_table(rows, title=f"{config.file.replay.book} book on {data_path.name}"))
    out.print(f"levctl report --db {db}   # plots and tables of these runs")


def comparison_table(rows: list[dict[str, object]], *, title: str) -> Table:
    table = Table(title=title)
    columns = [k for k in rows[0] if k not in ("book",)] if rows else []
    for name in columns:
        table.add_column(name, justify="left" if name == "role" else "right", no_wrap=name == "role")
    for row in rows:
        table.add_row(*(figure_text(name, row[name]) for name in columns))
    return table
