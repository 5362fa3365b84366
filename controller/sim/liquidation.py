"""Deribit's incremental liquidation, and what happens when an account goes bust.

"As soon as an account does not have enough equity to maintain its positions … a small part of
the position will be closed in the market at market prices … As soon as maintenance margin is again
lower than equity, liquidation will stop.  The system would first liquidate future positions and
after that liquidate any option positions" (https://www.deribit.com/docs/auto-liquidation/).
"All liquidation orders are charged an extra fee on top of the default transaction fees", which
goes to the insurance fund; the fund "covers the negative equity of bankrupt traders … the
insurance fund will be used to set it back to zero"
(https://support.deribit.com/hc/en-us/articles/25944777576477-Insurance-Fund).

Here, while equity is below the maintenance margin: open orders are cancelled; futures (largest
notional first), then options (largest maintenance margin first), are reduced — each by the
fewest lots that restore ``equity ≥ maintenance`` (found by bisection; closing at the mark moves
equity only by the fees), or wholly when that is not enough.  Fills are at the mark, as taker, with
the liquidation fee on top (:class:`~controller.sim.margin.FeeParams`).  If equity is then at or
below zero the account is bankrupt: the insurance fund covers the shortfall (the balance is set back
to zero and the amount booked), and a ``bankrupt`` event is recorded with
:attr:`~controller.sim.engine.SimExchange.bankrupt_at` set — a run on this account cannot go on.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from controller.sim.margin import future_fee, option_fee
from controller.sim.model import SimEvent

if TYPE_CHECKING:
    from controller.sim.engine import SimExchange


def liquidate_if_needed(engine: SimExchange) -> None:
    if not any(b.size != 0.0 for b in engine.positions.values()):
        return
    account = engine.account()
    if account.maintenance_margin <= 0 or account.equity >= account.maintenance_margin:
        return
    for order in engine.open_orders():
        order.state, order.updated = "cancelled", engine.now
    reduced = []
    for name in _liquidation_order(engine):
        lots = _lots_needed(engine, name)
        if lots == 0:
            continue
        reduced.append(_close(engine, name, lots))
        after = engine.account()
        if after.equity >= after.maintenance_margin:
            break
    after = engine.account()
    engine.events.append(
        SimEvent(
            engine.now,
            "liquidation",
            f"equity {account.equity:.8f} below maintenance {account.maintenance_margin:.8f}: "
            + (", ".join(reduced) or "nothing could be reduced")
            + f"; equity now {after.equity:.8f}, maintenance {after.maintenance_margin:.8f}",
        )
    )
    if after.equity <= 0.0:
        _bankrupt(engine, after.equity)


def _liquidation_order(engine: SimExchange) -> list[str]:
    """Futures by notional (coin), largest first; then options by their own maintenance margin."""
    views = engine.position_views()
    futures = sorted(
        (v for v in views if v.listed.kind != "option"), key=lambda v: -abs(v.book.size) / v.quote.mark_price
    )
    options = sorted((v for v in views if v.listed.kind == "option"), key=lambda v: -v.maintenance_margin)
    return [v.listed.name for v in futures + options]


def _lots_needed(engine: SimExchange, name: str) -> int:
    """The fewest lots of ``name`` whose closing restores equity ≥ maintenance (all if none do;
    0 when closing it would not help at all)."""
    listed = engine.listed[name]
    size = engine.positions[name].size
    lots_held = round(abs(size) / listed.min_amount)
    equity = engine.account().equity

    def restored(lots: int) -> bool:
        amount = lots * listed.min_amount
        remaining = size - math.copysign(amount, size)
        fees = _trading_fee(engine, name, amount) + _liquidation_fee(engine, name, amount)
        return equity - fees >= engine.maintenance_with(name, remaining)

    if lots_held == 0:
        return 0
    if not restored(lots_held):
        current = engine.account().maintenance_margin
        return lots_held if engine.maintenance_with(name, 0.0) < current else 0
    low, high = 0, lots_held  # restored(high) holds; find the smallest such
    while high - low > 1:
        middle = (low + high) // 2
        if restored(middle):
            high = middle
        else:
            low = middle
    return high


def _trading_fee(engine: SimExchange, name: str, amount: float) -> float:
    """The taker fee of closing ``amount`` at the mark, in coin."""
    listed, quote, fees = engine.listed[name], engine.quote(name), engine.config.fees
    if listed.kind == "option":
        return option_fee(amount=amount, price_coin=quote.mark_price, params=fees)
    return future_fee(amount_usd=amount, price=quote.mark_price, rate=listed.taker_fee)


def _liquidation_fee(engine: SimExchange, name: str, amount: float) -> float:
    """The liquidation fee on top, in coin: a share of the underlying amount."""
    listed, fees = engine.listed[name], engine.config.fees
    if listed.kind == "option":
        return fees.option_liquidation * amount
    return fees.liquidation * amount / engine.quote(name).mark_price


def _close(engine: SimExchange, name: str, lots: int) -> str:
    listed, book = engine.listed[name], engine.positions[name]
    amount = lots * listed.min_amount
    direction = "sell" if book.size > 0 else "buy"
    engine.fill_liquidation(name, direction, amount, liquidation_fee=_liquidation_fee(engine, name, amount))
    return f"{direction} {amount:g} {name}"


def _bankrupt(engine: SimExchange, equity: float) -> None:
    shortfall = engine.wallet.cover_shortfall(equity)
    engine.bankrupt_at = engine.bankrupt_at or engine.now
    engine.events.append(
        SimEvent(
            engine.now,
            "bankrupt",
            f"the account is bankrupt: equity {equity:.8f} {engine.config.currency} after liquidation; "
            f"the insurance fund covered {shortfall:.8f} {engine.config.currency}",
        )
    )
