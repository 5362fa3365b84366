"""What one cycle leaves behind: its row in the decision log, its line in the text log, and the state
it carries to the next (saved in the row, so that a restart resumes it instead of starting cold)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from controller.execution import ExecutionReport
from controller.journal import CycleRecord, Journal
from controller.orders import TrackedOrder
from controller.risk import Decision, PolicyState, RiskReport, RiskState, VolState
from controller.risk.realised import VarianceEwma
from controller.risk.sigma import SigmaState
from controller.risk.var import DailyCloses, record_close
from controller.venues import AccountSnapshot


def cycle_record(
    run_id: int,
    n: int,
    now: datetime,
    snapshot: AccountSnapshot,
    report: RiskReport,
    decision: Decision,
    execution: ExecutionReport,
    started: float,
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
        "currency": report.currency,
        "sigma_implied": report.sigma.implied,
        "sigma_realised": report.sigma.realised,
        "vrp_ratio": report.sigma.vrp_ratio,
        "sigma_implied_vrp": report.sigma.implied_vrp,
        "sigma_blend": report.sigma.blend,
        "var_usd": None if report.var is None else report.var.var_usd,
        "es_usd": None if report.var is None else report.var.es_usd,
        "var_dgv_usd": None if report.var is None else report.var.var_dgv_usd,
        "es_dgv_usd": None if report.var is None else report.var.es_dgv_usd,
        "var_worst_days": None if report.var is None else list(report.var.worst_days),
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
        "latency_ms": (time.perf_counter() - started) * 1e3,
        "rest_calls": snapshot.rest_calls,
        "advice": [a.text for a in decision.advice],
        **single_currency_portfolio(report),
    }
    held = {p.name: p for p in snapshot.positions}
    positions = [
        {
            "instrument": r.name,
            "currency": report.currency,
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
    return CycleRecord(
        row,
        positions=positions,
        orders=list(execution.unsent),
        sent=[o.row_id for o in execution.orders if o.row_id is not None],
    )


def single_currency_portfolio(report: RiskReport) -> dict[str, Any]:
    """The portfolio's figures of a book in one currency (a portfolio of several overwrites them):
    σ_book = |Δ_usd|·σ̂, and its leverages are the currency's own."""
    return {
        "book_vol_usd": None if report.sigma_hat is None else abs(report.delta_usd) * report.sigma_hat,
        "correlation": {},
        "portfolio_equity_usd": report.equity_usd,
        "portfolio_leverage": report.leverage,
        "risk_leverage": report.leverage_iv,
    }


def cycle_summary(n: int, report: RiskReport, decision: Decision, execution: ExecutionReport) -> str:
    orders = (
        ", ".join(
            f"{o.side.value} {o.amount:g} {o.instrument} [{o.state.value}]" for o in execution.all_orders
        )
        or "no order"
    )
    band = "" if decision.band_low is None else f" band [{decision.band_low:+.2f}, {decision.band_high:+.2f}]"
    return (
        f"cycle {n}: {decision.action.value} L {report.signed_leverage:+.2f}{band} σ̂ "
        f"{(report.sigma_hat or float('nan')):.1%} equity {report.equity_usd:,.0f} USD; {orders}; "
        f"{decision.reason}"
    )


@dataclass(frozen=True)
class Notice:
    """What the loop tells a notifier once a cycle is committed, or when the run ends.

    ``row`` is the cycle's row as written (its columns: state, action, reason, equity, advice …);
    ``events`` the cycle's events; ``orders`` those it sent, as they stand; ``stopped`` is
    ``(status, reason)`` at the run's end.  Nothing in it is a secret: the row and events are
    scrubbed before they are written.
    """

    run_id: int
    mode: str
    venue: str
    row: Mapping[str, Any]
    events: tuple[Mapping[str, Any], ...] = ()
    orders: tuple[TrackedOrder, ...] = ()
    stopped: tuple[str, str] | None = None


def carried_state_json(sigma: SigmaState, policy: PolicyState, *, currency: str) -> str:
    """The state a cycle hands to the next, as JSON (times as ISO 8601)."""
    payload = {
        "currency": currency,
        "sigma": {part: asdict(getattr(sigma, part)) for part in ("implied", "realised", "premium")},
        "policy": asdict(policy),
    }
    return json.dumps(payload, default=lambda value: value.isoformat(), separators=(",", ":"))


def restore_carried_state(text: str) -> tuple[str, SigmaState, PolicyState]:
    """(currency, σ̂'s state, the policy's state) from :func:`carried_state_json`."""
    payload = json.loads(text)
    sigma = payload["sigma"]
    return (
        payload["currency"],
        SigmaState(
            implied=_restore(VolState, sigma["implied"]),
            realised=_restore(VarianceEwma, sigma["realised"]),
            premium=_restore(VarianceEwma, sigma["premium"]),
        ),
        _restore(PolicyState, payload["policy"]),
    )


def _restore(kind: Any, values: dict[str, Any]) -> Any:
    times = {f.name for f in fields(kind) if "datetime" in str(f.type)}
    return kind(
        **{k: datetime.fromisoformat(v) if k in times and v is not None else v for k, v in values.items()}
    )


def resume_saved_state(
    journal: Journal, currency: str, var_window_days: int, *, now: datetime
) -> tuple[RiskState, PolicyState, str] | None:
    """The risk and policy state the log's last cycle in ``currency`` saved, with the daily closes
    rebuilt from its index history, and a line saying what was resumed; None when nothing was saved."""
    saved = journal.last_carried_state(currency)
    if saved is None:
        return None
    cycle_id, text = saved
    _, sigma, policy = restore_carried_state(text)
    since = (sigma.realised.last_at or now) - timedelta(days=var_window_days + 2)
    history = DailyCloses()
    for row in journal.index_history(currency, since=since):
        history = record_close(
            history,
            at=datetime.fromisoformat(row["venue_time"]),
            index=row["index_price"],
            implied=row["sigma_implied"],
            window_days=var_window_days,
        )
    latch = f"; the drawdown halt stays: {policy.halted_reason}" if policy.halted_reason else ""
    message = (
        f"resumed the state of cycle {cycle_id}: σ̂'s history, {len(history.days)} daily closes, "
        f"peak equity {policy.peak_equity_usd or 0:,.0f} USD{latch}"
    )
    return RiskState(sigma, history), policy, message
