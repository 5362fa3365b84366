"""``levctl calibrate``: walk-forward calibration of the controller on market history (Optuna, Dask)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from controller.cli.errors import user_errors
from controller.cli.replay import REFERENCE_BOOKS
from controller.config import Config, load_config
from controller.replay.calibrate import Calibration, calibrate
from controller.replay.run import in_currency
from controller.replay.tomlout import config_toml
from controller.review.calibration import figure_value, param_text, write_calibration_report
from controller.review.render import console
from controller.sim.market import load_replay_csv


@click.command(name="calibrate")
@click.option(
    "--data", "data_path", type=click.Path(path_type=Path), required=True, help="Market history CSV."
)
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="TOML config; its [calibrate] section."
)
@click.option(
    "--book",
    type=click.Choice(sorted(REFERENCE_BOOKS)),
    help="An embedded reference book (default: perpetual).",
)
@click.option(
    "--currency", type=click.Choice(["BTC", "ETH"]), help="The history's currency (default: the config's)."
)
@click.option(
    "--trials", type=int, help="Trials per study: each fold's and the final one (default: calibrate.trials)."
)
@click.option(
    "--folds", type=int, help="Walk-forward folds; 0: one study on all the data (default: calibrate.folds)."
)
@click.option("--workers", type=int, default=1, show_default=True, help="Local processes running trials.")
@click.option("--dask-scheduler", metavar="tcp://HOST:PORT", help="Run trials on this Dask cluster instead.")
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    help="The studies' SQLite (default: calibration.db beside run.db).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("logs/calibration"),
    show_default=True,
    help="Folder for calibration.html and its plots.",
)
@click.option(
    "--write-config",
    "write_config",
    type=click.Path(path_type=Path),
    help="Write the base config with the best parameters, as ready TOML.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no page written).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def calibrate_command(
    data_path: Path,
    config_path: Path | None,
    book: str | None,
    currency: str | None,
    trials: int | None,
    folds: int | None,
    workers: int,
    dask_scheduler: str | None,
    db: Path | None,
    out: Path,
    write_config: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Choose the controller's parameters on history, walk-forward, with Optuna (TPE).

    Each trial replays the real controller.  The studies live in --db: the same command resumes
    them.  The answer is the final study's best (trained on all the data); the folds report how
    that way of choosing did on data it had not seen.
    """
    if config_path is not None and book is not None:
        raise click.UsageError("give --config or --book, not both")
    if dask_scheduler is not None and workers != 1:
        raise click.UsageError("give --workers or --dask-scheduler, not both")
    with user_errors():
        config = load_config(config_path, embedded=REFERENCE_BOOKS[book or "perpetual"])
        if currency is not None:
            config = in_currency(config, currency)
        data = load_replay_csv(data_path)
    db = db or Path(config.run.db).with_name("calibration.db")
    err = console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best {task.fields[best]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    ) as bar:
        task = bar.add_task("calibrate", total=None, best="—")

        def progress(what: str, done: int, total: int, best: float | None) -> None:
            shown = "—" if best is None else f"{best:.4f}"
            bar.update(task, description=what, completed=done, total=total, best=shown)

        try:
            with user_errors():
                result = calibrate(
                    config,
                    data,
                    db=db,
                    trials=trials,
                    folds=folds,
                    workers=workers,
                    dask_scheduler=dask_scheduler,
                    progress=progress,
                )
        except KeyboardInterrupt:
            raise click.ClickException(
                f"interrupted: the finished trials are in {db}; the same command resumes"
            ) from None
    for note in result.notes:
        err.print(f"note: {note}")
    if write_config is not None:
        write_config.parent.mkdir(parents=True, exist_ok=True)
        write_config.write_text(best_config(config, result, data_path=data_path, db=db), encoding="utf-8")
    doc = result.as_json()
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    console().print(fold_table(doc))
    console().print(best_table(config, doc))
    summary = summary_lines(result, data_path=data_path, db=db)
    page = write_calibration_report(
        doc,
        out,
        title=f"levctl calibration — {config.file.replay.book} book on {data_path.name}",
        importance=result.importance,
        defaults={k: configured_value(config, k) for k in doc["best"]["params"]},
        summary=summary,
    )
    for line in summary:
        err.print(line)
    err.print(
        f"levctl: calibration page {page}" + (f"; config written to {write_config}" if write_config else "")
    )


