"""``levctl replay --data BTC.csv --data ETH.csv``: a portfolio beside one controller per currency."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import click
from rich.table import Table

from controller.cli.errors import user_errors
from controller.config import Config, build_config
from controller.replay.joint_data import load_joint_replay, parse_data_argument
from controller.replay.portfolio import BookComparison, replay_portfolio
from controller.review.render import console


def replay_portfolio_command(
    config: Config, data_paths: tuple[str, ...], *, db: Path | None, as_json: bool, quiet: bool
) -> None:
    out = console(stderr=True)
    with user_errors():
        joint = load_joint_replay([parse_data_argument(p) for p in data_paths])
        raw = config.file.model_dump(mode="json")
        raw["venue"].update(currencies=list(joint.currencies), hedge_instrument="")
        config = build_config(raw, source=f"{config.source} ({' + '.join(joint.currencies)})")
    db = db or Path(config.run.db)
    dropped = ", ".join(f"{c} {n:,}" for c, n in joint.dropped_rows.items() if n)
    out.print(
        f"{' + '.join(joint.currencies)}: {joint.times_ms.size:,} common rows, "
        f"{joint.start:%Y-%m-%d %H:%M} → {joint.end:%Y-%m-%d %H:%M} UTC"
        + (f" (rows outside the common times left out: {dropped})" if dropped else "")
    )

    finished: set[str] = set()

    def progress(role: str, done: int, total: int) -> None:
        if not (quiet or as_json) and done == total and role not in finished:
            finished.add(role)
            out.print(f"  {role}: {total:,} rows")

    started = time.perf_counter()
    with user_errors():
        outcome = replay_portfolio(config, joint, db, progress=progress)
    elapsed = time.perf_counter() - started
    if as_json:
        click.echo(
            json.dumps(
                {
                    "replay_key": outcome.replay_key,
                    "db": str(db),
                    "currencies": list(outcome.currencies),
                    "books": [asdict(b) for b in outcome.books],
                },
                indent=2,
                default=str,
            )
        )
        return
    out.print(f"levctl: replay {outcome.replay_key} in {elapsed:.1f} s; decision log {db}")
    console().print(
        _table(outcome.books, title=f"{' + '.join(outcome.currencies)}: one target or one per currency")
    )


def _table(books: tuple[BookComparison, ...], *, title: str) -> Table:
    table = Table(title=title)
    for column in (
        "book",
        "runs",
        "status",
        "equity USD start → end",
        "vol (target)",
        "tracking error",
        "worst day",
        "max drawdown",
        "trades",
    ):
        table.add_column(column, justify="left" if column in ("book", "status") else "right")
    for b in books:
        f = b.figures
        table.add_row(
            b.role,
            ", ".join(str(r) for r in b.run_ids),
            b.status,
            f"{b.equity_start_usd:,.0f} → {b.equity_end_usd:,.0f}",
            f"{_pct(f.vol)} ({b.target_vol:.0%})",
            _pct(f.tracking_error),
            _pct(f.worst_day),
            _pct(f.max_drawdown),
            f"{b.trades:,}",
        )
    return table


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
