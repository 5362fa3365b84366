"""``levctl run``, ``once`` and ``config check``: the controller from the command line."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
import schedule

from controller.app import API_KEY_ENV, API_SECRET_ENV, RunOptions, build_controller, mode_problems
from controller.cli.errors import EXIT_STOPPED, EXIT_USER_ERROR, user_errors
from controller.config import Config, load_config
from controller.journal import JournalError
from controller.loop import Controller, ControllerHalted, CycleResult
from controller.loop.runtime import fewer_collections
from controller.review.notify import Notifier, NotifySettings, apprise_sender, notify_urls, url_name
from controller.review.render import console, print_cycle
from controller.venues import VenueError


def _run_options(fn: Any) -> Any:
    for decorator in reversed(
        [
            click.option(
                "--config",
                "config_path",
                type=click.Path(path_type=Path),
                help="TOML config (default: embedded).",
            ),
            click.option(
                "--db", type=click.Path(path_type=Path), help="Decision log (default: run.db of the config)."
            ),
            click.option(
                "--venue-url", help="Override the REST base URL of a ccxt venue (e.g. http://127.0.0.1:8765)."
            ),
            click.option("--dry-run", is_flag=True, help="Advice only: no order can be sent."),
            click.option(
                "--live", is_flag=True, help="Needed, with run.allow_live = true, to trade a real account."
            ),
            click.option(
                "--fresh-state",
                is_flag=True,
                help="Start cold: do not resume the log's σ̂ history, peak equity and drawdown halt.",
            ),
        ]
    ):
        fn = decorator(fn)
    return fn


@click.command()
@_run_options
@click.option(
    "--cycles", type=click.IntRange(min=0), help="Stop after N cycles (default: run.cycles; 0 = forever)."
)
def run(
    config_path: Path | None,
    db: Path | None,
    venue_url: str | None,
    dry_run: bool,
    live: bool,
    fresh_state: bool,
    cycles: int | None,
) -> None:
    """Run the controller loop (the embedded default: the simulator, no account, no network)."""
    config = _load(config_path)
    logger = _logging(config)
    controller = _build(config, RunOptions(dry_run, live, db, venue_url, fresh_state), logger)
    stop = {"asked": False}

    def ask_stop(signum: int, frame: FrameType | None) -> None:
        stop["asked"] = True
        logger.info("stop requested: finishing the current cycle")

    previous = {sig: signal.signal(sig, ask_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def body() -> str:
        controller.start()
        with fewer_collections():
            return controller.run(
                cycles=config.run.cycles if cycles is None else cycles,
                scheduler=schedule.Scheduler(),
                should_stop=lambda: stop["asked"],
            )

    try:
        reason = _supervised(controller, body, logger)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _close(controller, "finished", reason)
    where = f"decision log {controller.journal.path} (run {controller.run_id}, mode {controller.mode})"
    click.echo(f"levctl: {reason}; {where}")


@click.command()
@_run_options
@click.option("--json", "as_json", is_flag=True, help="Print the cycle as JSON.")
def once(
    config_path: Path | None,
    db: Path | None,
    venue_url: str | None,
    dry_run: bool,
    live: bool,
    fresh_state: bool,
    as_json: bool,
) -> None:
    """Run one cycle and print the book, the leverage figures with the band, and the decision."""
    config = _load(config_path)
    logger = _logging(config, quiet=True)
    controller = _build(config, RunOptions(dry_run, live, db, venue_url, fresh_state), logger)

    def body() -> CycleResult:
        controller.start()
        return controller.cycle()

    result = _supervised(controller, body, logger)
    _close(controller, "finished", "one cycle")
    _print_result(result, controller.mode, as_json)


T = TypeVar("T")


def _supervised(controller: Controller, body: Callable[[], T], logger: logging.Logger) -> T:
    """Run ``body``; a halt or a failure closes the run with its reason and exits with one line."""
    try:
        return body()
    except (ControllerHalted, JournalError) as exc:
        _close(controller, "halted", str(exc))
        click.echo(f"Error: levctl halted: {exc}", err=True)
        sys.exit(EXIT_STOPPED)
    except VenueError as exc:  # at start-up (in a cycle it is an ERROR cycle): after the retries
        message = controller.scrub(str(exc))
        _close(controller, "failed", f"could not start: {message}")
        click.echo(f"Error: levctl could not start: {message}", err=True)
        sys.exit(EXIT_STOPPED)
    except Exception as exc:  # a bug: the traceback goes to the log file, one line to the terminal
        logger.exception("unexpected error")
        message = controller.scrub(f"{type(exc).__name__}: {exc}")
        _close(controller, "failed", message)
        click.echo(f"Error: levctl failed: {message} (details in {controller.config.run.log_file})", err=True)
        sys.exit(EXIT_USER_ERROR)


def _close(controller: Controller, status: str, reason: str) -> None:
    """Record how the run ended (if the log can still be written), release its log and locks, and
    let the last notifications go out.  A run that stops on an error says so in one line of its own:
    the same words are not also logged to the terminal (they stay in the text log)."""
    try:
        with contextlib.suppress(JournalError), _terminal_muted(status != "finished"):
            controller.finish(status, reason)
    finally:
        controller.close()
        if isinstance(controller.notify, Notifier):
            controller.notify.close()


@contextlib.contextmanager
def _terminal_muted(muted: bool) -> Iterator[None]:
    logger = logging.getLogger("levctl")
    terminal = [h for h in logger.handlers if type(h) is logging.StreamHandler] if muted else []
    for handler in terminal:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in terminal:
            logger.addHandler(handler)


@click.group(name="config")
def config_group() -> None:
    """Check a configuration file, key by key and across sections (config check FILE)."""


@config_group.command(name="check")
@click.argument("path", type=click.Path(path_type=Path))
def config_check(path: Path) -> None:
    """Validate a config file, each key and across sections; print what it will do."""
    config = _load(path)
    with user_errors():
        problems = mode_problems(config)
        if problems:
            raise click.ClickException("\n".join(problems))
        urls = notify_urls(config.file.notify.urls, os.environ)
        if urls:
            apprise_sender(NotifySettings(urls=urls))
    v = config.venue
    where = (
        "the built-in simulator"
        if v.kind == "sim"
        else f"{v.ccxt.exchange} ({'testnet' if v.ccxt.sandbox else 'LIVE'})"
    )
    click.echo(
        f"{path}: ok — mode {config.run.mode} on {where}, hedging on {v.hedge_instrument}, "
        f"policy {config.policy.mode.value} L_base {config.policy.base_leverage:g} "
        f"band ±{config.policy.band:.0%}, "
        f"sha256 {config.sha256[:12]}"
    )
    if config.run.mode == "live" and not config.run.allow_live:
        click.echo(
            "note: live mode refuses to start until run.allow_live = true (and --live on the command line)"
        )
    if urls:
        click.echo(
            f"note: notifications to {', '.join(url_name(u) for u in urls)} "
            f"at level {config.file.notify.level}"
        )


def _load(path: Path | None) -> Config:
    with user_errors():
        return load_config(path)


def _build(config: Config, options: RunOptions, logger: logging.Logger) -> Any:
    def log(level: str, message: str) -> None:
        logger.log(_LEVELS[level], message)

    with user_errors():
        wanted = config.file.notify
        urls = notify_urls(wanted.urls, os.environ)
        var_fraction = config.guards.max_var_fraction if wanted.var_fraction is None else wanted.var_fraction
        settings = {**wanted.model_dump(), "urls": urls, "var_fraction": var_fraction}
        notifier = Notifier(NotifySettings(**settings), log=log)
        return build_controller(config, options, log=log, notify=notifier)


_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _Redact(logging.Filter):
    """Defence in depth: the API secret and key never reach a log line."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = [s for s in (os.environ.get(API_KEY_ENV), os.environ.get(API_SECRET_ENV)) if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, ()
        return True


