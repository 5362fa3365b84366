"""One book in several currencies held to one volatility target (issue 17; docs/portfolio.md).

Each currency keeps its own :class:`~controller.loop.Controller` (its venue, hedge perpetual, guards,
orders in flight and state) and all of them share one run and one decision log.  A cycle:

1. every currency observes its account and its risk (one snapshot each, REST calls per currency
   unchanged);
2. the portfolio, in USD: each currency's Δ_usd and σ̂, the EWMA correlation of the index returns,
   ``σ_book = sqrt(Δᵀ Σ Δ)`` and the goal Δ* of every currency that keeps ``σ_book / E`` at
   ``L_base · σ_ref`` (:func:`controller.risk.portfolio.portfolio_target`);
3. every currency decides and trades with its share: the goal as a leverage of its own equity,
   ``|Δ*ᵢ| / Eᵢ``, with its band, lots and caps as a single currency has them.

A currency whose data is stale, whose σ̂ is unknown or whose snapshot failed is *frozen*: its hedge
stays where it is and the others absorb the scaling.  Before the correlation has enough history every
pair counts as ρ = 1, which never understates the risk of exposures of the same sign.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import schedule

from controller.config import Config
from controller.execution import Event
from controller.loop.controller import Controller
from controller.loop.cycles import CycleResult, Observed, PortfolioShare
from controller.loop.portfolio_risk import BookStressSettings, book_stress
from controller.loop.runtime import run_on_schedule
from controller.risk.correlation import CorrelationEstimate, CovarianceEwma, correlation, observe
from controller.risk.policy import Mode, PolicySettings
from controller.risk.portfolio import book_vol_usd, portfolio_target

DAY_S = 86400.0


@dataclass(frozen=True)
class PortfolioSettings:
    split: str = "proportional"  # or "equal_risk"
    correlation_half_life_s: float = 7 * DAY_S
    correlation_min_history_days: float = 2.0
    stress: BookStressSettings = field(default_factory=BookStressSettings)

    @classmethod
    def of(cls, config: Config) -> PortfolioSettings:
        p = config.file.portfolio
        stress = BookStressSettings(
            cascade_amplification=p.cascade_amplification,
            cascade_vol_shift=p.cascade_vol_shift,
            betas={"ETH": p.eth_beta},
            max_var_fraction=p.max_var_fraction,
            min_cascade_distance=p.min_cascade_distance,
        )
        return cls(p.split, p.correlation_half_life_days * DAY_S, p.correlation_min_history_days, stress)


def portfolio_shares(
    observed: Mapping[str, Observed],
    *,
    hedges: Mapping[str, str],
    frozen: Mapping[str, str],
    estimate: CorrelationEstimate,
    policy: PolicySettings,
    reference_vol: float,
    split: str,
) -> dict[str, PortfolioShare]:
    """Each currency's share of the portfolio target, with the portfolio's figures for its row (pure).

    ``observed``: every currency's latest observation (a frozen one's may be older); ``hedges``: each
    currency's hedge perpetual; ``frozen``: the currencies whose hedge must not move, with why.
    """
    currencies = tuple(observed)
    reports = [observed[c].report for c in currencies]
    delta = np.array([r.delta_usd for r in reports])
    hedge = np.array(
        [
            sum(p.delta for p in r.book.positions if p.name == hedges[c]) * r.index_price
            for c, r in zip(currencies, reports, strict=True)
        ]
    )  # Δ_usd of each hedge perpetual
    sigma = np.array([_sigma(r.sigma_hat, r.sigma.realised, r.sigma.implied, reference_vol) for r in reports])
    rho, notes = _correlation_matrix(estimate, currencies)
    equity = float(sum(r.equity_usd for r in reports))
    vol = book_vol_usd(delta_usd=delta, sigma=sigma, correlation=rho)
    row: dict[str, Any] = {
        "book_vol_usd": vol,
        "correlation": _by_pair(rho, currencies),
        "portfolio_equity_usd": equity,
        "portfolio_leverage": float(np.sum(np.abs(delta))) / equity,
        "risk_leverage": vol / (equity * reference_vol),
    }
    if policy.mode is Mode.NEUTRAL:  # no volatility target: each currency keeps its own neutral band
        row["portfolio"] = {"reasons": [*notes, "neutral mode: no portfolio target"]}
        return {c: PortfolioShare(None, row) for c in currencies}
    target = portfolio_target(
        currencies=currencies,
        unhedged_delta_usd=delta - hedge,
        hedge_delta_usd=hedge,
        sigma=sigma,
        correlation=rho,
        equity_usd=equity,
        target_vol=policy.base_leverage * reference_vol,
        min_leverage=policy.min_leverage,
        max_leverage=policy.max_leverage,
        split=split,
        frozen=frozenset(frozen),
        signs=np.full(len(currencies), -1.0 if policy.mode is Mode.SHORT else 1.0),
        currency_max_usd=np.array([policy.max_leverage * r.equity_usd for r in reports]),
    )
    row["portfolio"] = {
        "split": split,
        "target_vol": target.target_vol,
        "scale": target.scale,
        "goal_book_vol_usd": target.goal_book_vol_usd,
        "goal_leverage": target.goal_leverage,
        "goals": {
            g.currency: {
                "delta_usd": g.delta_usd,
                "goal_delta_usd": g.goal_delta_usd,
                "hedge_change_usd": g.hedge_change_usd,
                "risk_contribution_usd": g.risk_contribution_usd,
                "frozen": frozen.get(g.currency),
            }
            for g in target.goals
        },
        "reasons": [*notes, *target.reasons],
    }
    return {
        g.currency: PortfolioShare(
            None if g.frozen else abs(g.goal_delta_usd) / observed[g.currency].report.equity_usd, row
        )
        for g in target.goals
    }


def with_book_stress(
    shares: Mapping[str, PortfolioShare],
    observed: Mapping[str, Observed],
    config: Config,
    settings: BookStressSettings,
) -> dict[str, PortfolioShare]:
    """The shares with the whole book's VaR, stresses and cascade on their row, and its guards."""
    reference = config.risk.reference_vol
    sigma = {c: _sigma(o.report.sigma_hat, o.report.sigma.realised, o.report.sigma.implied, reference)
             for c, o in observed.items()}  # fmt: skip
    stress = book_stress(observed, sigma=sigma, risk=config.risk, settings=settings)
    risk = {k: stress.row.pop(k) for k in ("var", "stresses", "cascade", "grid") if k in stress.row}
    out = {}
    for c, share in shares.items():
        row = {**share.row, **stress.row}
        row["portfolio"] = {**row.get("portfolio", {}), **risk}
        out[c] = PortfolioShare(share.target_leverage, row, stress.reducing)
    return out


