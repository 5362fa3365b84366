"""Risk of an account snapshot (pure: no I/O, the clock is passed in).

Definitions (DESIGN §3):

* equity ``E`` = equity in coin × index (USD);
* book delta in coin = Σ position deltas (coin-settled options premium-adjusted, inverse futures
  ``size_usd / mark``) + the coin collateral; ``Δ_usd`` = that × index;
* effective leverage ``L = |Δ_usd| / E`` (signed leverage ``Δ_usd / E`` keeps the direction);
  gross notional / E beside it, never instead of it;
* ``L_iv = L · σ̂ / σ_ref``; stressed leverage ``L_stress = max(loss(+m), loss(−m)) / (E·m)``,
  ``loss = max(−P&L, 0)``, ``m = k · σ̂ · √h``, by full revaluation — the adverse side only, so it
  equals L for a linear book, exceeds it when short gamma and falls below it when long gamma;
  margin ratio = maintenance margin / equity;
* the scenario grids of :mod:`controller.risk.scenarios`, their worst (weighted) loss, and the price
  move that brings equity down to the maintenance margin.

The implied volatility comes from the first source that has a value, in the configured order:
``chain`` (30-day ATM implied vol interpolated in total variance), ``index`` (the venue's volatility
index, e.g. DVOL), ``constant`` (configured).  σ̂ — implied, realised, implied scaled by the risk
premium, or a blend — is :mod:`controller.risk.sigma`'s; every component is in the report.

VaR and expected shortfall (:mod:`controller.risk.var`): the book revalued under each past day's
index move and implied-vol change, kept in :class:`RiskState` (the daily closes seen so far).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter, itemgetter

from controller.risk.scenarios import Revaluation, ScenarioResult, risk_grid
from controller.risk.sigma import SigmaComponents, SigmaSettings, SigmaState
from controller.risk.sigma import update as update_sigma
from controller.risk.var import DailyCloses, VarFigures, historical_var, linear_var, record_close
from controller.risk.volatility import AtmVolEstimate, atm_vol_30d
from controller.venues import AccountSnapshot
from pricing import BookGreeks, book_greeks

SIGMA_SOURCES = ("chain", "index", "constant")


class AccountStateError(ValueError):
    """The account is in a state no cycle can fix by repetition (equity at or below zero)."""


@dataclass(frozen=True)
class RiskSettings:
    sigma_sources: tuple[str, ...] = ("chain", "index")
    sigma_constant: float | None = None  # decimal, for the "constant" source
    reference_vol: float = 0.60  # σ_ref: the volatility at which leverage is quoted
    target_tenor_days: float = 30.0
    min_expiry_days: float = 1.0
    stress_k: float = 2.0  # m = k · σ̂ · √h
    stress_horizon_days: float = 1.0
    span_price_range: float = 0.25
    span_vol_range: float = 0.25
    span_extreme_cover: float = 0.35
    greeks_abs_tol: float = 0.02  # coin of delta
    greeks_rel_tol: float = 0.05
    rate: float = 0.0
    sigma: SigmaSettings = field(default_factory=SigmaSettings)
    var_level: float = 0.99
    var_window_days: int = 365
    var_min_days: int = 30  # fewer past days than this: no VaR yet

    def __post_init__(self) -> None:
        unknown = [s for s in self.sigma_sources if s not in SIGMA_SOURCES]
        if unknown or not self.sigma_sources:
            raise ValueError(
                f"sigma_sources must be a non-empty list of {SIGMA_SOURCES}, got {self.sigma_sources}"
            )
        if "constant" in self.sigma_sources and not (self.sigma_constant and self.sigma_constant > 0):
            raise ValueError("the 'constant' sigma source needs a positive sigma_constant")
        for name in ("reference_vol", "stress_k", "stress_horizon_days", "target_tenor_days"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if not 0.5 < self.var_level < 1:
            raise ValueError(f"var_level must be in (0.5, 1), got {self.var_level}")


@dataclass(frozen=True)
class RiskState:
    """What the risk engine carries from cycle to cycle: σ̂'s state and the daily closes for VaR."""

    sigma: SigmaState = field(default_factory=SigmaState)
    history: DailyCloses = field(default_factory=DailyCloses)


@dataclass(frozen=True)
class GreeksCheck:
    """A position whose exchange greeks disagree with ours beyond tolerance."""

    name: str
    ours_delta: float
    exchange_delta: float

    def describe(self) -> str:
        return f"{self.name}: exchange delta {self.exchange_delta:+.4f} vs model {self.ours_delta:+.4f}"