class _OneLine(logging.Formatter):
    """The terminal gets the message; a traceback goes to the text log only."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


class _TextLog(logging.FileHandler):
    """A text log that cannot be written (a full disk) says so once, in one line, and the run goes on."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.failed:
            self.failed = True
            sys.stderr.write(f"levctl: cannot write the text log {self.baseFilename}: {sys.exc_info()[1]}\n")


def _logging(config: Config, *, quiet: bool = False) -> logging.Logger:
    logger = logging.getLogger("levctl")
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    log_file = Path(config.run.log_file)
    formatter = "%(asctime)s %(levelname)s %(message)s"
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        text_log = _TextLog(log_file, encoding="utf-8")
        started = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} levctl starts, config {config.source}\n"
        if text_log.stream is not None:
            text_log.stream.write(started)
        text_log.flush()  # a full disk is found now, at start-up, not in the middle of a run
    except OSError as exc:
        raise click.ClickException(
            f"cannot write the text log {log_file} (run.log_file): {exc.strerror or exc}"
        ) from None
    text_log.setFormatter(logging.Formatter(formatter))
    handlers: list[logging.Handler] = [text_log]
    if not quiet:
        terminal = logging.StreamHandler(sys.stderr)
        terminal.setFormatter(_OneLine(formatter))
        handlers.append(terminal)
    for handler in handlers:
        handler.addFilter(_Redact())
        logger.addHandler(handler)
    return logger


def _print_result(result: CycleResult | list[CycleResult], mode: str, as_json: bool) -> None:
    """One cycle; a portfolio's, one per currency (``--json``: a list)."""
    results = result if isinstance(result, list) else [result]
    failed = [r.error for r in results if r.error is not None]
    if failed:
        raise click.ClickException(f"the cycle failed: {'; '.join(failed)}")
    if as_json:
        from controller.review.render import cycle_to_dict

        shown = [cycle_to_dict(r, mode) for r in results]
        click.echo(json.dumps(shown if isinstance(result, list) else shown[0], indent=2, default=str))
    else:
        for r in results:
            print_cycle(console(), r, mode)