def _sigma(hat: float | None, realised: float | None, implied: float | None, reference: float) -> float:
    """σ̂, else whichever estimate there is, else σ_ref: a frozen currency's risk still counts."""
    return next((s for s in (hat, realised, implied) if s is not None and s > 0), reference)


def _correlation_matrix(
    estimate: CorrelationEstimate, currencies: tuple[str, ...]
) -> tuple[np.ndarray, list[str]]:
    if estimate.matrix is None or estimate.assets != currencies:
        why = estimate.reason or "not observed for these currencies"
        return np.ones((len(currencies), len(currencies))), [f"correlation unknown ({why}): ρ = 1 assumed"]
    return estimate.matrix, []


def _by_pair(rho: np.ndarray, currencies: tuple[str, ...]) -> dict[str, float]:
    n = len(currencies)
    return {f"{currencies[i]}/{currencies[j]}": float(rho[i, j]) for i in range(n) for j in range(i + 1, n)}


@dataclass
class PortfolioController:
    """The currencies' controllers, cycled together (module docstring)."""

    legs: Mapping[str, Controller]  # by currency, in the configuration's order
    settings: PortfolioSettings
    clock: Callable[[], datetime]
    advance: Callable[[], None] | None = None  # the simulator's one clock, stepped once a cycle
    cycles_done: int = 0
    correlation_state: CovarianceEwma = field(default_factory=lambda: CovarianceEwma(()))
    _last: dict[str, Observed] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.legs) < 2:
            raise ValueError("a portfolio needs at least two currencies")
        self.correlation_state = CovarianceEwma(tuple(self.legs))

    @property
    def first(self) -> Controller:
        return next(iter(self.legs.values()))

    @property
    def run_id(self) -> int:
        return self.first.run_id

    @property
    def mode(self) -> str:
        return self.first.mode

    @property
    def journal(self) -> Any:
        return self.first.journal

    @property
    def config(self) -> Config:
        return self.first.config

    @property
    def notify(self) -> Callable[..., Any]:
        return self.first.notify

    def scrub(self, text: str) -> str:
        return self.first.scrub(text)

    def start(self) -> None:
        self.first.start()
        for leg in list(self.legs.values())[1:]:
            leg.join(self.first.run_id, self.first.run_key)
        if self.first.resume_state:
            self._resume_correlation()

    def _resume_correlation(self) -> None:
        """The correlation's EWMA where the log's last portfolio cycle left it (same currencies)."""
        saved = self.journal.last_portfolio_state()
        if saved is None:
            return
        cycle_id, text = saved
        state = correlation_from_json(json.loads(text)["correlation_state"])
        if state.assets == self.correlation_state.assets:
            self.correlation_state = state
            self.first._event(
                "info",
                "state_resumed",
                f"resumed the correlation of cycle {cycle_id}: {state.returns} common returns over "
                f"{state.history_days:.1f} days",
            )

    def cycle(self) -> list[CycleResult]:
        """One cycle of every currency: observe all, then each acts on its share of the target."""
        self.cycles_done += 1
        n, started = self.cycles_done, time.perf_counter()
        if self.advance is not None and n > 1:
            self.advance()
        now = self.clock()
        events: dict[str, list[Event]] = {c: [] for c in self.legs}
        seen = {c: self._observe(leg, n, now, started, events[c]) for c, leg in self.legs.items()}
        fresh = {c: o for c, o in seen.items() if isinstance(o, Observed)}
        self._last.update(fresh)
        shares = self._shares(fresh, now)
        results = []
        for c, leg in self.legs.items():
            leg.cycles_done = n
            o = seen[c]
            if not isinstance(o, Observed):  # its failure is already recorded
                results.append(o)
                continue
            results.append(self._act(leg, n, now, started, events[c], o, shares.get(c)))
        return results

    def _observe(
        self, leg: Controller, n: int, now: datetime, started: float, events: list[Event]
    ) -> Observed | CycleResult:
        return leg.guarded(n, now, started, events, lambda: leg.observe(events))

    def _act(
        self,
        leg: Controller,
        n: int,
        now: datetime,
        started: float,
        events: list[Event],
        observed: Observed,
        share: PortfolioShare | None,
    ) -> CycleResult:
        return leg.guarded(n, now, started, events, lambda: leg.act(n, now, started, events, observed, share))

    def _shares(self, fresh: Mapping[str, Observed], now: datetime) -> dict[str, PortfolioShare]:
        prices = {c: o.report.index_price for c, o in fresh.items()}
        self.correlation_state = observe(
            self.correlation_state, prices=prices, at=now, half_life_s=self.settings.correlation_half_life_s
        )
        if set(self._last) != set(self.legs):  # a currency never observed: its exposure is unknown
            return {}
        frozen = {c: "no snapshot this cycle" for c in self.legs if c not in fresh}
        frozen.update((c, why) for c, o in fresh.items() if (why := _stale(o, self.legs[c].config)))
        config = self.first.config
        latest = {c: self._last[c] for c in self.legs}
        shares = portfolio_shares(
            latest,
            hedges={c: leg.config.venue.hedge_instrument for c, leg in self.legs.items()},
            frozen=frozen,
            estimate=correlation(
                self.correlation_state, min_history_days=self.settings.correlation_min_history_days
            ),
            policy=config.policy,
            reference_vol=config.risk.reference_vol,
            split=self.settings.split,
        )
        shares = with_book_stress(shares, latest, config, self.settings.stress)
        if self.first.carry_state:  # saved every cycle, so a restart resumes it
            saved = correlation_to_json(self.correlation_state)
            for share in shares.values():
                share.row["portfolio"]["correlation_state"] = saved
        return shares

    def run(self, *, cycles: int, scheduler: schedule.Scheduler, should_stop: Callable[[], bool]) -> str:
        return run_on_schedule(
            self.cycle,
            done=lambda: self.cycles_done,
            interval_s=self.first.config.run.interval_s,
            cycles=cycles,
            scheduler=scheduler,
            should_stop=should_stop,
            sleep=self.first.sleep,
        )

    def finish(self, status: str, reason: str) -> None:
        self.first.finish(status, reason)

    def close(self) -> None:
        try:
            self.first.close()
        finally:
            for leg in list(self.legs.values())[1:]:
                leg.release()