@dataclass(frozen=True)
class RiskReport:
    as_of: datetime
    currency: str
    index_price: float
    equity_coin: float
    equity_usd: float
    book: BookGreeks
    delta_coin: float  # collateral included
    delta_usd: float
    dollar_gamma_usd: float
    vega_usd: float
    theta_usd: float
    gross_notional_usd: float
    sigma_hat: float | None
    sigma_raw: float | None  # the implied observation of this cycle, before smoothing
    sigma_source: str | None
    sigma: SigmaComponents
    vol_estimate: AtmVolEstimate | None
    reference_vol: float
    leverage: float
    signed_leverage: float
    leverage_iv: float | None
    leverage_stress: float | None
    stress_move: float | None
    gross_leverage: float
    margin_ratio: float
    scenarios: Sequence[ScenarioResult]
    worst_scenario: ScenarioResult | None
    liquidation_move: float | None
    greeks_divergence: tuple[GreeksCheck, ...]
    data_age_s: float
    oldest_figure: str
    data_ahead_s: float  # how far the newest figure is stamped after the clock it is measured against
    newest_figure: str
    problems: tuple[str, ...] = field(default_factory=tuple)
    worst_contributions: Mapping[str, float] = field(default_factory=dict)  # P&L per position, worst scenario
    var: VarFigures | None = None
    var_contributions: Mapping[str, float] = field(default_factory=dict)  # P&L per position, VaR scenario

    @property
    def worst_loss_usd(self) -> float:
        return 0.0 if self.worst_scenario is None else min(0.0, self.worst_scenario.weighted_pnl_usd)


def assess(
    snapshot: AccountSnapshot, settings: RiskSettings, state: RiskState, *, now: datetime
) -> tuple[RiskReport, RiskState]:
    """The risk report of one snapshot, and the state to carry to the next cycle."""
    as_of = snapshot.server_time
    cur, index = snapshot.currency, snapshot.index_price
    equity_usd = snapshot.equity_coin * index
    if not (equity_usd > 0 and math.isfinite(equity_usd)):
        raise AccountStateError(
            f"account equity is {snapshot.equity_coin:g} {cur}: leverage cannot be measured or controlled "
            "until equity is positive"
        )
    book = book_greeks(
        snapshot.positions,
        as_of=as_of,
        index_prices={cur: index},
        collateral={cur: snapshot.equity_coin},
        rate=settings.rate,
    )
    coin = book.underlyings[cur]
    estimate, raw, source = _sigma(snapshot, settings, as_of)
    sigma, sigma_state = update_sigma(
        state.sigma, implied_raw=raw, implied_source=source, index=index, at=as_of, settings=settings.sigma
    )
    problems = []
    if sigma.value is None:
        problems.append(f"σ̂ unavailable from {', '.join(settings.sigma_sources)}")
    sigma_hat = sigma.value
    history = record_close(
        state.history, at=as_of, index=index, implied=sigma.implied, window_days=settings.var_window_days
    )

    reval = Revaluation(
        snapshot.positions, index=index, equity_coin=snapshot.equity_coin, as_of=as_of, rate=settings.rate
    )
    leverage = abs(coin.delta_usd) / equity_usd
    stress_move = (
        None
        if sigma_hat is None
        else settings.stress_k * sigma_hat * math.sqrt(settings.stress_horizon_days / 365.0)
    )
    grid = risk_grid(
        currency=cur,
        span_price_range=settings.span_price_range,
        span_vol_range=settings.span_vol_range,
        span_extreme_cover=settings.span_extreme_cover,
    )
    figures = reval.figures(
        grid,
        stress_move=stress_move,
        equity_usd=equity_usd,
        maintenance_margin_coin=snapshot.maintenance_margin_coin,
    )
    age, oldest, ahead, newest = _data_age(snapshot, now)
    var, var_contributions = _value_at_risk(reval, book, snapshot, history, settings, coin.delta_usd)
    report = RiskReport(
        as_of=as_of,
        currency=cur,
        index_price=index,
        equity_coin=snapshot.equity_coin,
        equity_usd=equity_usd,
        book=book,
        delta_coin=coin.delta,
        delta_usd=coin.delta_usd,
        dollar_gamma_usd=book.dollar_gamma_usd,
        vega_usd=book.vega_usd,
        theta_usd=book.theta_usd,
        gross_notional_usd=book.notional_usd,
        sigma_hat=sigma_hat,
        sigma_raw=raw,
        sigma_source=sigma.source,
        sigma=sigma,
        vol_estimate=estimate,
        reference_vol=settings.reference_vol,
        leverage=leverage,
        signed_leverage=coin.delta_usd / equity_usd,
        leverage_iv=None if sigma_hat is None else leverage * sigma_hat / settings.reference_vol,
        leverage_stress=figures.stressed_leverage,
        stress_move=stress_move,
        gross_leverage=book.notional_usd / equity_usd,
        margin_ratio=snapshot.margin_ratio,
        scenarios=figures.scenarios,
        worst_scenario=figures.worst,
        liquidation_move=figures.liquidation_move,
        greeks_divergence=_greeks_divergence(snapshot, book, settings),
        data_age_s=age,
        oldest_figure=oldest,
        data_ahead_s=ahead,
        newest_figure=newest,
        problems=tuple(problems),
        worst_contributions=figures.worst_contributions,
        var=var,
        var_contributions=var_contributions,
    )
    return report, RiskState(sigma_state, history)


