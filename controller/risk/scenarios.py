"""Full revaluation of a book under price and volatility shocks (pure, vectorised).

A scenario moves the index by ``price_move`` (relative: −0.16 is −16 %), every forward and futures
mark with it, and multiplies every implied volatility by ``1 + vol_shift`` — or, when it carries a
``vol_shock`` (Deribit's portfolio margin), each option's volatility by a factor of its own tenor
and IV (:class:`pricing.portfolio_margin.TenorVolShock`).  Time does not pass.
P&L is the change of the account's equity in USD, collateral included: in a coin-margined account
equity in coin changes by the inverse instruments' coin P&L and is then worth the new index::

    equity_usd' = (equity_coin + ΔC) · S·(1 + move) + ΔU
    ΔC: inverse options Σ size·(p'/F' − p/F), inverse futures Σ size_usd·(1/M − 1/M')
    ΔU: linear options Σ size·(p' − p),       linear futures Σ size·(M' − M)

with ``p`` the Black-76 price (USD) at the position's mark IV; base and shocked prices come from
the same model, so a scenario's P&L is never polluted by model-vs-mark differences.

Grids: Deribit's portfolio-margin grid, from the parameters Deribit publishes (one place,
:mod:`pricing.portfolio_margin`, which the simulator's PM margin reads too; BTC: price ±16 % in 9
points × vol up / unchanged / down, the vol shocks scaled by each option's tenor, plus the extended
moves −66 %, −33 %, +50 %, +100 %, +200 %, +300 %, +400 %, +500 % with vol up) and CME SPAN's 16
scenarios (price 0, ±⅓, ±⅔, ±1 of the scan range, each with a uniform relative vol shift up and
down, plus ±2× the range at a 35 % cover fraction).  The PM grid's scenarios are those of the
margin; the margin's own aggregation (gains offset, the extended table's factor and dampener, a
future held at the range's edge in the extended table, the roll shock and the contingencies) is not
applied: the grid reports the book's P&L, docs/risk-and-policy.md says where the two differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple, overload

import numpy as np
from numpy.typing import ArrayLike

from controller.risk.liquidation import DEFAULT_MAX_DOWN, DEFAULT_MAX_UP, first_crossing, scan
from controller.venues import PositionSnapshot
from pricing import Option, ScenarioPricer, Settlement, year_fraction
from pricing.portfolio_margin import EXTENDED_MOVES, PM_PARAMS, TenorVolShock, standard_moves


@dataclass(frozen=True)
class Scenario:
    label: str
    price_move: float
    vol_shift: float  # relative, every option alike (0 when ``vol_shock`` gives each its own)
    weight: float = 1.0  # SPAN's extreme moves count at the cover fraction
    vol_shock: TenorVolShock | None = None  # per option, by its tenor and IV (Deribit PM)


class ScenarioResult(NamedTuple):  # a tuple: dozens are made every cycle
    scenario: Scenario
    pnl_usd: float  # unweighted

    @property
    def weighted_pnl_usd(self) -> float:
        return self.pnl_usd * self.scenario.weight


@lru_cache(maxsize=16)  # pure and immutable: built once per currency, not once per cycle
def deribit_pm_grid(*, currency: str = "BTC") -> tuple[Scenario, ...]:
    """Deribit's PM scenarios for ``currency`` from its published parameters: the standard table
    (``±price_range`` in ``buckets`` points × vol up / same / down), then the extended moves with
    vol up; "up" and "down" shock each option by its tenor (:class:`TenorVolShock`)."""
    if currency not in PM_PARAMS:
        raise ValueError(
            f"Deribit publishes portfolio-margin parameters for {sorted(PM_PARAMS)}, not {currency}"
        )
    params = PM_PARAMS[currency]
    up, down = TenorVolShock("up", params), TenorVolShock("down", params)
    grid = [
        Scenario(f"PM {m:+.0%} vol {label}", float(m), 0.0, vol_shock=shock)
        for m in standard_moves(params=params)
        for label, shock in (("up", up), ("same", None), ("down", down))
    ]
    grid += [Scenario(f"PM extended {m:+.0%} vol up", m, 0.0, vol_shock=up) for m in EXTENDED_MOVES]
    return tuple(grid)


@lru_cache(maxsize=16)
def span_grid(
    *, price_range: float = 0.25, vol_range: float = 0.25, extreme_cover: float = 0.35
) -> tuple[Scenario, ...]:
    grid = [
        Scenario("SPAN 1: price 0, vol up", 0.0, vol_range),
        Scenario("SPAN 2: price 0, vol down", 0.0, -vol_range),
    ]
    number = 3
    for fraction in (1 / 3, 2 / 3, 1.0):
        for sign in (1, -1):
            for label, shift in (("up", vol_range), ("down", -vol_range)):
                move = sign * fraction * price_range
                grid.append(Scenario(f"SPAN {number}: price {move:+.1%}, vol {label}", move, shift))
                number += 1
    grid.append(
        Scenario(f"SPAN 15: price {+2 * price_range:+.0%} (extreme)", 2 * price_range, 0.0, extreme_cover)
    )
    grid.append(
        Scenario(f"SPAN 16: price {-2 * price_range:+.0%} (extreme)", -2 * price_range, 0.0, extreme_cover)
    )
    return tuple(grid)


@dataclass(frozen=True, eq=False)
class ScenarioGrid:
    """Scenarios with their price moves, vol shifts and weights as arrays, ready for revaluation;
    the distinct per-option shocks, and for each scenario the index of its own (−1: uniform)."""

    scenarios: tuple[Scenario, ...]
    price_moves: np.ndarray
    vol_shifts: np.ndarray
    weights: np.ndarray
    vol_shocks: tuple[TenorVolShock, ...] = ()
    shock_index: np.ndarray | None = None

    @staticmethod
    def of(scenarios: Sequence[Scenario]) -> ScenarioGrid:
        shocks = tuple(dict.fromkeys(s.vol_shock for s in scenarios if s.vol_shock is not None))
        return ScenarioGrid(
            tuple(scenarios),
            np.array([s.price_move for s in scenarios], dtype=float),
            np.array([s.vol_shift for s in scenarios], dtype=float),
            np.array([s.weight for s in scenarios], dtype=float),
            shocks,
            np.array([-1 if s.vol_shock is None else shocks.index(s.vol_shock) for s in scenarios])
            if shocks
            else None,
        )

    def vol_factors(self, *, vol: np.ndarray, t_years: np.ndarray) -> np.ndarray:
        """σ'/σ per scenario: shape (scenarios,) when every scenario shifts all options alike, else
        (scenarios, options) for options of Black vol ``vol`` and ``t_years`` (ACT/365) to expiry."""
        uniform = 1.0 + self.vol_shifts
        if self.shock_index is None:
            return uniform
        factors = np.repeat(uniform[:, None], vol.size, axis=1)
        for k, shock in enumerate(self.vol_shocks):
            factors[self.shock_index == k] = shock.factors(vol=vol, t_years=t_years)
        return factors


class ScenarioResults(Sequence[ScenarioResult]):
    """A grid's results, made on demand from its P&L array (dozens per cycle, rarely all read)."""

    __slots__ = ("_pnl", "_scenarios")

    def __init__(self, scenarios: tuple[Scenario, ...], pnl_usd: list[float]) -> None:
        self._scenarios, self._pnl = scenarios, pnl_usd

    def __len__(self) -> int:
        return len(self._scenarios)

    @overload
    def __getitem__(self, i: int) -> ScenarioResult: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[ScenarioResult, ...]: ...
    def __getitem__(self, i: int | slice) -> ScenarioResult | tuple[ScenarioResult, ...]:
        if isinstance(i, slice):
            return tuple(map(ScenarioResult, self._scenarios[i], self._pnl[i]))
        return ScenarioResult(self._scenarios[i], self._pnl[i])


