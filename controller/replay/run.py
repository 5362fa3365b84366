"""Replays: the real controller on the in-process simulator, driven by market history.

``levctl replay`` loads a history CSV once (:func:`controller.sim.market.load_replay_csv`) and runs
the ordinary :class:`~controller.loop.Controller` — the same snapshot, risk, policy, execution and
journal code as ``levctl run`` — once per row, on the virtual clock: before each cycle the
simulator moves to the row's time (accruing funding, settling expiries, liquidating if it must).
Gaps in the history are reported as events and jumped over, never filled.

Each replay runs up to three times on the same history, side by side in one decision log:

* ``controller`` — the configuration as given (volatility-scaled target);
* ``fixed-leverage`` — the same, with σ̂ held at σ_ref (the implied estimator on
  ``sigma_sources = ["constant"]``), so L* = L_base throughout, in its own band
  (``replay.baseline_band``, 0.15): the same costs and guards without volatility scaling;
* ``buy-and-hold`` — the base leverage taken once on the perpetual at the start, never traded:
  the controller runs in dry-run beside it, so the log still shows what it would have done.

A reference book decides what the account holds besides the hedge (:class:`ReplayBook`): nothing
(``perpetual``), or a short ATM straddle sold again whenever the last one has expired
(``short-straddle``), which the controller delta-hedges on the perpetual.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from controller.app import order_executor
from controller.config import Config, ConfigError, build_config
from controller.execution import DryRunExecutor
from controller.journal import Journal
from controller.lock import RunLocks
from controller.loop import Controller, ControllerHalted
from controller.sim import SimExchange
from controller.sim.market import ReplayData, ReplayPath
from controller.venues import OrderRequest, Side, VenueError
from controller.venues.sim import SimVenue, engine_config

ROLES = ("controller", "fixed-leverage", "buy-and-hold")
Progress = Callable[[str, int, int], None]  # (role, rows done, rows in all)


@dataclass(frozen=True)
class ReplayRun:
    role: str
    run_id: int
    cycles: int
    failed_cycles: int
    ledger: dict[str, float]
    status: str = "completed"  # or "liquidated" / "halted": the run ended before the history did


@dataclass(frozen=True)
class ReplayOutcome:
    replay_key: str
    runs: tuple[ReplayRun, ...]
    gaps: tuple[tuple[datetime, datetime], ...]


class ReplayBook:
    """What the account holds besides the controller's hedge; acts before each cycle."""

    name = "perpetual"

    def before_cycle(self, engine: SimExchange, venue: SimVenue, label: str) -> list[str]:
        return []


@dataclass
class ShortStraddleBook(ReplayBook):
    """Sell an ATM straddle on the expiry nearest ``tenor_days``; sell the next when it has expired.

    Size per leg: ``fraction`` × equity in coin, rounded down to the option lot.  The strike is the
    listed one nearest the expiry's forward.  Expiries closer than ``min_days`` are not sold.
    """

    fraction: float = 0.5
    tenor_days: float = 30.0
    min_days: float = 7.0
    name = "short-straddle"

    def before_cycle(self, engine: SimExchange, venue: SimVenue, label: str) -> list[str]:
        if any(engine.listed[n].kind == "option" and b.size != 0.0 for n, b in engine.positions.items()):
            return []
        now = engine.now
        by_expiry: dict[datetime, list] = {}
        for x in engine.instruments(kind="option"):
            days = (x.expiry - now).total_seconds() / 86400.0  # type: ignore[operator]
            if days >= self.min_days:
                by_expiry.setdefault(x.expiry, []).append(x)  # type: ignore[arg-type]
        if not by_expiry:
            return [f"book: no option expiry at least {self.min_days:g} days out; no straddle sold"]
        expiry = min(by_expiry, key=lambda e: abs((e - now).total_seconds() / 86400.0 - self.tenor_days))
        forward = engine.quote(by_expiry[expiry][0].name).underlying_price
        strike = min({x.strike for x in by_expiry[expiry]}, key=lambda k: abs(k - forward))
        legs = [x for x in by_expiry[expiry] if x.strike == strike]
        lot = legs[0].min_amount
        size = math.floor(self.fraction * engine.account().equity / lot + 1e-9) * lot
        if size < lot:
            return ["book: equity too small for one option lot; no straddle sold"]
        sold: list[str] = []
        for i, leg in enumerate(sorted(legs, key=lambda x: not x.is_call)):
            request = OrderRequest(leg.name, Side.SELL, round(size, 8), f"{label}-{i}")
            try:
                state = venue.place_order(request)
            except VenueError as exc:
                return [*sold, f"book: could not sell {leg.name}: {exc}"]
            price = "?" if state.average_price is None else f"{state.average_price:.4f}"
            sold.append(
                f"book: sold {size:g} {leg.name} at {price} {engine.config.currency} (short straddle)"
            )
        return sold


