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
from controller.execution import DryRunExecutor, OrderExecutor
from controller.journal import Journal
from controller.loop import Controller
from controller.venues import ReadOnlyVenue, Venue
from controller.venues.sim import SimSetupError, SimVenue, open_sim_venue

API_KEY_ENV = "LEVCTL_API_KEY"
API_SECRET_ENV = "LEVCTL_API_SECRET"


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    live: bool = False
    db: Path | None = None
    venue_url: str | None = None


def effective_mode(config: Config, options: RunOptions) -> str:
    mode = config.run.mode
    if options.live and mode != "live":
        raise ConfigError(f"--live was given but {config.source} has run.mode = {mode!r}")
    if mode == "live" and not (options.live and config.run.allow_live):
        raise ConfigError(
            "live mode refuses to start without both --live on the command line and "
            f"run.allow_live = true in {config.source}"
        )
    if mode == "paper" and config.venue.kind != "sim":
        raise ConfigError(f"{config.source}: run.mode = 'paper' needs venue.kind = 'sim'")
    if mode in ("testnet", "live") and config.venue.kind != "ccxt":
        raise ConfigError(
            f"{config.source}: run.mode = {mode!r} needs venue.kind = 'ccxt' (the simulator runs 'paper')"
        )
    if mode == "testnet" and not config.venue.ccxt.sandbox:
        raise ConfigError(f"{config.source}: run.mode = 'testnet' needs venue.ccxt.sandbox = true")
    if mode == "live" and config.venue.ccxt.sandbox:
        raise ConfigError(f"{config.source}: run.mode = 'live' needs venue.ccxt.sandbox = false")
    return "dry-run" if options.dry_run else mode


def build_controller(
    config: Config,
    options: RunOptions,
    *,
    env: Mapping[str, str] | None = None,
    log: Callable[[str, str], None] = lambda level, message: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Controller:
    env = os.environ if env is None else env
    mode = effective_mode(config, options)
    journal = Journal(options.db or Path(config.run.db))
    kill_file = Path(config.run.kill_switch_file)
    if config.venue.kind == "sim":
        sim = _sim_venue(config, log)
        venue: Venue = sim
        clock: Callable[[], datetime] = lambda: sim.now  # noqa: E731 - the virtual clock
        step = config.venue.sim.step_s

        def advance() -> None:
            sim.advance(step)

        advance_fn: Callable[[], None] | None = advance
    else:
        key, secret = env.get(API_KEY_ENV), env.get(API_SECRET_ENV)
        if not key or not secret:
            raise ConfigError(
                f"{API_KEY_ENV} and {API_SECRET_ENV} must be set in the environment to use {config.source}"
            )
        settings = config.ccxt_settings()
        if options.venue_url:
            settings = replace(settings, rest_url=options.venue_url)
        from controller.venues.ccxt_deribit import CcxtVenue  # ccxt loads only when a run needs it

        clock = lambda: datetime.now(UTC)  # noqa: E731
        venue = CcxtVenue(settings, api_key=key, api_secret=secret, clock=clock)
        advance_fn = None
    if mode == "dry-run":
        executor: DryRunExecutor | OrderExecutor = DryRunExecutor()
        read_venue = ReadOnlyVenue(venue)
    else:
        executor = OrderExecutor(
            venue,
            order_timeout_s=config.run.order_timeout_s,
            sleep=sleep,
            grace_s=min(1.0, config.venue.ccxt.timeout_ms / 1000.0),
        )
        read_venue = venue  # type: ignore[assignment]
    return Controller(
        config=config,
        venue=read_venue,
        executor=executor,
        journal=journal,
        clock=clock,
        sleep=sleep,
        advance=advance_fn,
        kill_switch=kill_file.exists,
        log=log,
    )


def _sim_venue(config: Config, log: Callable[[str, str], None]) -> SimVenue:
    try:
        return open_sim_venue(config.sim_settings(), book=config.starting_book(), log=log)
    except SimSetupError as exc:
        raise ConfigError(f"{config.source}: venue.sim.{exc.where}: {exc.message}") from None