def _value_at_risk(
    reval: Revaluation,
    book: BookGreeks,
    snapshot: AccountSnapshot,
    history: DailyCloses,
    settings: RiskSettings,
    delta_usd: float,
) -> tuple[VarFigures | None, dict[str, float]]:
    """VaR and ES on the past days' moves, and each position's P&L in the scenario at the VaR."""
    scenarios = history.scenarios
    if len(scenarios) < settings.var_min_days:
        return None, {}
    if not reval.option_names:  # a linear book: P&L = Δ_usd · m exactly
        figures = linear_var(scenarios, delta_usd=delta_usd, level=settings.var_level)
    else:
        iv = {p.name: p.mark_iv for p in snapshot.positions if p.mark_iv is not None}
        vega_by_vol = sum(r.vega_usd * iv[r.name] * 100.0 for r in book.positions if r.name in iv)
        figures = historical_var(
            reval.pnl_usd,
            scenarios,
            delta_usd=delta_usd,
            dollar_gamma_usd=book.dollar_gamma_usd,
            vega_by_relative_vol_usd=vega_by_vol,
            level=settings.var_level,
        )
    at = figures.var_scenario
    options, others = reval.contributions(
        scenarios.price_moves[at : at + 1], scenarios.vol_shifts[at : at + 1]
    )
    shares = dict(zip(reval.option_names, options[0], strict=True))
    shares.update(zip(reval.other_names, others[0], strict=True))
    return figures, {name: float(v) for name, v in shares.items()}


def _sigma(
    snapshot: AccountSnapshot, settings: RiskSettings, as_of: datetime
) -> tuple[AtmVolEstimate | None, float | None, str | None]:
    estimate = None
    for source in settings.sigma_sources:
        if source == "chain":
            estimate = atm_vol_30d(
                snapshot.chain,
                as_of=as_of,
                target_years=settings.target_tenor_days / 365.0,
                min_days=settings.min_expiry_days,
            )
            if estimate is not None:
                return estimate, estimate.vol, "chain"
        elif source == "index" and snapshot.vol_index is not None and snapshot.vol_index > 0:
            return estimate, snapshot.vol_index, "index"
        elif source == "constant" and settings.sigma_constant:
            return estimate, settings.sigma_constant, "constant"
    return estimate, None, None


def _data_age(snapshot: AccountSnapshot, now: datetime) -> tuple[float, str, float, str]:
    """Age of the oldest figure the decision rests on, and how far the newest is ahead of ``now``.

    ``now`` is the exchange's clock (the loop passes the snapshot's server time), so a local clock
    that runs fast or slow neither ages good data nor hides stale data.
    """
    figures = [("index", snapshot.index_observed_at), ("hedge ticker", snapshot.hedge.observed_at)]
    if snapshot.positions:
        oldest_position = min(snapshot.positions, key=attrgetter("observed_at"))  # the first of the oldest
        newest_position = max(snapshot.positions, key=attrgetter("observed_at"))
        figures.append((f"position {oldest_position.name}", oldest_position.observed_at))
        figures.append((f"position {newest_position.name}", newest_position.observed_at))
    if snapshot.chain:
        stamps = {c.observed_at for c in snapshot.chain}  # a chain's lines share a few times
        figures.append(("option chain", min(stamps)))
        figures.append(("option chain (newest)", max(stamps)))
    name, oldest = min(figures, key=itemgetter(1))
    newest_name, newest = max(figures, key=itemgetter(1))
    return (
        max((now - oldest).total_seconds(), 0.0),
        name,
        max((newest - now).total_seconds(), 0.0),
        newest_name,
    )


def _greeks_divergence(
    snapshot: AccountSnapshot, book: BookGreeks, settings: RiskSettings
) -> tuple[GreeksCheck, ...]:
    ours = dict(zip(book.columns.name, book.columns.delta.tolist(), strict=True))
    flagged = []
    for p in snapshot.positions:
        theirs = p.exchange_greeks.delta
        if theirs is None or p.name not in ours:
            continue
        model = ours[p.name]
        if abs(model - theirs) > settings.greeks_abs_tol + settings.greeks_rel_tol * abs(model):
            flagged.append(GreeksCheck(p.name, model, theirs))
    return tuple(flagged)