def reference_book(config: Config) -> ReplayBook:
    r = config.file.replay
    if r.book == "short-straddle":
        return ShortStraddleBook(fraction=r.straddle_fraction, tenor_days=r.straddle_tenor_days)
    return ReplayBook()


def role_config(config: Config, role: str) -> Config:
    """The configuration of one role: the given one, or its fixed-leverage twin."""
    if role != "fixed-leverage":
        return config
    raw = config.file.model_dump(mode="json")
    raw["risk"]["sigma_estimator"] = "implied"  # the constant is the implied source
    raw["risk"]["sigma_sources"] = ["constant"]
    raw["risk"]["sigma_constant"] = config.risk.reference_vol
    raw["policy"]["band"] = config.file.replay.baseline_band  # its own band
    return build_config(raw, source=f"{config.source} (fixed leverage: σ̂ = σ_ref)")


def in_currency(config: Config, currency: str) -> Config:
    """The configuration for another currency: its venue, its perpetual as the hedge."""
    if currency == config.venue.currency:
        return config
    raw = config.file.model_dump(mode="json")
    raw["venue"].update(currency=currency, hedge_instrument=f"{currency}-PERPETUAL")
    return build_config(raw, source=f"{config.source} ({currency})")


def check_replay_config(config: Config) -> None:
    if config.venue.kind != "sim":
        raise ConfigError(f"{config.source}: venue.kind: a replay runs on the simulator ('sim')")
    if config.run.mode not in ("paper", "dry-run"):
        raise ConfigError(
            f"{config.source}: run.mode: a replay runs 'paper' (or 'dry-run'), not {config.run.mode!r}"
        )


def replay(
    config: Config,
    data: ReplayData,
    db: Path,
    *,
    roles: tuple[str, ...] = ROLES,
    progress: Progress = lambda role, done, total: None,
    cycles_per_commit: int = 2000,
) -> ReplayOutcome:
    """Run the controller (and its baselines) over the history; every run lands in ``db``.

    ``cycles_per_commit = 1`` journals like the live loop (one transaction per cycle)."""
    check_replay_config(config)
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(f"replay roles must be some of {ROLES}, got {roles}")
    key = uuid.uuid4().hex[:12]
    digest = hashlib.sha256(data.times_ms.tobytes() + data.prices.tobytes()).hexdigest()
    locks = RunLocks(db).acquire()  # a replay writes the log too: never beside a running bot
    journal = Journal(db)
    try:
        runs = []
        for role in roles:
            run = _replay_once(
                role_config(config, role),
                data,
                journal,
                role=role,
                progress=progress,
                cycles_per_commit=cycles_per_commit,
            )
            journal.record_replay(
                {
                    "replay_key": key,
                    "run_id": run.run_id,
                    "role": role,
                    "book": config.file.replay.book,
                    "data_source": data.source,
                    "data_sha256": digest,
                    "rows": int(data.times_ms.size),
                    "first_ts": data.start.isoformat(),
                    "last_ts": data.end.isoformat(),
                    "gaps": [[a.isoformat(), b.isoformat()] for a, b in data.gaps],
                    "target_vol": config.policy.base_leverage * config.risk.reference_vol,
                    "ledger": run.ledger,
                }
            )
            runs.append(run)
    finally:
        journal.close()
        locks.release()
    return ReplayOutcome(key, tuple(runs), data.gaps)


