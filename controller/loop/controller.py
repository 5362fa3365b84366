"""The controller loop: snapshot → settle orders in flight → risk → policy → execution → journal.

One cycle never overlaps the next: the ``schedule`` library computes the next run after a job
ends, so a slow cycle delays the next one instead of stacking them.  The clock, the sleep and the
scheduler are passed in.

What can go wrong, and what happens:

* a temporary venue error is retried with backoff and recorded as an event;
* any other exception in a cycle — an exchange error, a reply of the wrong shape, a bug — is
  recorded (a cycle row in state ERROR and an event naming the exception, secrets scrubbed) and the
  loop goes on;
* what repetition cannot fix halts trading with its reason (:class:`ControllerHalted`, exit status
  3): the exchange refusing our credentials on any call, equity at or below zero, a position in an
  instrument the controller cannot price, a decision log that cannot be written.  A restart after
  the cause is gone resumes;
* an order whose outcome is unknown stays in flight — held in every decision, looked up every cycle
  — until it is resolved (:mod:`controller.execution`); at start-up the journal's orders in flight,
  whichever run sent them, are resolved the same way.

Stop requests (SIGINT/SIGTERM) are honoured between cycles.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import schedule

from controller import __version__
from controller.config import Config
from controller.execution import (
    DryRunExecutor,
    Event,
    OrderExecutor,
    Resolver,
    for_policy,
    in_flight_positions,
    plan_orders,
    run_key_suffix,
)
from controller.journal import CycleRecord, Journal, JournalError
from controller.loop.cycles import ControllerHalted, CycleResult, Observed, PortfolioShare, ReadVenue
from controller.loop.runtime import run_on_schedule
from controller.orders import OrderState, TrackedOrder, describe
from controller.records import (
    Notice,
    carried_state_json,
    cycle_record,
    cycle_summary,
    resume_saved_state,
)
from controller.risk import (
    AccountStateError,
    Decision,
    PolicyState,
    RiskReport,
    RiskState,
    TradingState,
    assess,
    check,
    decide,
)
from controller.venues import (
    AccessDeniedError,
    AccountSnapshot,
    BackoffPolicy,
    InstrumentSpec,
    OrderReport,
    TemporaryVenueError,
    UnknownInstrumentError,
    VenueError,
    call_with_retries,
)

T = TypeVar("T")


def currency_of(instrument: str) -> str:
    """The currency a Deribit instrument belongs to: ``ETH-PERPETUAL`` → ETH, ``BTC_USDC-…`` → BTC."""
    return instrument.split("-", 1)[0].split("_", 1)[0]


HALTS = (AccessDeniedError, UnknownInstrumentError, AccountStateError)  # repetition cannot fix these


@dataclass
class Controller:
    config: Config
    venue: ReadVenue
    executor: DryRunExecutor | OrderExecutor
    journal: Journal
    clock: Callable[[], datetime]
    sleep: Callable[[float], None] = time.sleep
    advance: Callable[[], None] | None = None  # the simulator's virtual clock: one step before each cycle
    kill_switch: Callable[[], bool] = lambda: False
    log: Callable[[str, str], None] = lambda level, message: None
    scrub: Callable[[str], str] = lambda text: text  # removes secrets from messages
    release: Callable[[], None] = lambda: None  # the run's locks
    notify: Callable[[Notice], list[Event]] = lambda notice: []  # returns what it failed to send before
    carry_state: bool = True  # save the state each cycle (replays do not)
    resume_state: bool = True  # start from the log's last saved state (--fresh-state, replays: cold)
    run_id: int = 0
    run_key: str = ""
    cycles_done: int = 0
    policy_state: PolicyState = field(default_factory=PolicyState)
    risk_state: RiskState = field(default_factory=RiskState)
    in_flight: list[TrackedOrder] = field(default_factory=list)
    specs: Mapping[str, InstrumentSpec] = field(default_factory=dict)
    _retry_rng: random.Random | None = field(default=None, repr=False)

    @functools.cached_property
    def _backoff(self) -> BackoffPolicy:
        r = self.config.run
        return BackoffPolicy(
            r.retry_attempts, r.retry_base_delay_s, max(r.retry_max_delay_s, r.retry_base_delay_s)
        )

    # ----------------------------------------------------------------- start and stop
    def start(self) -> None:
        started = self.clock()
        crashed = self.journal.close_crashed_runs(now=started, found_by=f"process {os.getpid()}")
        self.run_id = self.journal.start_run(
            started_at=started,
            mode=self.mode,
            venue=self.venue.name,
            config_source=self.config.source,
            config_json=self.config.as_json(),
            config_sha256=self.config.sha256,
            version=__version__,
            pid=os.getpid(),
            host=socket.gethostname(),
        )
        self.run_key = f"{self.run_id}{run_key_suffix(int(started.timestamp()))[-5:]}"
        for run in crashed:
            self._event("warning", "crashed_run", f"run {run['id']} was left running: closed as crashed")
        self._event(
            "info",
            "start",
            f"run {self.run_id} ({self.mode}) on {self.venue.name}, config {self.config.source}",
        )
        self._prepare()

    def join(self, run_id: int, run_key: str) -> None:
        """Take part in a run another controller started (one currency of a portfolio)."""
        self.run_id, self.run_key = run_id, run_key
        self._prepare()

    def _prepare(self) -> None:
        """The venue's instruments, the state the log saved, orders in flight and stray orders."""
        try:
            self.specs = self._with_retries(self.venue.load_instruments, [])
            if self.config.venue.hedge_instrument not in self.specs:
                raise self._halt(
                    f"the venue does not list the hedge instrument {self.config.venue.hedge_instrument}"
                )
            if self.resume_state:
                self._resume_state()
            self._resume_in_flight()
            self._reconcile()
        except HALTS as exc:
            raise self._halt(str(exc)) from None

    @property
    def mode(self) -> str:
        return "dry-run" if isinstance(self.executor, DryRunExecutor) else self.config.run.mode

    def finish(self, status: str, reason: str) -> None:
        self.notify(Notice(self.run_id, self.mode, self.venue.name, {}, stopped=(status, reason)))
        self._event("info", "stop", f"{status}: {reason}")
        self.journal.finish_run(self.run_id, finished_at=self.clock(), status=status, reason=reason)

    def close(self) -> None:
        """Close the decision log and release the run's locks (after :meth:`finish`)."""
        try:
            self.journal.close()
        finally:
            self.release()

    def _resume_state(self) -> None:
        """σ̂'s EWMAs, peak equity and the drawdown latch where the log's last cycle left them, and the
        daily closes VaR needs: a restart continues instead of starting cold."""
        resumed = resume_saved_state(
            self.journal, self.config.venue.currency, self.config.risk.var_window_days, now=self.clock()
        )
        if resumed is not None:
            self.risk_state, self.policy_state, message = resumed
            self._event("info", "state_resumed", message)

    def _resume_in_flight(self) -> None:
        """Orders the journal holds in flight (this log's earlier runs): resolve them before deciding."""
        currency = self.config.venue.currency
        pending = [o for o in self.journal.in_flight() if currency_of(o.instrument) == currency]
        if not pending:
            return
        events: list[Event] = [
            ("warning", "order_in_flight_at_start", f"{describe(o)}: resolving it before any decision")
            for o in pending
        ]
        resolved = [self._settle(o, events, position=None) for o in pending]
        self.in_flight = [o for o in resolved if o.in_flight]
        for level, kind, message in events:
            self._event(level, kind, message)

    def _reconcile(self) -> None:
        """Open orders carrying our label prefix that the journal does not follow: cancel or adopt them."""
        prefix = f"{self.config.run.label_prefix}-"
        followed = {o.label for o in self.in_flight}
        try:
            stray = [
                o
                for o in self._with_retries(self.venue.open_orders, [])
                if (o.label or "").startswith(prefix) and o.label not in followed
            ]
        except VenueError as exc:
            self._event("warning", "reconcile_failed", f"could not list open orders: {exc}")
            return
        if not stray:
            return
        names = ", ".join(f"{o.label} ({o.order_id})" for o in stray)
        if not isinstance(self.executor, OrderExecutor):
            self._event(
                "warning",
                "reconcile",
                f"dry-run leaves {len(stray)} open order(s) of an earlier run: {names}",
            )
        elif self.config.run.reconcile == "adopt":
            for order in stray:
                self.in_flight.append(self.journal.record_intent(self._adopted(order), detail="adopted"))
            self._event("info", "reconcile", f"adopted {len(stray)} open order(s) of an earlier run: {names}")
        else:
            for order in stray:
                try:
                    self.executor.venue.cancel_order(order.order_id)
                    self._event(
                        "info", "reconcile", f"cancelled stray order {order.label} ({order.order_id})"
                    )
                except VenueError as exc:
                    self._event("warning", "reconcile_failed", f"could not cancel {order.label}: {exc}")

    def _adopted(self, order: OrderReport) -> TrackedOrder:
        now = self.clock()
        return TrackedOrder(
            label=order.label or order.order_id,
            run_id=self.run_id,
            cycle_n=0,
            instrument=order.instrument,
            side=order.side,
            amount=order.amount,
            reduce_only=order.reduce_only,
            state=OrderState.OPEN,
            created_at=now,
            updated_at=now,
            exchange_order_id=order.order_id,
            filled_amount=order.filled_amount,
            avg_price=order.average_price,
            resolved_by="adopted",
        )

    # ----------------------------------------------------------------- the cycle
    def cycle(self) -> CycleResult:
        self.cycles_done += 1
        n = self.cycles_done
        started = time.perf_counter()
        events: list[Event] = []
        if self.advance is not None and n > 1:
            self.advance()
        now = self.clock()
        return self.guarded(
            n, now, started, events, lambda: self.act(n, now, started, events, self.observe(events))
        )

    def guarded(
        self, n: int, now: datetime, started: float, events: list[Event], step: Callable[[], T]
    ) -> T | CycleResult:
        """A step of cycle ``n`` at the cycle boundary: a failure is recorded and the loop goes on,
        what repetition cannot fix halts (:data:`HALTS`, a decision log that cannot be written)."""
        try:
            return step()
        except ControllerHalted:
            raise
        except JournalError as exc:
            raise self._halt(str(exc), journal_works=False) from None
        except HALTS as exc:
            raise self._halt_cycle(n, now, started, events, str(exc)) from None
        except Exception as exc:  # the cycle boundary: record it, and the loop goes on
            return self._failed(n, now, started, events, exc)

    def observe(self, events: list[Event]) -> Observed:
        """The account as the venue holds it (orders in flight settled first) and its risk report."""
        snapshot = self._with_retries(self.venue.snapshot, events)
        if self._settle_in_flight(snapshot, events):
            # fills just learnt of may have happened after that snapshot: decide on one taken after them
            snapshot = self._with_retries(self.venue.snapshot, events)
        report, risk_state = assess(snapshot, self.config.risk, self.risk_state, now=snapshot.server_time)
        return Observed(snapshot, report, risk_state)

    def act(
        self,
        n: int,
        now: datetime,
        started: float,
        events: list[Event],
        observed: Observed,
        portfolio: PortfolioShare | None = None,
    ) -> CycleResult:
        """Decide on what was observed (with this currency's share of a portfolio target, if any),
        execute, and record the cycle."""
        snapshot, report, risk_state = observed
        decision, policy_state = decide(
            report,
            snapshot,
            self.specs[self.config.venue.hedge_instrument],
            self.config.policy,
            self.config.guards,
            self.config.advice,
            self.policy_state,
            now=now,
            kill_switch=self.kill_switch(),
            in_flight=tuple(for_policy(o) for o in self.in_flight),
            portfolio_target=None if portfolio is None else portfolio.target_leverage,
            portfolio_reducing=() if portfolio is None else portfolio.reducing,
        )
        self.risk_state, self.policy_state = risk_state, policy_state
        execution = self.executor.execute(
            self._plan(n, now, decision, snapshot), gate=self._gate(report, decision)
        )
        events += execution.events
        self.in_flight += [o for o in execution.orders if o.in_flight]
        skew = snapshot.clock_skew_s
        if abs(skew) > self.config.guards.max_clock_skew_s:
            events.append(
                ("warning", "clock_skew", f"the local clock is {skew:+.1f} s off the exchange's (usOut)")
            )
        record = cycle_record(self.run_id, n, now, snapshot, report, decision, execution, started)
        record.row.update(
            skew_s=skew, in_flight=len(self.in_flight), **({} if portfolio is None else portfolio.row)
        )
        if self.carry_state:
            record.row["carried_state"] = carried_state_json(
                risk_state.sigma, policy_state, currency=snapshot.currency
            )
        record.events = self._event_rows(events, now)
        cycle_id = self._commit(record, execution.orders)
        self.log("info", cycle_summary(n, report, decision, execution))
        if execution.halt is not None:
            raise self._halt(execution.halt)
        return CycleResult(n, decision, report, snapshot, execution, None, cycle_id)

    def _plan(
        self, n: int, now: datetime, decision: Decision, snapshot: AccountSnapshot
    ) -> list[TrackedOrder]:
        return plan_orders(
            decision,
            snapshot,
            label_prefix=self.config.run.label_prefix,
            run_key=self.run_key,
            run_id=self.run_id,
            n=n,
            now=now,
        )

    def _gate(self, report: RiskReport, decision: Decision) -> Callable[[TrackedOrder], Any]:
        def gate(order: TrackedOrder) -> Any:
            return check(
                order,
                report=report,
                spec=self.specs[order.instrument],
                settings=self.config.policy,
                reducing=decision.state is TradingState.REDUCING,
                kill_switch=self.kill_switch(),
            )

        return gate

    def _settle_in_flight(self, snapshot: AccountSnapshot, events: list[Event]) -> bool:
        """Look every order in flight up; True when one turned out to have filled (more)."""
        if not self.in_flight:
            return False
        positions = in_flight_positions(self.in_flight, {p.name: p.size for p in snapshot.positions})
        settled = [self._settle(o, events, position=positions[o.label]) for o in self.in_flight]
        filled_more = any(
            after.filled_amount > before.filled_amount
            for before, after in zip(self.in_flight, settled, strict=True)
        )
        self.in_flight = [o for o in settled if o.in_flight]
        return filled_more

    def _settle(self, order: TrackedOrder, events: list[Event], *, position: float | None) -> TrackedOrder:
        if isinstance(self.executor, OrderExecutor):
            return self.executor.settle(order, events, position=position)
        resolver = Resolver(
            self.venue, self.journal, clock=self.clock, valid_margin_s=self.config.run.valid_margin_s
        )
        return resolver.resolve(order, events, position=position)

    def _failed(
        self, n: int, now: datetime, started: float, events: list[Event], exc: Exception
    ) -> CycleResult:
        message = self.scrub(f"{exc}" if isinstance(exc, VenueError) else f"{type(exc).__name__}: {exc}")
        events.append(("error", "cycle_failed", f"cycle {n} failed: {message}"))
        self.log("error", f"cycle {n} failed: {message}")
        cycle_id = self._write_bare_cycle(n, now, started, events, "ERROR", "ERROR", message)
        return CycleResult(n, None, None, None, None, message, cycle_id)

    def _halt_cycle(
        self, n: int, now: datetime, started: float, events: list[Event], reason: str
    ) -> ControllerHalted:
        reason = self.scrub(reason)
        events.append(("error", "halt", f"halted: {reason}"))
        self._write_bare_cycle(n, now, started, events, "HALTED", "HALT", reason)
        return self._halt(reason, recorded=True)

    def _write_bare_cycle(
        self, n: int, now: datetime, started: float, events: list[Event], state: str, action: str, reason: str
    ) -> int:
        row = {
            "run_id": self.run_id,
            "n": n,
            "ts": now,
            "currency": self.config.venue.currency,  # a portfolio's failed cycle names its currency
            "state": state,
            "action": action,
            "reason": reason,
            "latency_ms": (time.perf_counter() - started) * 1e3,
            "in_flight": len(self.in_flight),
        }
        return self._commit(CycleRecord(row, events=self._event_rows(events, now)), [])

    def _commit(self, record: CycleRecord, sent: list[TrackedOrder]) -> int:
        cycle_id = self.journal.write_cycle(record)
        told = Notice(self.run_id, self.mode, self.venue.name, record.row, tuple(record.events), tuple(sent))
        for level, kind, message in self.notify(told):  # notices that could not be sent before
            self._event(level, kind, message)
        return cycle_id

    def _with_retries(self, operation: Callable[[], Any], events: list[Event]) -> Any:
        def record(attempt: int, error: TemporaryVenueError, delay: float) -> None:
            events.append(
                ("warning", "venue_retry", f"attempt {attempt} failed ({error}); retrying in {delay:.2f} s")
            )
            self.log("warning", f"venue: {error}; retry {attempt} in {delay:.2f} s")

        if self._retry_rng is None:  # one jitter stream per run, seeded by it
            self._retry_rng = random.Random(self.run_id)
        return call_with_retries(
            operation, policy=self._backoff, sleep=self.sleep, rng=self._retry_rng, on_retry=record
        )

    # ----------------------------------------------------------------- the schedule
    def run(self, *, cycles: int, scheduler: schedule.Scheduler, should_stop: Callable[[], bool]) -> str:
        """Run cycles on the scheduler until ``cycles`` are done (0: forever) or a stop is asked for."""
        return run_on_schedule(
            self.cycle,
            done=lambda: self.cycles_done,
            interval_s=self.config.run.interval_s,
            cycles=cycles,
            scheduler=scheduler,
            should_stop=should_stop,
            sleep=self.sleep,
        )

    # ----------------------------------------------------------------- helpers
    def _halt(self, reason: str, *, journal_works: bool = True, recorded: bool = False) -> ControllerHalted:
        reason = self.scrub(reason)
        if journal_works and not recorded:
            with contextlib.suppress(JournalError):  # the halt stands; the terminal still gets the reason
                self._event("error", "halt", f"halted: {reason}")
        self.log("error", f"halted: {reason}")
        return ControllerHalted(reason)

    def _event(self, level: str, kind: str, message: str) -> None:
        self.journal.event(
            run_id=self.run_id or None, ts=self.clock(), level=level, kind=kind, message=self.scrub(message)
        )

    def _event_rows(self, events: list[Event], now: datetime) -> list[dict[str, Any]]:
        return [
            {"run_id": self.run_id, "ts": now, "level": lv, "kind": k, "message": self.scrub(m)}
            for lv, k, m in events
        ]
