"""The decision log's schema: each version's migration, applied in order to upgrade a log in place."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

SCHEMA_VERSION = 7


def _v1(db: sqlite_utils.Database) -> None:
    db.table("runs").create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "mode": str,
            "venue": str,
            "config_source": str,
            "config_json": str,
            "config_sha256": str,
            "version": str,
            "status": str,
            "exit_reason": str,
        },
        pk="id",
    )
    db.table("cycles").create(
        {
            "id": int,
            "run_id": int,
            "n": int,
            "ts": str,
            "venue_time": str,
            "state": str,
            "action": str,
            "reason": str,
            "equity_usd": float,
            "equity_coin": float,
            "index_price": float,
            "sigma_hat": float,
            "sigma_source": str,
            "delta_coin": float,
            "delta_usd": float,
            "dollar_gamma_usd": float,
            "vega_usd": float,
            "theta_usd": float,
            "leverage": float,
            "signed_leverage": float,
            "leverage_iv": float,
            "leverage_stress": float,
            "gross_leverage": float,
            "target_leverage": float,
            "band_low": float,
            "band_high": float,
            "margin_ratio": float,
            "worst_scenario_loss_usd": float,
            "worst_scenario": str,
            "liquidation_move": float,
            "latency_ms": float,
            "rest_calls": int,
            "advice": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("positions").create(
        {
            "id": int,
            "cycle_id": int,
            "instrument": str,
            "size": float,
            "mark_price": float,
            "mark_iv": float,
            "delta": float,
            "gamma": float,
            "vega": float,
            "theta": float,
            "dollar_gamma_usd": float,
            "exchange_delta": float,
        },
        pk="id",
        foreign_keys=[("cycle_id", "cycles", "id")],
    )
    db.table("orders").create(
        {
            "id": int,
            "run_id": int,
            "cycle_id": int,
            "label": str,
            "instrument": str,
            "side": str,
            "amount": float,
            "type": str,
            "reduce_only": int,
            "status": str,
            "exchange_order_id": str,
            "filled_amount": float,
            "avg_price": float,
            "fee_coin": float,
            "error": str,
            "request": str,
            "ts": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id"), ("cycle_id", "cycles", "id")],
    )
    db.table("events").create(
        {"id": int, "run_id": int, "cycle_id": int, "ts": str, "level": str, "kind": str, "message": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )


def _v2(db: sqlite_utils.Database) -> None:
    db.table("cycles").create_index(["run_id", "n"], if_not_exists=True)
    db.table("orders").create_index(["label"], if_not_exists=True)
    db.table("events").create_index(["run_id", "kind"], if_not_exists=True)


def _v3(db: sqlite_utils.Database) -> None:
    db.table("replays").create(
        {
            "id": int,
            "replay_key": str,  # one `levctl replay` invocation: its runs are compared side by side
            "run_id": int,
            "role": str,  # controller | fixed-leverage | buy-and-hold
            "book": str,
            "data_source": str,
            "data_sha256": str,
            "rows": int,
            "first_ts": str,
            "last_ts": str,
            "gaps": str,  # JSON list of [from, to]
            "target_vol": float,
            "ledger": str,  # JSON: the simulator's fees, funding, realised P&L … at the end
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("replays").create_index(["replay_key"], if_not_exists=True)


def _v4(db: sqlite_utils.Database) -> None:
    """Write-ahead orders: their state machine, its transitions, the exchange clock, the run's process."""
    orders = db.table("orders")
    for column, kind in (
        ("cycle_n", int),
        ("valid_until", str),
        ("position_before", float),
        ("notional_usd", float),
        ("lookups", int),
        ("resolved_by", str),
        ("updated_at", str),
    ):
        orders.add_column(column, kind)
    # rows of levctl < 0.2 were never followed after their cycle: nothing is in flight among them
    db.execute(
        "update orders set status = 'unresolved', resolved_by = 'schema v4' "
        "where status in ('unknown', 'open', 'error')"
    )
    orders.create_index(["status"], if_not_exists=True)
    db.table("order_events").create(
        {
            "id": int,
            "order_id": int,
            "run_id": int,
            "label": str,
            "ts": str,
            "from_status": str,
            "to_status": str,
            "detail": str,
        },
        pk="id",
        foreign_keys=[("order_id", "orders", "id")],
    )
    db.table("order_events").create_index(["order_id"], if_not_exists=True)
    db.table("runs").add_column("pid", int)
    db.table("runs").add_column("host", str)
    db.table("cycles").add_column("skew_s", float)
    db.table("cycles").add_column("in_flight", int)


def _v5(db: sqlite_utils.Database) -> None:
    """σ̂'s components, VaR and ES, the account's currency, and the state the controller carries."""
    cycles = db.table("cycles")
    for column, kind in (
        ("currency", str),
        ("sigma_implied", float),
        ("sigma_realised", float),
        ("vrp_ratio", float),
        ("sigma_implied_vrp", float),
        ("sigma_blend", float),
        ("var_usd", float),
        ("es_usd", float),
        ("var_dgv_usd", float),
        ("es_dgv_usd", float),
        ("var_worst_days", str),  # JSON: the days of the worst historical scenarios
        ("carried_state", str),  # JSON: σ̂'s EWMAs, peak equity, the drawdown latch … (a restart resumes it)
    ):
        cycles.add_column(column, kind)
    cycles.create_index(["currency", "venue_time"], if_not_exists=True)


def _v6(db: sqlite_utils.Database) -> None:
    """The portfolio of several currencies: each cycle's book volatility and correlation, and the
    currency of every position and order (older rows: from the instrument's name)."""
    cycles = db.table("cycles")
    for column, kind in (
        ("book_vol_usd", float),  # σ_book = sqrt(Δᵀ Σ Δ), annualised USD, the whole book
        ("correlation", str),  # JSON {"BTC/ETH": ρ} of the index returns' EWMA
        ("portfolio_equity_usd", float),  # Σ of every currency's equity
        ("portfolio_leverage", float),  # Σ|Δ_usd| / E
        ("risk_leverage", float),  # σ_book / (E · σ_ref)
        ("portfolio", str),  # JSON: the portfolio target and the named stresses, where computed
        ("portfolio_var_usd", float),  # the whole book's 1-day VaR on joint historical days
        ("portfolio_es_usd", float),
        ("cascade_loss_usd", float),  # the liquidation cascade's loss, and the common move to it
        ("cascade_distance", float),
    ):
        cycles.add_column(column, kind)
    for table in ("positions", "orders"):
        db.table(table).add_column("currency", str)
        db.execute(f"update {table} set currency = substr(instrument, 1, instr(instrument, '-') - 1)")


def _v7(db: sqlite_utils.Database) -> None:
    """The whole book's worst scenario on the joint grid (every currency's i-th scenario at once)."""
    db.table("cycles").add_column("portfolio_worst_scenario_usd", float)  # weighted, ≤ 0, USD


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {
    1: _v1,
    2: _v2,
    3: _v3,
    4: _v4,
    5: _v5,
    6: _v6,
    7: _v7,
}
