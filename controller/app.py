"""Build a controller from a configuration and the command line (modes, guards, venues, journal).

Modes (DESIGN §4):

* ``dry-run`` — the executor has no venue: decisions become recommendations.  The venue the loop
  reads is a read-only view without any order method.
* ``paper`` — the built-in simulator is the venue; orders execute on its paper account.
* ``testnet`` — ccxt in sandbox mode (Deribit's testnet, or ``levctl sim serve``); keys from the
  environment.
* ``live`` — the real exchange; refused unless both ``--live`` and ``run.allow_live = true``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from controller.config import Config, ConfigError
from controller.execution import DryRunExecutor, Event, OrderExecutor
from controller.journal import Journal, refuse_foreign
from controller.lock import RunLocks, account_key
from controller.loop import Controller
from controller.loop.portfolio import PortfolioController, PortfolioSettings
from controller.records import Notice
from controller.venues import ReadOnlyVenue, Venue
from controller.venues.sim import SimSetupError, SimVenue, open_sim_venue, open_sim_venues

API_KEY_ENV = "LEVCTL_API_KEY"
API_SECRET_ENV = "LEVCTL_API_SECRET"


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    live: bool = False
    db: Path | None = None
    venue_url: str | None = None
    fresh_state: bool = False  # do not resume σ̂'s history, peak equity and the drawdown latch


def effective_mode(config: Config, options: RunOptions) -> str:
    mode = config.run.mode
    if options.live and mode != "live":
        raise ConfigError(f"--live was given but {config.source} has run.mode = {mode!r}")
    if mode == "live" and not (options.live and config.run.allow_live):
        raise ConfigError(
            "live mode refuses to start without both --live on the command line and "
            f"run.allow_live = true in {config.source}"
        )
    problems = mode_problems(config)
    if problems:
        raise ConfigError(problems[0])
    return "dry-run" if options.dry_run else mode


def mode_problems(config: Config) -> list[str]:
    """What in the config contradicts its mode (keys of different sections that cannot go together)."""
    mode, venue = config.run.mode, config.venue
    rules = [
        (mode == "paper" and venue.kind != "sim", "run.mode = 'paper' needs venue.kind = 'sim'"),
        (
            mode in ("testnet", "live") and venue.kind != "ccxt",
            f"run.mode = {mode!r} needs venue.kind = 'ccxt' (the simulator runs 'paper')",
        ),
        (
            mode == "testnet" and venue.kind == "ccxt" and not venue.ccxt.sandbox,
            "run.mode = 'testnet' needs venue.ccxt.sandbox = true",
        ),
        (
            mode == "live" and venue.kind == "ccxt" and venue.ccxt.sandbox,
            "run.mode = 'live' needs venue.ccxt.sandbox = false",
        ),
        (
            venue.kind == "sim" and venue.sim.replay is not None and not Path(venue.sim.replay).is_file(),
            f"venue.sim.replay: no file at {venue.sim.replay}",
        ),
    ]
    return [f"{config.source}: {message}" for broken, message in rules if broken]


def build_controller(
    config: Config,
    options: RunOptions,
    *,
    env: Mapping[str, str] | None = None,
    log: Callable[[str, str], None] = lambda level, message: None,
    sleep: Callable[[float], None] = time.sleep,
    notify: Callable[[Notice], list[Event]] | None = None,
) -> Controller | PortfolioController:
    """Everything a run needs, wired: locks first, then the journal, the venue and the executor.

    Raises :class:`~controller.lock.AlreadyRunningError` when another process holds the decision log
    (or, for a run that sends orders to an exchange, the account).  ``notify`` is told after each
    committed cycle and at the run's end (the command line passes ``controller.review.notify``'s).
    With several ``venue.currencies`` the result is a :class:`PortfolioController`: a controller per
    currency (its own venue and executor) sharing the decision log and the run.
    """
    env = os.environ if env is None else env
    mode = effective_mode(config, options)
    db = options.db or Path(config.run.db)
    key, secret = env.get(API_KEY_ENV), env.get(API_SECRET_ENV)
    if config.venue.kind == "ccxt" and not (key and secret):
        raise ConfigError(
            f"{API_KEY_ENV} and {API_SECRET_ENV} must be set in the environment to use {config.source}"
        )
    sends_to_exchange = config.venue.kind == "ccxt" and mode != "dry-run"
    refuse_foreign(db)  # before the lock: nothing is written beside another program's file
    locks = RunLocks(
        db,
        account_dir=Path(config.run.account_lock_dir),
        account=account_key(
            config.venue.ccxt.exchange, options.venue_url or config.venue.ccxt.rest_url, key or ""
        )
        if sends_to_exchange
        else None,
    ).acquire()
    try:
        journal = Journal(db, durable=sends_to_exchange)
    except BaseException:
        locks.release()
        raise
    try:
        venues, clock, advance = _venues(config, options, key, secret, log)
    except BaseException:
        journal.close()
        locks.release()
        raise
    legs: dict[str, Controller] = {}
    for currency, venue in venues.items():
        several = len(venues) > 1
        leg_config = config.for_currency(currency) if several else config
        executor, read_venue = _executor(mode, venue, journal, clock, leg_config, sleep)
        legs[currency] = Controller(
            config=leg_config,
            venue=read_venue,
            executor=executor,
            journal=journal,
            clock=clock,
            sleep=sleep,
            advance=None if several else advance,
            kill_switch=Path(config.run.kill_switch_file).exists,
            log=_tagged(log, currency) if several else log,
            scrub=_scrubber(key, secret),
            release=locks.release if not legs else (lambda: None),
            resume_state=not options.fresh_state,
        )
        if notify is not None:
            legs[currency].notify = notify
    if len(legs) == 1:
        return legs[config.venue.currency]
    return PortfolioController(legs, PortfolioSettings.of(config), clock=clock, advance=advance)


def _venues(
    config: Config,
    options: RunOptions,
    key: str | None,
    secret: str | None,
    log: Callable[[str, str], None],
) -> tuple[dict[str, Venue], Callable[[], datetime], Callable[[], None] | None]:
    """Each currency's venue, the clock they share and, on the simulator, the step of its clock."""
    currencies = config.currencies
    if config.venue.kind == "sim":
        one = len(currencies) == 1
        sims = {currencies[0]: _sim_venue(config, log)} if one else _sim_venues(config, log)
        first = next(iter(sims.values()))
        step = config.venue.sim.step_s
        return dict(sims), (lambda: first.now), (lambda: first.advance(step))
    from controller.venues.ccxt_deribit import CcxtVenue  # ccxt loads only when a run needs it

    clock = lambda: datetime.now(UTC)  # noqa: E731
    venues: dict[str, Venue] = {}
    for currency in currencies:
        settings = (config.for_currency(currency) if len(currencies) > 1 else config).ccxt_settings()
        if options.venue_url:
            settings = replace(settings, rest_url=options.venue_url)
        venues[currency] = CcxtVenue(settings, api_key=key, api_secret=secret, clock=clock)
    return venues, clock, None


