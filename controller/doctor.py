"""``levctl doctor``: what a run needs, checked before it starts — one finding per check.

Read-only against the exchange (the clock, the instruments, a signed account read, the key's scope
from Deribit's ``public/auth``); nothing is ever sent.  The decision log is opened and a write
transaction begun and rolled back (or, for a log not yet created, a scratch file written and removed
beside it): nothing permanent is written.  A check fails (exit 3) when a run would fail on it; it
warns when a run would go on but a person should know (a key that can withdraw, a clock off by more
than ``guards.max_clock_skew_s``, little room on the log's disk).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.app import API_KEY_ENV, API_SECRET_ENV, RunOptions, effective_mode
from controller.config import Config, ConfigError
from controller.venues import InstrumentSpec, VenueError

MIN_FREE_BYTES = 100 * 1024 * 1024
# Deribit scopes: "account:read" (summaries, positions), "trade:read" (orders), "trade:read_write" (send)
NEEDS: dict[str, tuple[str, ...]] = {
    "dry-run": ("account:read", "trade:read"),
    "testnet": ("account:read", "trade:read_write"),
    "live": ("account:read", "trade:read_write"),
}
EXCHANGE_CHECKS = ("credentials", "exchange", "clock", "access", "hedge", "account")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str


def run_checks(
    config: Config,
    options: RunOptions,
    *,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[Check]:
    env = os.environ if env is None else env
    try:
        mode = effective_mode(config, options)
    except ConfigError as exc:
        return [Check("config", "fail", str(exc))]
    v = config.venue
    where = (
        "the built-in simulator"
        if v.kind == "sim"
        else f"{v.ccxt.exchange} ({'testnet' if v.ccxt.sandbox else 'LIVE'})"
    )
    checks = [
        Check("config", "ok", f"{config.source}: mode {mode} on {where}, hedging on {v.hedge_instrument}")
    ]
    if v.kind == "sim":
        checks += _sim_checks(config)
    else:
        found = _exchange_checks(config, options, mode, env, clock)
        done = {c.name for c in found}
        skipped = [
            Check(n, "skip", f"not checked: {found[-1].name} failed")
            for n in EXCHANGE_CHECKS
            if n not in done
        ]
        checks += found + skipped
    checks.append(log_check(options.db or Path(config.run.db)))
    return checks


def _sim_checks(config: Config) -> list[Check]:
    from controller.venues.sim import SimSetupError, open_sim_venue

    try:
        venue = open_sim_venue(config.sim_settings(), book=config.starting_book())
        snapshot = venue.snapshot()
        specs = venue.load_instruments()
    except (SimSetupError, VenueError) as exc:
        return [Check("exchange", "fail", f"the simulator cannot start: {exc}")]
    return [
        Check("credentials", "ok", "none needed (the built-in simulator, a paper account)"),
        Check(
            "exchange",
            "ok",
            f"the built-in simulator, its clock at {snapshot.server_time:%Y-%m-%d %H:%M} UTC",
        ),
        _hedge_check(config, specs),
        Check(
            "account",
            "ok",
            f"{snapshot.currency}, equity {snapshot.equity_coin:g} {snapshot.currency}; the simulator's "
            "standard (segregated) margin",
        ),
    ]


def _exchange_checks(
    config: Config, options: RunOptions, mode: str, env: Mapping[str, str], clock: Callable[[], datetime]
) -> list[Check]:
    key, secret = env.get(API_KEY_ENV), env.get(API_SECRET_ENV)
    if not (key and secret):
        missing = " and ".join(n for n, x in ((API_KEY_ENV, key), (API_SECRET_ENV, secret)) if not x)
        return [Check("credentials", "fail", f"{missing} not set in the environment")]
    checks = [Check("credentials", "ok", f"{API_KEY_ENV} and {API_SECRET_ENV} are set")]
    from controller.venues.ccxt_deribit import CcxtVenue  # ccxt loads only here

    settings = config.ccxt_settings()
    if options.venue_url:
        settings = replace(settings, rest_url=options.venue_url)
    venue = CcxtVenue(settings, api_key=key, api_secret=secret, clock=clock)
    try:
        server = venue.server_time()
    except VenueError as exc:
        return [*checks, Check("exchange", "fail", str(exc))]
    skew = (clock() - server).total_seconds()
    limit = config.guards.max_clock_skew_s
    checks.append(
        Check("exchange", "ok", f"{venue.name} answers at {settings.rest_url or 'its default URL'}")
    )
    checks.append(
        Check(
            "clock",
            "ok" if abs(skew) <= limit else "warn",
            f"local clock {skew:+.2f} s from the exchange's (usOut); guards.max_clock_skew_s = {limit:g}"
            + (
                "" if abs(skew) <= limit else ": synchronise it (NTP); data age is measured on the exchange's"
            ),
        )
    )
    try:
        profile = venue.access_profile()
    except VenueError as exc:
        return [*checks, Check("access", "fail", str(exc))]
    checks.append(scope_check(profile.get("scope"), mode))
    try:
        checks.append(_hedge_check(config, venue.load_instruments()))
    except VenueError as exc:
        checks.append(Check("hedge", "fail", str(exc)))
    checks.append(_account_check(config, profile))
    return checks


def scope_check(scope: str | None, mode: str) -> Check:
    """Whether the key's Deribit scope lets the mode do its work (and whether it could withdraw)."""
    if not scope:
        return Check("access", "warn", "credentials accepted; the exchange did not say the key's scope")
    granted = set(scope.split())
    has = {s for s in granted if ":" in s} | {s.replace("read_write", "read") for s in granted}
    missing = [s for s in NEEDS.get(mode, ()) if s not in has]
    shown = " ".join(sorted(s for s in granted if ":" in s))
    if missing:
        return Check(
            "access", "fail", f"the key's scope ({shown}) lacks {', '.join(missing)}, needed for {mode}: "
            "tick it on the key (Account → API)"
        )  # fmt: skip
    if "wallet:read_write" in granted:
        return Check(
            "access",
            "warn",
            f"credentials accepted, scope {shown}: the key can withdraw; untick wallet write",
        )
    return Check("access", "ok", f"credentials accepted, scope {shown}: enough for {mode}")