def _replay_once(
    config: Config,
    data: ReplayData,
    journal: Journal,
    *,
    role: str,
    progress: Progress,
    cycles_per_commit: int,
) -> ReplayRun:
    engine = SimExchange(engine_config(config.sim_settings()), path=ReplayPath(data))
    venue = SimVenue(
        engine,
        hedge_instrument=config.venue.hedge_instrument,
        use_vol_index=config.venue.sim.use_vol_index,
        read_chain="chain" in config.risk.sigma_sources,  # else the chain's book summary is never read
    )
    passive = role == "buy-and-hold" or config.run.mode == "dry-run"
    executor = (
        DryRunExecutor()
        if passive
        else order_executor(venue, journal, config, clock=lambda: engine.now, sleep=lambda s: None)
    )
    controller = Controller(
        config=config,
        venue=venue,
        executor=executor,
        journal=journal,
        clock=lambda: engine.now,
        sleep=lambda s: None,
        carry_state=False,  # a replay starts cold, whatever else the log holds
        resume_state=False,
    )
    controller.start()
    book = ReplayBook() if role == "buy-and-hold" else reference_book(config)
    for a, b in data.gaps:
        hours = (b - a).total_seconds() / 3600.0
        journal.event(
            run_id=controller.run_id,
            ts=a,
            level="warning",
            kind="data_gap",
            message=f"no market data from {a.isoformat()} to {b.isoformat()} ({hours:.0f} h): "
            "the clock jumps over it, nothing is filled",
        )
    flows = _CashFlows(engine)
    if role == "buy-and-hold":
        _take_base_leverage(
            engine, venue, config, label=f"{config.run.label_prefix}-{controller.run_key}-hold"
        )
    times = data.times_ms
    total = int(times.size)
    failed, done, status = 0, 0, "completed"
    with journal.batched(cycles_per_commit=cycles_per_commit):
        for i in range(total):
            seen = len(engine.events)
            if i:
                engine.advance_to(datetime.fromtimestamp(times[i] / 1000.0, UTC))
            label = f"{config.run.label_prefix}-{controller.run_key}-b{i}"
            for message in book.before_cycle(engine, venue, label):
                journal.event(
                    run_id=controller.run_id, ts=engine.now, level="info", kind="book", message=message
                )
            done = i + 1
            try:
                failed += controller.cycle().error is not None
            except ControllerHalted as exc:
                status = _ended(engine, journal, controller.run_id, str(exc))
                break
            flows.update()
            if any(
                e.kind == "liquidation" for e in engine.events[seen:]
            ):  # the strategy failed: its run ends
                status = _ended(engine, journal, controller.run_id, "liquidated by the exchange")
                break
            if i % 500 == 0 or i == total - 1:
                progress(role, i + 1, total)
    reason = f"{done} of {total} rows of {data.source} replayed"
    controller.finish(status, reason if status == "completed" else f"{status} after {reason}")
    ledger = {k: float(v) for k, v in engine.ledger().items()}
    ledger.update(funding_usd=flows.funding_usd, fees_usd=flows.fees_usd)
    progress(role, total, total)
    return ReplayRun(role, controller.run_id, done, failed, ledger, status)


def _ended(engine: SimExchange, journal: Journal, run_id: int, reason: str) -> str:
    """A replayed account that halted: ``liquidated`` when the exchange liquidated it, with when and where."""
    liquidations = [e for e in engine.events if e.kind == "liquidation"]
    if not liquidations:
        return "halted"
    last = liquidations[-1]
    journal.event(
        run_id=run_id,
        ts=engine.now,
        level="error",
        kind="liquidated",
        message=f"the account was liquidated at {last.time.isoformat()} with the index at "
        f"{engine.market().index:,.2f} USD ({last.message}); the run ends here: {reason}",
    )
    for bust in (e for e in engine.events if e.kind == "bankrupt"):  # equity left at or below zero
        journal.event(run_id=run_id, ts=bust.time, level="error", kind="bankrupt", message=bust.message)
    return "liquidated"


class _CashFlows:
    """Funding and fees in USD, each valued at the index of the cycle in which it was booked."""

    def __init__(self, engine: SimExchange) -> None:
        self.engine = engine
        self.funding_usd = self.fees_usd = 0.0
        self._funding, self._fees = engine.funding_total, engine.fees_paid

    def update(self) -> None:
        e = self.engine
        index = e.market().index
        self.funding_usd += (e.funding_total - self._funding) * index
        self.fees_usd += (e.fees_paid - self._fees) * index
        self._funding, self._fees = e.funding_total, e.fees_paid


def _take_base_leverage(engine: SimExchange, venue: SimVenue, config: Config, *, label: str) -> None:
    """Buy-and-hold's one trade: the perpetual that brings the account to L_base (collateral counts)."""
    account = engine.account()
    mark = engine.quote(config.venue.hedge_instrument).mark_price
    index = engine.market().index
    lot = engine.listed[config.venue.hedge_instrument].min_amount
    mode, base = config.policy.mode.value, config.policy.base_leverage
    leverage = {"long": base, "short": -base}.get(mode, 0.0)
    # Δ_coin = equity + P/M must equal L·equity  ⇒  P = (L − 1)·equity·M
    goal = (leverage - 1.0) * account.equity * mark
    amount = round(goal / lot) * lot
    if amount == 0:
        return
    side = Side.BUY if amount > 0 else Side.SELL
    try:
        venue.place_order(OrderRequest(config.venue.hedge_instrument, side, abs(amount), label))
    except VenueError as exc:
        raise ConfigError(
            f"buy-and-hold could not take its starting position at {index:,.0f}: {exc}"
        ) from None