def summary_lines(result: Calibration, *, data_path: Path, db: Path) -> list[str]:
    studies = len(result.folds) + 1
    span = "" if result.span is None else f" ({result.span[0]:%Y-%m-%d} → {result.span[1]:%Y-%m-%d})"
    return [
        f"{len(result.trials)} trials in {studies} studies on {data_path.name}{span}, "
        f"{result.trials_run} run now "
        f"in {result.seconds:.0f} s on the {result.engine} engine; studies kept in {db}",
    ]


def fold_table(doc: dict[str, Any]) -> Table:
    table = Table(title="walk-forward: each fold's best parameters, in sample and out of sample")
    for name in (
        "fold",
        "train",
        "test",
        "params",
        "TE in",
        "TE out",
        "vol/target out",
        "vol of vol out",
        "trades/yr out",
        "max DD out",
    ):
        table.add_column(name, justify="left" if name in ("train", "test", "params") else "right")
    for i, f in enumerate(doc["walk_forward"], start=1):
        o = f["out_of_sample"] or {}
        table.add_row(
            str(i),
            f"{f['train'][0][:10]} → {f['train'][1][:10]}",
            f"{f['test'][0][:10]} → {f['test'][1][:10]}",
            ", ".join(f"{k.split('.')[-1]}={param_text(v)}" for k, v in f["params"].items()),
            figure_value("tracking_error", f["in_sample"].get("tracking_error")),
            *(
                figure_value(k, o.get(k))
                for k in ("tracking_error", "vol_ratio", "vol_of_vol", "trades_per_year", "max_drawdown")
            ),
        )
    return table


def best_table(config: Config, doc: dict[str, Any]) -> Table:
    table = Table(title=f"best parameters on all the data (objective {doc['best']['objective']:.4f})")
    for name in ("parameter", "configured", "calibrated"):
        table.add_column(name)
    for key, value in doc["best"]["params"].items():
        table.add_row(key, param_text(configured_value(config, key)), param_text(value))
    return table


def configured_value(config: Config, key: str) -> Any:
    section, name = key.split(".", 1)
    value = getattr(getattr(config.file, section), name)
    return getattr(value, "value", value)


def best_config(config: Config, result: Calibration, *, data_path: Path, db: Path) -> str:
    """The base configuration with the final study's best parameters, commented with where they came from."""
    raw = config.file.model_dump(mode="python")
    notes = {}
    for key, value in result.best_params.items():
        section, name = key.split(".", 1)
        chosen = float(f"{value:.4g}") if isinstance(value, float) else value
        notes[key] = f"calibrated (configured: {param_text(configured_value(config, key))})"
        raw[section][name] = chosen
    oos = ", ".join(
        f"fold {i} {figure_value('tracking_error', (f.out_of_sample or {}).get('tracking_error'))}"
        for i, f in enumerate(result.folds, start=1)
    )
    header = [
        f"Written by levctl calibrate at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"Base configuration: {config.source} (sha256 {config.sha256[:12]}).",
        f"History: {data_path}"
        + ("" if result.span is None else f", {result.span[0]:%Y-%m-%d} → {result.span[1]:%Y-%m-%d}."),
        f"The keys marked 'calibrated' are the best of the final study's trials in {db}",
        f"(objective {result.best_objective:.4f}: 30-day tracking error of equity volatility against",
        "L_base · σ_ref plus the [calibrate] penalties), rounded to 4 significant figures.",
        f"Walk-forward out-of-sample tracking error: {oos or 'no folds'}.",
        "L_base (policy.base_leverage) and σ_ref (risk.reference_vol) are inputs: never calibrated.",
    ]
    return config_toml(raw, header=header, notes=notes)