def _hedge_check(config: Config, specs: Mapping[str, InstrumentSpec]) -> Check:
    name = config.venue.hedge_instrument
    spec = specs.get(name)
    if spec is None:
        return Check(
            "hedge",
            "fail",
            f"the exchange does not list {name} ({len(specs)} {config.venue.currency} instruments)",
        )
    kind = "inverse (size in USD)" if spec.inverse else "linear (size in coin)"
    return Check(
        "hedge",
        "ok",
        f"{name} listed: {kind}, contract {spec.contract_size:g}, minimum {spec.min_amount:g}, "
        f"tick {spec.tick_size:g}, taker fee {spec.taker_fee:.3%}",
    )


def _account_check(config: Config, profile: Mapping[str, Any]) -> Check:
    currency, model, equity = profile.get("currency"), profile.get("margin_model"), profile.get("equity")
    wanted = config.venue.currency
    if currency != wanted:
        return Check(
            "account", "fail", f"the account's currency is {currency}, the config's venue.currency {wanted}"
        )
    if not isinstance(equity, int | float) or equity <= 0:
        return Check("account", "fail", f"{currency} equity is {equity}: the controller needs collateral")
    return Check(
        "account", "ok", f"{currency}, equity {equity:g} {currency}, margin model {model or 'not reported'}"
    )


def log_check(db: Path) -> Check:
    """The decision log can be written: nothing permanent is written to find out."""
    if db.is_dir():
        return Check("log", "fail", f"{db} is a directory, not a decision log")
    try:
        if db.exists():
            detail = _existing_log(db)
            folder = db.parent
        else:
            folder = _nearest_folder(db)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".levctl-doctor-"):
                pass
            detail = f"{db} will be created"
    except (OSError, sqlite3.Error, ValueError) as exc:
        return Check("log", "fail", f"{db} cannot be written: {exc}")
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        return Check("log", "warn", f"{detail}; only {free / 2**20:.0f} MiB free on its disk")
    return Check("log", "ok", f"{detail}; {free / 2**30:.1f} GiB free")


def _existing_log(db: Path) -> str:
    conn = sqlite3.connect(db, timeout=5)
    try:
        names = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        if names and "meta" not in names:
            raise ValueError("it is another program's database, not a levctl decision log")
        conn.execute("BEGIN IMMEDIATE")  # takes the write lock: the file and its folder are writable
        conn.rollback()
        runs = conn.execute("select count(*) from runs").fetchone()[0] if "runs" in names else 0
    finally:
        conn.close()
    return f"{db} is writable ({runs} runs)"


def _nearest_folder(db: Path) -> Path:
    folder = db.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder")
    return folder
