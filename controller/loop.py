"""The controller loop: snapshot → risk → policy → execution → journal, every cycle.

One cycle never overlaps the next: the ``schedule`` library computes the next run after a job
ends, so a slow cycle delays the next one instead of stacking them.  A temporary venue error is
retried with backoff and recorded as an event; a cycle that fails for any other reason is
recorded and the loop goes on; only an :class:`AccessDeniedError` (bad credentials, missing
permission) stops it, with a clear message.  Stop requests (SIGINT/SIGTERM) are honoured between
cycles.  The clock, the sleep and the scheduler are passed in.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import schedule

from controller import __version__
from controller.config import Config
from controller.execution import DryRunExecutor, ExecutionReport, OrderExecutor, order_label
from controller.journal import CycleRecord, Journal
from controller.risk.assess import RiskReport, assess
from controller.risk.policy import Decision, PolicyState, decide
from controller.risk.volatility import VolState
from controller.venues import (
    AccessDeniedError,
    AccountSnapshot,
    InstrumentSpec,
    OrderState,
    TemporaryVenueError,
    VenueError,
)
from controller.venues.retry import BackoffPolicy, call_with_retries


class ReadVenue(Protocol):
    """What the loop may ask of any venue; sending is only through an executor."""

    name: str

    def load_instruments(self) -> Mapping[str, InstrumentSpec]: ...

    def snapshot(self) -> AccountSnapshot: ...

    def get_order(self, *, order_id: str | None = None, label: str | None = None) -> OrderState | None: ...

    def open_orders(self) -> list[OrderState]: ...


class ControllerStopped(Exception):
    """The loop stopped for a reason a person must act on (bad credentials …)."""


@dataclass
class CycleResult:
    n: int
    decision: Decision | None
    report: RiskReport | None
    snapshot: AccountSnapshot | None
    execution: ExecutionReport | None
    error: str | None
    cycle_id: int


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
    run_id: int = 0
    run_key: str = ""
    cycles_done: int = 0
    policy_state: PolicyState = field(default_factory=PolicyState)
    vol_state: VolState = field(default_factory=VolState)
    pending_labels: list[str] = field(default_factory=list)
    specs: Mapping[str, InstrumentSpec] = field(default_factory=dict)

    # ----------------------------------------------------------------- start and stop
    def start(self) -> None:
        started = self.clock()
        self.run_id = self.journal.start_run(
            started_at=started,
            mode=self.mode,
            venue=self.venue.name,
            config_source=self.config.source,
            config_json=self.config.as_json(),
            config_sha256=self.config.sha256,
            version=__version__,
        )
        self.run_key = f"{self.run_id}{_base36(int(started.timestamp()))[-5:]}"
        self._event(
            "info",
            "start",
            f"run {self.run_id} ({self.mode}) on {self.venue.name}, config {self.config.source}",
        )
        try:
            self.specs = self._with_retries(self.venue.load_instruments, [])
        except AccessDeniedError as exc:
            raise self._stop(exc) from None
        if self.config.venue.hedge_instrument not in self.specs:
            raise self._stop(
                VenueError(
                    f"the venue does not list the hedge instrument {self.config.venue.hedge_instrument}"
                )
            )
        self._reconcile()

    @property
    def mode(self) -> str:
        return "dry-run" if isinstance(self.executor, DryRunExecutor) else self.config.run.mode

    def finish(self, status: str, reason: str) -> None:
        self._event("info", "stop", f"{status}: {reason}")
        self.journal.finish_run(self.run_id, finished_at=self.clock(), status=status, reason=reason)

    def _reconcile(self) -> None:
        """Open orders carrying our label prefix from an earlier run: cancel or adopt them."""
        prefix = f"{self.config.run.label_prefix}-"
        try:
            stray = [
                o
                for o in self._with_retries(self.venue.open_orders, [])
                if (o.label or "").startswith(prefix)
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

    # ----------------------------------------------------------------- the cycle
    def cycle(self) -> CycleResult:
        self.cycles_done += 1
        n = self.cycles_done
        started = time.perf_counter()
        events: list[tuple[str, str, str]] = []
        if self.advance is not None and n > 1:
            self.advance()
        now = self.clock()
        events += self._resolve_pending()
        try:
            snapshot = self._with_retries(self.venue.snapshot, events)
            report, vol_state = assess(snapshot, self.config.risk, self.vol_state, now=now)
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
            )
        except AccessDeniedError as exc:
            raise self._stop(exc) from None
        except (VenueError, ValueError, ArithmeticError) as exc:
            message = f"cycle {n} failed: {exc}"
            events.append(("error", "cycle_failed", message))
            self.log("error", message)
            row = {
                "run_id": self.run_id,
                "n": n,
                "ts": now,
                "state": "ERROR",
                "action": "ERROR",
                "reason": str(exc),
                "latency_ms": (time.perf_counter() - started) * 1e3,
            }
            cycle_id = self.journal.write_cycle(CycleRecord(row, events=self._event_rows(events, now)))
            return CycleResult(n, None, None, None, None, str(exc), cycle_id)
        self.vol_state, self.policy_state = vol_state, policy_state
        labels = [
            order_label(self.config.run.label_prefix, self.run_key, n, leg)
            for leg in range(len(decision.orders))
        ]
        execution = self.executor.execute(decision, labels=labels)
        events += execution.events
        self.pending_labels += [o.label for o in execution.outcomes if o.status == "unknown"]
        latency = (time.perf_counter() - started) * 1e3
        record = _cycle_record(self.run_id, n, now, snapshot, report, decision, execution, latency)
        record.events = self._event_rows(events, now)
        cycle_id = self.journal.write_cycle(record)
        self.log("info", _summary(n, report, decision, execution))
        return CycleResult(n, decision, report, snapshot, execution, None, cycle_id)

    def _resolve_pending(self) -> list[tuple[str, str, str]]:
        """Orders whose outcome was unknown: look them up by label (they are never resent)."""
        events, still = [], []
        for label in self.pending_labels:
            try:
                found = self.venue.get_order(label=label)
            except VenueError as exc:
                still.append(label)
                events.append(("warning", "order_lookup_failed", f"{label}: {exc}"))
                continue
            if found is None:
                events.append(("info", "order_never_placed", f"{label}: the venue has no such order"))
            else:
                events.append(
                    (
                        "info",
                        "order_found_late",
                        f"{label}: {found.order_id} {found.status}, "
                        f"filled {found.filled_amount:g} at {found.average_price}",
                    )
                )
        self.pending_labels = still
        return events

    def _with_retries(self, operation: Callable[[], Any], events: list[tuple[str, str, str]]) -> Any:
        policy = BackoffPolicy(
            attempts=self.config.run.retry_attempts,
            base_delay_s=self.config.run.retry_base_delay_s,
            max_delay_s=max(self.config.run.retry_max_delay_s, self.config.run.retry_base_delay_s),
        )

        def record(attempt: int, error: TemporaryVenueError, delay: float) -> None:
            events.append(
                ("warning", "venue_retry", f"attempt {attempt} failed ({error}); retrying in {delay:.2f} s")
            )
            self.log("warning", f"venue: {error}; retry {attempt} in {delay:.2f} s")

        return call_with_retries(
            operation, policy=policy, sleep=self.sleep, rng=random.Random(self.run_id), on_retry=record
        )

    # ----------------------------------------------------------------- the schedule
    def run(self, *, cycles: int, scheduler: schedule.Scheduler, should_stop: Callable[[], bool]) -> str:
        """Run cycles on the scheduler until ``cycles`` are done (0: forever) or a stop is asked for."""
        scheduler.clear()
        interval = max(self.config.run.interval_s, 0.001)
        scheduler.every(interval).seconds.do(self.cycle)  # type: ignore[arg-type]  # schedule takes float seconds
        self.cycle()  # the first cycle at once
        while not (cycles and self.cycles_done >= cycles):
            if should_stop():
                return "stop requested"
            if scheduler.idle_seconds is not None and scheduler.idle_seconds > 0:
                self.sleep(min(scheduler.idle_seconds, 0.2))
            scheduler.run_pending()
        return f"{self.cycles_done} cycles done"

    # ----------------------------------------------------------------- helpers
    def _stop(self, exc: Exception) -> ControllerStopped:
        message = f"stopped: {exc}"
        self._event("error", "fatal", message)
        self.log("error", message)
        return ControllerStopped(str(exc))

    def _event(self, level: str, kind: str, message: str) -> None:
        self.journal.event(
            run_id=self.run_id or None, ts=self.clock(), level=level, kind=kind, message=message
        )

    def _event_rows(self, events: list[tuple[str, str, str]], now: datetime) -> list[dict[str, Any]]:
        return [
            {"run_id": self.run_id, "ts": now, "level": lv, "kind": k, "message": m} for lv, k, m in events
        ]


def _cycle_record(
    run_id: int,
    n: int,
    now: datetime,
    snapshot: AccountSnapshot,
    report: RiskReport,
    decision: Decision,
    execution: ExecutionReport,
    latency_ms: float,
) -> CycleRecord:
    worst = report.worst_scenario
    row = {
        "run_id": run_id,
        "n": n,
        "ts": now,
        "venue_time": snapshot.server_time,
        "state": decision.state.value,
        "action": decision.action.value,
        "reason": decision.reason,
        "equity_usd": report.equity_usd,
        "equity_coin": report.equity_coin,
        "index_price": report.index_price,
        "sigma_hat": report.sigma_hat,
        "sigma_source": report.sigma_source,
        "delta_coin": report.delta_coin,
        "delta_usd": report.delta_usd,
        "dollar_gamma_usd": report.dollar_gamma_usd,
        "vega_usd": report.vega_usd,
        "theta_usd": report.theta_usd,
        "leverage": report.leverage,
        "signed_leverage": report.signed_leverage,
        "leverage_iv": report.leverage_iv,
        "leverage_stress": report.leverage_stress,
        "gross_leverage": report.gross_leverage,
        "target_leverage": decision.target_leverage,
        "band_low": decision.band_low,
        "band_high": decision.band_high,
        "margin_ratio": report.margin_ratio if math.isfinite(report.margin_ratio) else None,
        "worst_scenario_loss_usd": report.worst_loss_usd,
        "worst_scenario": None if worst is None else worst.scenario.label,
        "liquidation_move": report.liquidation_move,
        "latency_ms": latency_ms,
        "rest_calls": snapshot.rest_calls,
        "advice": [a.text for a in decision.advice],
    }
    held = {p.name: p for p in snapshot.positions}
    positions = [
        {
            "instrument": r.name,
            "size": r.size,
            "mark_price": held[r.name].mark_price if r.name in held else None,
            "mark_iv": held[r.name].mark_iv if r.name in held else None,
            "delta": r.delta,
            "gamma": r.gamma,
            "vega": r.vega_usd,
            "theta": r.theta_usd,
            "dollar_gamma_usd": r.dollar_gamma_usd,
            "exchange_delta": held[r.name].exchange_greeks.delta if r.name in held else None,
        }
        for r in report.book.positions
    ]
    orders = []
    for outcome in execution.outcomes:
        p, s = outcome.planned, outcome.state
        orders.append(
            {
                "run_id": run_id,
                "label": outcome.label,
                "instrument": p.instrument,
                "side": p.side.value,
                "amount": p.amount,
                "type": "market",
                "reduce_only": int(p.reduce_only),
                "status": outcome.status,
                "exchange_order_id": None if s is None else s.order_id,
                "filled_amount": None if s is None else s.filled_amount,
                "avg_price": None if s is None else s.average_price,
                "fee_coin": None if s is None else s.fee_coin,
                "error": outcome.error,
                "ts": now,
                "request": {
                    "instrument": p.instrument,
                    "side": p.side.value,
                    "amount": p.amount,
                    "reduce_only": p.reduce_only,
                    "notional_usd": p.notional_usd,
                    "delta_usd_change": p.delta_usd_change,
                },
            }
        )
    return CycleRecord(row, positions=positions, orders=orders)


def _summary(n: int, report: RiskReport, decision: Decision, execution: ExecutionReport) -> str:
    orders = (
        ", ".join(
            f"{o.planned.side.value} {o.planned.amount:g} {o.planned.instrument} [{o.status}]"
            for o in execution.outcomes
        )
        or "no order"
    )
    band = "" if decision.band_low is None else f" band [{decision.band_low:+.2f}, {decision.band_high:+.2f}]"
    return (
        f"cycle {n}: {decision.action.value} L {report.signed_leverage:+.2f}{band} σ̂ "
        f"{(report.sigma_hat or float('nan')):.1%} equity {report.equity_usd:,.0f} USD; {orders}; "
        f"{decision.reason}"
    )


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
        if value == 0:
            return out
