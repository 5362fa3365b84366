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

from controller.ccxt_venue import CcxtVenue
from controller.config import Config, ConfigError, SimBookEntry
from controller.execution import DryRunExecutor, OrderExecutor
from controller.journal import Journal
from controller.loop import Controller
from controller.sim.engine import SimConfig, SimError, SimExchange
from controller.sim.listing import ListingParams
from controller.sim.market import ReplayError, ReplayPath, load_replay_csv
from controller.sim_venue import SimVenue
from controller.venue import AccountSnapshot, InstrumentSpec, OrderState, Venue

API_KEY_ENV = "LEVCTL_API_KEY"
API_SECRET_ENV = "LEVCTL_API_SECRET"


class ReadOnlyVenue:
    """What a dry run may do with a venue: read.  There is no method that sends anything."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        self.name = venue.name

    def load_instruments(self) -> Mapping[str, InstrumentSpec]:
        return self._venue.load_instruments()

    def snapshot(self) -> AccountSnapshot:
        return self._venue.snapshot()

    def get_order(self, *, order_id: str | None = None, label: str | None = None) -> OrderState | None:
        return self._venue.get_order(order_id=order_id, label=label)

    def open_orders(self) -> list[OrderState]:
        return self._venue.open_orders()


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
        engine = _sim_engine(config, log)
        venue: Venue = SimVenue(
            engine,
            hedge_instrument=config.venue.hedge_instrument,
            use_vol_index=config.venue.sim.use_vol_index,
        )
        clock: Callable[[], datetime] = lambda: engine.now  # noqa: E731 - the virtual clock
        step = config.venue.sim.step_s

        def advance() -> None:
            engine.advance(step)

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


def engine_config(config: Config) -> SimConfig:
    sim = config.venue.sim
    listing = ListingParams(
        currency=config.venue.currency,
        weeklies=sim.weeklies,
        monthlies=sim.monthlies,
        quarterlies=sim.quarterlies,
        strikes_each_side=sim.strikes_each_side,
    )
    return SimConfig(seed=sim.seed, start=sim.start, initial_balance=sim.initial_balance, listing=listing)


def _sim_engine(config: Config, log: Callable[[str, str], None]) -> SimExchange:
    sim = config.venue.sim
    settings = engine_config(config)
    if sim.replay:
        try:
            engine = SimExchange(settings, path=ReplayPath(load_replay_csv(Path(sim.replay))))
        except ReplayError as exc:
            raise ConfigError(f"{config.source}: venue.sim.replay: {exc}") from None
    else:
        engine = SimExchange(settings)
    for i, entry in enumerate(sim.book):
        name = _book_instrument(engine, entry, config.venue.hedge_instrument)
        direction = "buy" if entry.size > 0 else "sell"
        try:
            engine.place_order(name=name, direction=direction, amount=abs(entry.size), label=f"start-{i}")
        except SimError as exc:
            raise ConfigError(
                f"{config.source}: venue.sim.book.{i}: the simulator refused {name}: {exc}"
            ) from None
        log("info", f"starting book: {direction} {abs(entry.size):g} {name}")
    return engine


def _book_instrument(engine: SimExchange, entry: SimBookEntry, hedge: str) -> str:
    if entry.kind == "perpetual":
        return hedge
    assert entry.expiry_days is not None and entry.moneyness is not None
    index = engine.market().index
    days, moneyness = entry.expiry_days, entry.moneyness
    options = [
        (x.name, x.expiry, x.strike)
        for x in engine.instruments(kind="option")
        if x.is_call == (entry.right == "call") and x.expiry is not None and x.strike is not None
    ]
    expiry = min(
        {e for _, e, _ in options}, key=lambda e: abs((e - engine.now).total_seconds() / 86400 - days)
    )
    same = [(name, strike) for name, e, strike in options if e == expiry]
    return min(same, key=lambda item: abs(item[1] - moneyness * index))[0]
