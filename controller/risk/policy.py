"""The volatility-scaled leverage policy: from a risk report to a decision (pure, state explicit).

Target (DESIGN §3): ``L* = clamp(L_base · σ_ref / σ̂, L_min, L_max)``, signed by the configured
direction (long: +L*, short: −L*).  The controller trades only when the signed leverage leaves
the no-trade band ``[L*(1−b), L*(1+b)]``, with one market order on the hedge perpetual that brings
it to the band's edge or to L* (configurable), in the venue's units (USD for an inverse perpetual)
rounded to the lot, skipped below a minimum notional, capped by a maximum notional per cycle and
by a hard leverage cap that no decision may exceed.  Neutral mode holds ``Δ_usd`` inside
``[−band_usd, +band_usd]`` instead.

Guards, each with its reason, in this order:

1. kill switch (the loop passes whether the file exists) → HALT while it is there;
2. an earlier drawdown halt (latched for the run) → HALT;
3. drawdown from peak equity beyond the limit → HALT, latched;
4. stale data, an implausible index jump, σ̂ unavailable, exchange/model greeks divergence, or an
   order on the hedge instrument still in flight (its outcome unknown, or resting) → HOLD this cycle
   (no trading on data that cannot be trusted, and never a second hedge beside an unresolved one);
5. margin ratio above the limit → REDUCING: only orders that reduce |L| go out (action REDUCE);
6. a cooldown after each rebalance (a hard-cap breach overrides it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from controller.risk.advice import Advice, AdviceLimits, options_advice, var_advice
from controller.risk.assess import RiskReport
from controller.venues import AccountSnapshot, InstrumentSpec, Side


class Mode(StrEnum):
    LONG = "long"
    SHORT = "short"
    NEUTRAL = "neutral"


class RebalanceTo(StrEnum):
    EDGE = "edge"
    TARGET = "target"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Action(StrEnum):
    HOLD = "HOLD"
    REBALANCE = "REBALANCE"
    REDUCE = "REDUCE"
    HALT = "HALT"


@dataclass(frozen=True)
class PolicySettings:
    mode: Mode = Mode.LONG
    base_leverage: float = 1.0  # L_base: leverage held when σ̂ = σ_ref
    min_leverage: float = 0.0
    max_leverage: float = 3.0
    band: float = 0.2  # b: the no-trade band is L*(1 ± b)
    rebalance_to: RebalanceTo = RebalanceTo.EDGE
    neutral_band_usd: float = 10_000.0
    hedge_instrument: str = "BTC-PERPETUAL"
    min_order_usd: float = 100.0
    max_order_usd: float = 1_000_000.0  # per cycle
    hard_cap: float = 5.0  # |L| no decision may exceed
    cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            (0 <= self.min_leverage <= self.max_leverage, "need 0 <= min_leverage <= max_leverage"),
            (self.base_leverage >= 0, "base_leverage must be >= 0"),
            (self.max_leverage <= self.hard_cap, "max_leverage must not exceed hard_cap"),
            (0 < self.band < 1, "band must be in (0, 1)"),
            (self.neutral_band_usd > 0, "neutral_band_usd must be positive"),
            (0 <= self.min_order_usd <= self.max_order_usd, "need 0 <= min_order_usd <= max_order_usd"),
            (self.cooldown_s >= 0, "cooldown_s must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class GuardSettings:
    max_data_age_s: float = 120.0
    max_price_jump: float = 0.15  # |ln(S/S_prev)| between cycles
    max_margin_ratio: float = 0.5
    max_drawdown: float = 0.35  # from peak equity (USD)
    hold_on_greeks_divergence: bool = True
    max_clock_skew_s: float = 5.0  # local vs exchange clock, warned about beyond this
    max_future_s: float = 2.0  # a figure stamped later than the exchange's clock by more is not trusted
    max_var_fraction: float | None = None  # VaR above this share of equity: REDUCING


@dataclass(frozen=True)
class PlannedOrder:
    """A hedge order as the policy sizes it; execution adds the label and sends it (or not)."""

    instrument: str
    side: Side
    amount: float  # venue units
    reduce_only: bool
    notional_usd: float
    delta_usd_change: float


@dataclass(frozen=True)
class Decision:
    action: Action
    state: TradingState
    orders: tuple[PlannedOrder, ...]
    reasons: tuple[str, ...]
    target_leverage: float | None  # signed L* (neutral: 0)
    band_low: float | None  # signed leverage (neutral: USD delta)
    band_high: float | None
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    advice: tuple[Advice, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class InFlightOrder:
    """One of our orders whose outcome is not settled (what the policy needs to know of it)."""

    label: str
    instrument: str
    state: str  # sending, unknown or open
    since: datetime
    description: str  # one line for the reason


@dataclass(frozen=True)
class PolicyState:
    peak_equity_usd: float | None = None
    halted_reason: str | None = None
    last_rebalance_at: datetime | None = None
    last_index: float | None = None


def target_leverage(*, sigma_hat: float, reference_vol: float, settings: PolicySettings) -> float:
    """Unsigned ``L* = clamp(L_base · σ_ref / σ̂, L_min, L_max)``."""
    raw = settings.base_leverage * reference_vol / sigma_hat
    return min(settings.max_leverage, max(settings.min_leverage, raw))


def decide(
    report: RiskReport,
    snapshot: AccountSnapshot,
    hedge: InstrumentSpec,
    settings: PolicySettings,
    guards: GuardSettings,
    limits: AdviceLimits,
    state: PolicyState,
    *,
    now: datetime,
    kill_switch: bool = False,
    in_flight: tuple[InFlightOrder, ...] = (),
    portfolio_target: float | None = None,
    portfolio_reducing: tuple[str, ...] = (),
) -> tuple[Decision, PolicyState]:
    """The decision for this cycle, and the policy state to carry to the next.

    ``portfolio_target`` (unsigned leverage of this currency's own equity) replaces ``L*`` when a
    portfolio of several currencies sets each one's exposure (:mod:`controller.portfolio`); it is
    clamped to ``[min_leverage, max_leverage]`` like ``L*``; ``portfolio_reducing`` are that
    portfolio's guard breaches, which put this currency in REDUCING like its own.
    """
    peak = max(state.peak_equity_usd or 0.0, report.equity_usd)
    fresh = report.data_age_s <= guards.max_data_age_s
    new_state = PolicyState(  # built directly: dataclasses.replace costs more than the policy itself
        peak_equity_usd=peak,
        halted_reason=state.halted_reason,
        last_rebalance_at=state.last_rebalance_at,
        last_index=report.index_price if fresh else state.last_index,
    )
    target, low, high = _band(report, settings, portfolio_target)
    why_reducing = _reducing_reasons(report, guards) + list(portfolio_reducing)
    reducing = bool(why_reducing)
    advice = options_advice(report, snapshot, limits)
    if report.var is not None and guards.max_var_fraction is not None:
        advice += var_advice(report, limit_usd=guards.max_var_fraction * report.equity_usd)
    blank = Decision(
        action=Action.HOLD,
        state=TradingState.REDUCING if reducing else TradingState.ACTIVE,
        orders=(),
        reasons=(),
        target_leverage=target,
        band_low=low,
        band_high=high,
        metrics=_metrics(report, target, low, high),
        advice=advice,
    )
    halted = _halt_reason(report, state, guards, peak, kill_switch)
    if halted is not None:
        reason, latch = halted
        halted_state = replace(new_state, halted_reason=reason) if latch else new_state
        return replace(blank, action=Action.HALT, state=TradingState.HALTED, reasons=(reason,)), halted_state
    problems = _data_problems(report, state, guards) + _in_flight_holds(in_flight, settings)
    if problems:
        return replace(blank, reasons=tuple(problems)), new_state
    assert target is not None and low is not None and high is not None  # σ̂ is known past the data guards
    decision = _rebalance(report, snapshot, hedge, settings, state, blank, now=now, reducing=why_reducing)
    if decision.orders:
        new_state = replace(new_state, last_rebalance_at=now)
    return decision, new_state


def _halt_reason(
    report: RiskReport, state: PolicyState, guards: GuardSettings, peak: float, kill_switch: bool
) -> tuple[str, bool] | None:
    """(reason, latched) when trading must stop; the drawdown halt latches for the run."""
    if kill_switch:
        return "kill switch file present", False
    if state.halted_reason:
        return f"halted: {state.halted_reason}", False
    drawdown = 1.0 - report.equity_usd / peak
    if drawdown > guards.max_drawdown:
        return (
            f"drawdown {drawdown:.1%} from peak equity {peak:,.0f} USD "
            f"beyond the limit {guards.max_drawdown:.0%}",
            True,
        )
    return None


def _rebalance(
    report: RiskReport,
    snapshot: AccountSnapshot,
    hedge: InstrumentSpec,
    settings: PolicySettings,
    state: PolicyState,
    blank: Decision,
    *,
    now: datetime,
    reducing: list[str],
) -> Decision:
    target, low, high = blank.target_leverage, blank.band_low, blank.band_high
    assert target is not None and low is not None and high is not None
    reasons: list[str] = [f"{why}: only risk-reducing orders" for why in reducing]
    position = report.delta_usd if settings.mode is Mode.NEUTRAL else report.signed_leverage
    over_cap = report.leverage > settings.hard_cap
    if low <= position <= high and not over_cap:
        return replace(blank, reasons=(*reasons, _inside(report, settings, low, high)))
    if state.last_rebalance_at is not None and not over_cap:
        waited = (now - state.last_rebalance_at).total_seconds()
        if waited < settings.cooldown_s:
            wait = f"outside the band but in cooldown ({waited:.0f} s of {settings.cooldown_s:.0f} s)"
            return replace(blank, reasons=(*reasons, wait))
    goal = _goal(position, target, low, high, settings)
    goal_delta_usd = goal if settings.mode is Mode.NEUTRAL else goal * report.equity_usd
    order, notes = size_hedge(
        report=report, snapshot=snapshot, hedge=hedge, settings=settings, goal_delta_usd=goal_delta_usd
    )
    reasons += [_outside(report, settings, position, low, high, over_cap), *notes]
    if order is None:
        return replace(blank, reasons=tuple(reasons))
    if reducing and not abs(report.delta_usd + order.delta_usd_change) < abs(report.delta_usd):
        return replace(blank, reasons=(*reasons, "the hedge would add exposure: skipped while reducing"))
    action = Action.REDUCE if reducing or over_cap else Action.REBALANCE
    return replace(blank, action=action, orders=(order,), reasons=tuple(reasons))


def size_hedge(
    *,
    report: RiskReport,
    snapshot: AccountSnapshot,
    hedge: InstrumentSpec,
    settings: PolicySettings,
    goal_delta_usd: float,
) -> tuple[PlannedOrder | None, list[str]]:
    """One order on the hedge instrument that moves ``Δ_usd`` to ``goal_delta_usd`` as lots allow."""
    notes: list[str] = []
    index, equity, delta = report.index_price, report.equity_usd, report.delta_usd
    usd_per_unit = index / snapshot.hedge.mark_price if hedge.inverse else index  # Δ_usd per unit of amount
    usd_per_amount_notional = 1.0 if hedge.inverse else index  # notional USD per unit of amount
    lot = hedge.min_amount
    amount = round((goal_delta_usd - delta) / usd_per_unit / lot) * lot
    max_units = math.floor(settings.max_order_usd / usd_per_amount_notional / lot) * lot
    if abs(amount) > max_units:
        amount = math.copysign(max_units, amount)
        notes.append(f"order capped at the maximum of {settings.max_order_usd:,.0f} USD per cycle")
    cap_usd = settings.hard_cap * equity
    new_delta = delta + amount * usd_per_unit
    if abs(new_delta) > cap_usd and abs(new_delta) > abs(delta):
        bound = math.copysign(cap_usd, new_delta) - delta
        amount = math.copysign(math.floor(abs(bound / usd_per_unit) / lot + 1e-9) * lot, amount)
        notes.append(f"order limited by the hard leverage cap {settings.hard_cap:g}x")
    notional = abs(amount) * usd_per_amount_notional
    if amount == 0 or notional < settings.min_order_usd:
        notes.append(
            f"hedge of {notional:,.0f} USD below the minimum order of "
            f"{settings.min_order_usd:,.0f} USD: no trade"
        )
        return None, notes
    held = next((p.size for p in snapshot.positions if p.name == hedge.name), 0.0)
    reduce_only = held != 0 and (held > 0) != (amount > 0) and abs(amount) <= abs(held)
    return (
        PlannedOrder(
            instrument=hedge.name,
            side=Side.BUY if amount > 0 else Side.SELL,
            amount=abs(amount),
            reduce_only=reduce_only,
            notional_usd=notional,
            delta_usd_change=amount * usd_per_unit,
        ),
        notes,
    )


def _band(
    report: RiskReport, settings: PolicySettings, portfolio_target: float | None = None
) -> tuple[float | None, float | None, float | None]:
    if settings.mode is Mode.NEUTRAL:
        return 0.0, -settings.neutral_band_usd, settings.neutral_band_usd
    if report.sigma_hat is None:
        return None, None, None
    if portfolio_target is None:
        target = target_leverage(
            sigma_hat=report.sigma_hat, reference_vol=report.reference_vol, settings=settings
        )
    else:
        target = min(settings.max_leverage, max(settings.min_leverage, abs(portfolio_target)))
    # the band never reaches past the hard cap: L*(1 + b) may exceed it when L* is near L_max
    lo, hi = target * (1 - settings.band), min(target * (1 + settings.band), settings.hard_cap)
    if settings.mode is Mode.SHORT:
        return -target, -hi, -lo
    return target, lo, hi


def _goal(position: float, target: float, low: float, high: float, settings: PolicySettings) -> float:
    if settings.rebalance_to is RebalanceTo.TARGET:
        goal = target
    else:
        goal = low if position < low else high if position > high else position
    if settings.mode is not Mode.NEUTRAL and abs(goal) > settings.hard_cap:
        goal = math.copysign(settings.hard_cap, goal)
    return goal


def _data_problems(report: RiskReport, state: PolicyState, guards: GuardSettings) -> list[str]:
    problems = list(report.problems)
    if report.data_ahead_s > guards.max_future_s:
        problems.append(
            f"data from the future: {report.newest_figure} is stamped {report.data_ahead_s:.1f} s after "
            f"the exchange's clock (limit {guards.max_future_s:g} s)"
        )
    if report.data_age_s > guards.max_data_age_s:
        problems.append(
            f"stale data: {report.oldest_figure} is {report.data_age_s:.0f} s old "
            f"(limit {guards.max_data_age_s:.0f} s)"
        )
    if state.last_index is not None:
        jump = abs(math.log(report.index_price / state.last_index))
        if jump > guards.max_price_jump:
            problems.append(
                f"implausible index jump {report.index_price / state.last_index - 1:+.1%} since the last "
                f"cycle (limit {guards.max_price_jump:.0%}): holding until it is confirmed"
            )
    if report.greeks_divergence and guards.hold_on_greeks_divergence:
        problems.append(
            "exchange and model greeks disagree: " + "; ".join(c.describe() for c in report.greeks_divergence)
        )
    return problems


def _reducing_reasons(report: RiskReport, guards: GuardSettings) -> list[str]:
    """Why the account may only reduce risk (empty: it may trade either way)."""
    reasons = []
    if report.margin_ratio > guards.max_margin_ratio:
        reasons.append(f"margin ratio {report.margin_ratio:.1%} above {guards.max_margin_ratio:.0%}")
    if report.var is not None and guards.max_var_fraction is not None:
        share = report.var.var_usd / report.equity_usd
        if share > guards.max_var_fraction:
            reasons.append(
                f"1-day {report.var.level:.0%} VaR {report.var.var_usd:,.0f} USD is {share:.1%} of equity, "
                f"above {guards.max_var_fraction:.0%}"
            )
    return reasons


def _in_flight_holds(in_flight: tuple[InFlightOrder, ...], settings: PolicySettings) -> list[str]:
    return [
        f"order {o.description} is in flight: no new hedge until it is resolved"
        for o in in_flight
        if o.instrument == settings.hedge_instrument
    ]


def _inside(report: RiskReport, settings: PolicySettings, low: float, high: float) -> str:
    if settings.mode is Mode.NEUTRAL:
        return f"delta {report.delta_usd:+,.0f} USD inside the band [{low:+,.0f}, {high:+,.0f}]"
    return f"leverage {report.signed_leverage:+.2f}x inside the band [{low:+.2f}, {high:+.2f}]"


def _outside(
    report: RiskReport, settings: PolicySettings, position: float, low: float, high: float, over_cap: bool
) -> str:
    if over_cap:
        return f"leverage {report.leverage:.2f}x above the hard cap {settings.hard_cap:g}x"
    if settings.mode is Mode.NEUTRAL:
        return f"delta {position:+,.0f} USD outside the band [{low:+,.0f}, {high:+,.0f}]"
    return f"leverage {position:+.2f}x outside the band [{low:+.2f}, {high:+.2f}] (σ̂ {report.sigma_hat:.1%})"


def _metrics(
    report: RiskReport, target: float | None, low: float | None, high: float | None
) -> dict[str, float | None]:
    return {
        "equity_usd": report.equity_usd,
        "index_price": report.index_price,
        "sigma_hat": report.sigma_hat,
        "delta_usd": report.delta_usd,
        "leverage": report.leverage,
        "signed_leverage": report.signed_leverage,
        "leverage_iv": report.leverage_iv,
        "leverage_stress": report.leverage_stress,
        "target_leverage": target,
        "band_low": low,
        "band_high": high,
        "margin_ratio": report.margin_ratio,
        "worst_scenario_loss_usd": report.worst_loss_usd,
        "liquidation_move": report.liquidation_move,
        "dollar_gamma_usd": report.dollar_gamma_usd,
        "vega_usd": report.vega_usd,
        "theta_usd": report.theta_usd,
    }