def _executor(
    mode: str,
    venue: Venue,
    journal: Journal,
    clock: Callable[[], datetime],
    config: Config,
    sleep: Callable[[float], None],
) -> tuple[DryRunExecutor | OrderExecutor, Venue | ReadOnlyVenue]:
    """Dry run: no venue to send to, and a read-only view to read; otherwise orders written ahead."""
    if mode == "dry-run":
        return DryRunExecutor(), ReadOnlyVenue(venue)
    return order_executor(venue, journal, config, clock=clock, sleep=sleep), venue


def order_executor(
    venue: Venue,
    journal: Journal,
    config: Config,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
) -> OrderExecutor:
    """The executor that sends orders, with the configuration's timeouts and validity."""
    return OrderExecutor(
        venue,
        journal,
        clock=clock,
        order_timeout_s=config.run.order_timeout_s,
        valid_for_s=config.run.order_valid_s,
        valid_margin_s=config.run.valid_margin_s,
        sleep=sleep,
    )


def _tagged(log: Callable[[str, str], None], currency: str) -> Callable[[str, str], None]:
    return lambda level, message: log(level, f"[{currency}] {message}")


def _scrubber(*secrets: str | None) -> Callable[[str], str]:
    """Defence in depth: the API key and secret never reach a message, whatever produced it."""
    known = [s for s in secrets if s]

    def scrub(text: str) -> str:
        for secret in known:
            text = text.replace(secret, "***")
        return text

    return scrub


def _sim_venues(config: Config, log: Callable[[str, str], None]) -> dict[str, SimVenue]:
    """One venue per currency on a two-currency simulator, its markets correlated."""
    legs = [config.for_currency(c) for c in config.currencies]
    try:
        return open_sim_venues(
            [c.sim_settings() for c in legs],
            books={c.venue.currency: c.starting_book() for c in legs},
            log=log,
        )
    except SimSetupError as exc:
        raise ConfigError(f"{config.source}: venue.sim.{exc.where}: {exc.message}") from None


def _sim_venue(config: Config, log: Callable[[str, str], None]) -> SimVenue:
    try:
        return open_sim_venue(config.sim_settings(), book=config.starting_book(), log=log)
    except SimSetupError as exc:
        raise ConfigError(f"{config.source}: venue.sim.{exc.where}: {exc.message}") from None