@dataclass(frozen=True)
class RevaluationFigures:
    """What the risk report takes from full revaluation (:meth:`Revaluation.figures`)."""

    scenarios: Sequence[ScenarioResult]
    worst: ScenarioResult | None  # the lowest weighted P&L, the first of equals
    worst_contributions: dict[str, float]  # each position's weighted P&L in it (USD)
    stressed_leverage: float | None
    liquidation_move: float | None


@lru_cache(maxsize=16)
def risk_grid(
    *, currency: str, span_price_range: float, span_vol_range: float, span_extreme_cover: float
) -> ScenarioGrid:
    """Deribit's portfolio-margin grid then CME SPAN's 16 scenarios, built once per setting."""
    return ScenarioGrid.of(
        deribit_pm_grid(currency=currency)
        + span_grid(price_range=span_price_range, vol_range=span_vol_range, extreme_cover=span_extreme_cover)
    )


class Revaluation:
    """A book ready to be revalued: positions as arrays, with the account's collateral.

    Options are checked and prepared once (:class:`pricing.ScenarioPricer`): every revaluation
    after that is one price-only pass over (scenarios × options).  In USD at the shocked index
    ``S' = S·f``, with ``f = 1 + move`` and ``F' = F·f``, a position's P&L is

    * an inverse option: ``size·(p'/F' − p/F)·S' = size·(S/F)·(p' − p·f)``;
    * a linear option: ``size·(p' − p)``;
    * an inverse future of ``size_usd`` at mark ``M``: ``size_usd·(1/M − 1/M')·S' = size_usd·(S/M)·(f − 1)``;
    * a linear future: ``size·M·(f − 1)``.
    """

    def __init__(
        self,
        positions: Sequence[PositionSnapshot],
        *,
        index: float,
        equity_coin: float,
        as_of: datetime,
        coin_margined: bool = True,
        rate: float = 0.0,
    ) -> None:
        if not (index > 0 and math.isfinite(index)):
            raise ValueError(f"index must be a positive number, got {index}")
        self.index = index
        self.equity_coin = equity_coin
        self.coin_margined = coin_margined
        options = [p for p in positions if isinstance(p.instrument, Option)]
        others = [p for p in positions if not isinstance(p.instrument, Option)]
        self.option_names = [p.name for p in options]
        self.other_names = [p.name for p in others]
        self._pricer: ScenarioPricer | None = None
        if options:
            self._prepare_options(options, as_of=as_of, rate=rate)
        size = np.array([p.size for p in others], dtype=float)
        mark = np.array([p.mark_price for p in others], dtype=float)
        inverse = np.array([p.instrument.settlement is Settlement.INVERSE for p in others], dtype=bool)
        self._fut_size, self._fut_mark, self._fut_inverse = size, mark, inverse
        self._fut_coef = np.where(inverse, size * index / mark, size * mark)  # USD P&L per unit of (f − 1)
        self._fut_coef_sum = float(self._fut_coef.sum())

    def _prepare_options(self, options: list[PositionSnapshot], *, as_of: datetime, rate: float) -> None:
        contracts: list[Option] = [p.instrument for p in options]  # type: ignore[misc]
        years: dict[datetime, float] = {}  # a book has few expiries
        for o in contracts:
            if o.expiry not in years:
                years[o.expiry] = max(year_fraction(start=as_of, end=o.expiry), 0.0)
        forward = np.array([_required(p.underlying_price, p.name, "underlying_price") for p in options])
        self._opt_t = np.array([years[o.expiry] for o in contracts])
        self._opt_vol = np.array([_required(p.mark_iv, p.name, "mark_iv") for p in options])
        self._pricer = ScenarioPricer(
            forward=forward,
            strike=np.array([o.strike for o in contracts], dtype=float),
            t_years=self._opt_t,
            vol=self._opt_vol,
            is_call=np.array([o.is_call for o in contracts], dtype=np.bool_),
            rate=rate,
        )
        size = np.array([p.size for p in options], dtype=float)
        self._opt_inverse = np.array([o.settlement is Settlement.INVERSE for o in contracts], dtype=np.bool_)
        self._opt_coef = np.where(self._opt_inverse, size * self.index / forward, size)
        self._opt_base: np.ndarray | None = None  # priced with the first revaluation, in the same pass

    def _factors(self, price_moves: ArrayLike, vol_shifts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``1 + move`` and ``1 + shift``: shifts one per scenario or (scenarios, options)."""
        f = 1.0 + np.atleast_1d(np.asarray(price_moves, dtype=float))
        return self._checked(f, 1.0 + np.atleast_1d(np.asarray(vol_shifts, dtype=float)))

    def _checked(self, f: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not (f.min(initial=1.0) > 0 and v.min(initial=1.0) >= 0):
            raise ValueError("price moves must stay above -100 % and vol shifts at or above -100 %")
        if v.ndim == 2 and v.shape != (f.size, len(self.option_names)):
            raise ValueError(f"per-option vol shifts must be (scenarios, options), got {v.shape}")
        return f, v

    def grid_factors(self, grid: ScenarioGrid) -> tuple[np.ndarray, np.ndarray]:
        """The grid's forward factors and vol factors (per option where a scenario has a shock)."""
        v = 1.0 + grid.vol_shifts
        if self._pricer is not None and grid.shock_index is not None:
            v = grid.vol_factors(vol=self._opt_vol, t_years=self._opt_t)
        return self._checked(1.0 + grid.price_moves, v)

    def _option_price_changes(self, f: np.ndarray, v: np.ndarray | None) -> np.ndarray:
        """``p' − p·f`` (inverse) or ``p' − p`` (linear), shape (scenarios, options); factors checked."""
        assert self._pricer is not None
        if self._opt_base is None:  # the base prices: a first row of the same pricing pass
            if v is not None:
                v = np.concatenate([np.ones((1, *v.shape[1:])), v])
            prices = self._pricer.prices_of_valid(np.concatenate([[1.0], f]), v)
            base = prices[0]
            self._opt_base = base.copy()
            self._opt_base_inverse = np.where(self._opt_inverse, base, 0.0)  # subtracted as p·f
            self._opt_base_linear = (
                None if self._opt_inverse.all() else np.where(self._opt_inverse, 0.0, base)
            )
            change = prices[1:]
        else:
            change = self._pricer.prices_of_valid(f, v)
        change -= np.multiply.outer(f, self._opt_base_inverse)
        if self._opt_base_linear is not None:
            change -= self._opt_base_linear
        return change

    def contributions(self, price_moves: np.ndarray, vol_shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-position P&L (USD at the shocked index): arrays (scenarios, options), (scenarios, others).

        ``vol_shifts``: one per scenario, or one per scenario and option (scenarios, options)."""
        f, v = self._factors(price_moves, vol_shifts)
        if self._pricer is None:
            options = np.zeros((f.size, 0))
        else:
            options = self._option_price_changes(f, v)
            options *= self._opt_coef
        return options, np.multiply.outer(f - 1.0, self._fut_coef)

    def _positions_pnl(self, f: np.ndarray, v: np.ndarray | None) -> np.ndarray:
        """Σ of every position's P&L (USD) per scenario (``v`` None: volatility unchanged)."""
        total = (f - 1.0) * self._fut_coef_sum
        if self._pricer is not None:
            total += self._option_price_changes(f, v) @ self._opt_coef
        return total

    def pnl_usd(
        self, price_moves: Sequence[float] | np.ndarray, vol_shifts: Sequence[float] | np.ndarray
    ) -> np.ndarray:
        """Change of account equity in USD for each scenario (``vol_shifts`` relative, one per
        scenario or one per scenario and option: shape (scenarios, options))."""
        f, v = self._factors(price_moves, vol_shifts)
        return self._pnl_of_factors(f, v)

    def _pnl_of_factors(self, f: np.ndarray, v: np.ndarray) -> np.ndarray:
        collateral = self.equity_coin * self.index * (f - 1.0) if self.coin_margined else 0.0
        return collateral + self._positions_pnl(f, v)

    def equity_coin_at(self, price_moves: np.ndarray) -> np.ndarray:
        """Equity in coin after a price move (volatility unchanged)."""
        f, _ = self._factors(price_moves, 0.0)
        return self._equity_coin(f)

    def _equity_coin(self, f: np.ndarray) -> np.ndarray:
        return self.equity_coin + self._positions_pnl(f, None) / (self.index * f)

    def run(self, scenarios: Sequence[Scenario] | ScenarioGrid) -> tuple[ScenarioResult, ...]:
        grid = scenarios if isinstance(scenarios, ScenarioGrid) else ScenarioGrid.of(scenarios)
        pnl = self._pnl_of_factors(*self.grid_factors(grid))
        return tuple(ScenarioResult(s, p) for s, p in zip(grid.scenarios, pnl.tolist(), strict=True))

    def stressed_leverage(self, *, move: float, equity_usd: float) -> float:
        """``max(loss(+m), loss(−m)) / (E · m)`` with ``loss = max(−P&L, 0)``: leverage with convexity.

        Only the adverse side counts.  For a linear book this is ``|Δ_usd| / E`` = L, as in DESIGN §3,
        and a short-gamma book reads higher; taking ``|P&L|`` instead would count a long-gamma book's
        gains as risk and make it read higher than its delta too.
        """
        up, down = self.pnl_usd([move, -move], [0.0, 0.0])
        return max(-up, -down, 0.0) / (equity_usd * move)

    def figures(
        self,
        grid: ScenarioGrid,
        *,
        stress_move: float | None,
        equity_usd: float,
        maintenance_margin_coin: float,
    ) -> RevaluationFigures:
        """The grid, its worst scenario with each position's share, the stressed leverage and the
        liquidation move (default range), from one pricing pass over all their scenarios.

        The same figures as :meth:`run`, :meth:`contributions`, :meth:`stressed_leverage` and
        :meth:`liquidation_move`; only the work is shared.
        """
        stress = () if stress_move is None else (stress_move, -stress_move)
        sides, scanned_moves = scan(DEFAULT_MAX_UP, DEFAULT_MAX_DOWN)
        searched = self._pricer is not None and self.equity_coin > maintenance_margin_coin
        f_grid, v_grid = self.grid_factors(grid)
        f = np.concatenate([f_grid, 1.0 + np.asarray(stress), 1.0 + scanned_moves if searched else ()])
        v = np.ones((f.size, *v_grid.shape[1:]))  # the stressed and scanned moves: volatility unchanged
        v[: f_grid.size] = v_grid
        options = None if self._pricer is None else self._option_price_changes(f, v)
        positions_pnl = (f - 1.0) * self._fut_coef_sum
        if options is not None:
            positions_pnl += options @ self._opt_coef
        collateral = self.equity_coin * self.index * (f - 1.0) if self.coin_margined else 0.0
        pnl = collateral + positions_pnl
        size, n_stress = len(grid.scenarios), len(stress)
        results = ScenarioResults(grid.scenarios, pnl[:size].tolist())
        worst = int(np.argmin(pnl[:size] * grid.weights)) if size else None
        contributions: dict[str, float] = {}
        if worst is not None:
            weight = grid.scenarios[worst].weight
            if options is not None:
                contributions.update(
                    zip(self.option_names, (options[worst] * self._opt_coef * weight).tolist(), strict=False)
                )
            futures = (f[worst] - 1.0) * self._fut_coef * weight
            contributions.update(zip(self.other_names, futures.tolist(), strict=False))
        stressed = None
        if stress_move is not None:
            up, down = pnl[size : size + n_stress].tolist()
            stressed = max(-up, -down, 0.0) / (equity_usd * stress_move)
        if searched:
            equity = self.equity_coin + positions_pnl[size + n_stress :] / (self.index * f[size + n_stress :])
            liquidation = self._first_crossing(
                maintenance_margin_coin, sides=sides, scanned=equity - maintenance_margin_coin
            )
        else:
            liquidation = self.liquidation_move(maintenance_margin_coin)
        return RevaluationFigures(
            results, None if worst is None else results[worst], contributions, stressed, liquidation
        )

    def liquidation_move(
        self,
        maintenance_margin_coin: float,
        *,
        max_up: float = DEFAULT_MAX_UP,
        max_down: float = DEFAULT_MAX_DOWN,
    ) -> float | None:
        """The smallest price move that brings equity (coin) down to the maintenance margin.

        The maintenance margin is held at its current value in coin (an approximation: on the
        exchange it moves with the positions' notional).  None when no move in
        ``[max_down, max_up]`` gets there; 0 when the account is already at or below it.
        """
        if not -1.0 < max_down < 0.0 < max_up:
            raise ValueError(f"need -1 < max_down < 0 < max_up, got {max_down}, {max_up}")
        if self._pricer is None:
            if self.equity_coin <= maintenance_margin_coin:
                return 0.0
            return self._linear_liquidation_move(maintenance_margin_coin, max_up=max_up, max_down=max_down)
        return self._searched_liquidation_move(maintenance_margin_coin, max_up=max_up, max_down=max_down)

    def _searched_liquidation_move(
        self, maintenance_margin_coin: float, *, max_up: float, max_down: float
    ) -> float | None:
        sides, points = scan(max_up, max_down)
        scanned = self._equity_coin(1.0 + points) - maintenance_margin_coin
        return self._first_crossing(maintenance_margin_coin, sides=sides, scanned=scanned)

    def _first_crossing(
        self, maintenance_margin_coin: float, *, sides: tuple[np.ndarray, np.ndarray], scanned: np.ndarray
    ) -> float | None:
        return first_crossing(
            lambda f: self._equity_coin(f) - maintenance_margin_coin, sides=sides, scanned=scanned
        )

    def _linear_liquidation_move(
        self, maintenance_margin_coin: float, *, max_up: float, max_down: float
    ) -> float | None:
        """Closed form for a book without options (the value the general search converges to).

        With ``x = m / (1 + m)``, an inverse future of ``size_usd`` at mark ``M`` gains
        ``size_usd / M · x`` coin and a linear one ``size · M / S · x`` coin, so equity in coin is
        ``equity_coin + D · x`` with ``D`` the book's coin delta excluding collateral: linear in
        ``x``, and ``x`` rises monotonically with ``m``.
        """
        sizes, marks = self._fut_size, self._fut_mark
        exposure = float(np.sum(np.where(self._fut_inverse, sizes / marks, sizes * marks / self.index)))
        if exposure == 0.0:
            return None
        x = (maintenance_margin_coin - self.equity_coin) / exposure  # equity_coin + D·x = MM
        if x >= 1.0:
            return None
        move = x / (1.0 - x)
        return move if max_down <= move <= max_up else None


def _required(value: float | None, name: str, field: str) -> float:
    if value is None or not math.isfinite(value):
        raise ValueError(f"position {name}: {field} is needed to revalue it")
    return value