def _stale(observed: Observed, config: Config) -> str | None:
    """Why this currency's hedge must not move this cycle, or None."""
    report = observed.report
    if report.sigma_hat is None:
        return "σ̂ unknown"
    if report.data_age_s > config.guards.max_data_age_s:
        return f"data {report.data_age_s:.0f} s old ({report.oldest_figure})"
    if report.data_ahead_s > config.guards.max_future_s:
        return f"data {report.data_ahead_s:.0f} s ahead of the exchange's clock ({report.newest_figure})"
    return None


def correlation_to_json(state: CovarianceEwma) -> dict[str, Any]:
    return {
        "assets": list(state.assets),
        "sum_rr": [list(r) for r in state.sum_rr],
        "sum_dt": state.sum_dt,
        "returns": state.returns,
        "last_prices": None if state.last_prices is None else list(state.last_prices),
        "last_at": None if state.last_at is None else state.last_at.isoformat(),
        "first_at": None if state.first_at is None else state.first_at.isoformat(),
    }


def correlation_from_json(saved: Mapping[str, Any]) -> CovarianceEwma:
    def when(key: str) -> datetime | None:
        return None if saved.get(key) is None else datetime.fromisoformat(saved[key])

    prices = saved.get("last_prices")
    return CovarianceEwma(
        tuple(saved["assets"]),
        tuple(tuple(float(x) for x in r) for r in saved["sum_rr"]),
        float(saved["sum_dt"]),
        int(saved["returns"]),
        None if prices is None else tuple(float(p) for p in prices),
        when("last_at"),
        when("first_at"),
    )
