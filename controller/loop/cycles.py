"""What a cycle of the loop hands around: the venue it may read, what it observed, a portfolio's
share for one currency, its result, and the halt that stops the loop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from controller.execution import ExecutionReport
from controller.risk import Decision, RiskReport, RiskState
from controller.venues import AccountSnapshot, InstrumentSpec, OrderReport, TradeReport


class ReadVenue(Protocol):
    """What the loop may ask of any venue; sending is only through an executor."""

    name: str

    def load_instruments(self) -> Mapping[str, InstrumentSpec]: ...

    def snapshot(self) -> AccountSnapshot: ...

    def get_order(self, *, order_id: str | None = None, label: str | None = None) -> OrderReport | None: ...

    def trades_by_label(self, label: str, instrument: str) -> list[TradeReport]: ...

    def server_time(self) -> datetime: ...

    def open_orders(self) -> list[OrderReport]: ...


class ControllerHalted(Exception):
    """Trading stopped for a reason repetition cannot fix: a person must act (bad credentials …)."""


class Observed(NamedTuple):
    snapshot: AccountSnapshot
    report: RiskReport
    risk_state: RiskState


@dataclass(frozen=True)
class PortfolioShare:
    """What a portfolio of several currencies tells one currency's cycle: its target leverage (of its
    own equity) and the portfolio's figures, recorded on its row."""

    target_leverage: float | None
    row: Mapping[str, Any]
    reducing: tuple[str, ...] = ()  # the whole book's guards breached: this currency only reduces


@dataclass
class CycleResult:
    n: int
    decision: Decision | None
    report: RiskReport | None
    snapshot: AccountSnapshot | None
    execution: ExecutionReport | None
    error: str | None
    cycle_id: int
