"""Full revaluation of a book under price and volatility shocks (pure, vectorised).

A scenario moves the index by ``price_move`` (relative: −0.16 is −16 %), every forward and futures
mark with it, and multiplies every implied volatility by ``1 + vol_shift``.  Time does not pass.
P&L is the change of the account's equity in USD, collateral included: in a coin-margined account
equity in coin changes by the inverse instruments' coin P&L and is then worth the new index::

    equity_usd' = (equity_coin + ΔC) · S·(1 + move) + ΔU
    ΔC: inverse options Σ size·(p'/F' − p/F), inverse futures Σ size_usd·(1/M − 1/M')
    ΔU: linear options Σ size·(p' − p),       linear futures Σ size·(M' − M)

with ``p`` the Black-76 price (USD) at the position's mark IV; base and shocked prices come from
the same model, so a scenario's P&L is never polluted by model-vs-mark differences.

Grids: Deribit's portfolio-margin grid (price ±16 % in 9 points × vol up / unchanged / down, plus
extended moves −66 %, −33 %, +50 %, +100 %) and CME SPAN's 16 scenarios (price 0, ±⅓, ±⅔, ±1 of the
scan range, each with vol up and down, plus ±2× the range at a 35 % cover fraction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np

from controller.venues import PositionSnapshot
from pricing import Option, Settlement, black_price, year_fraction

DERIBIT_EXTENDED_MOVES = (-0.66, -0.33, 0.50, 1.00)


@dataclass(frozen=True)
class Scenario:
    label: str
    price_move: float
    vol_shift: float
    weight: float = 1.0  # SPAN's extreme moves count at the cover fraction


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    pnl_usd: float  # unweighted

    @property
    def weighted_pnl_usd(self) -> float:
        return self.pnl_usd * self.scenario.weight


@lru_cache(maxsize=16)  # pure and immutable: built once per setting, not once per cycle
def deribit_pm_grid(*, vol_shift: float = 0.25) -> tuple[Scenario, ...]:
    moves = np.linspace(-0.16, 0.16, 9)
    grid = [
        Scenario(f"PM {m:+.0%} vol {label}", float(m), shift)
        for m in moves
        for label, shift in (("up", vol_shift), ("same", 0.0), ("down", -vol_shift))
    ]
    grid += [Scenario(f"PM extended {m:+.0%}", m, 0.0) for m in DERIBIT_EXTENDED_MOVES]
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


class Revaluation:
    """A book ready to be revalued: positions as arrays, with the account's collateral."""

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
        self.rate = rate
        options = [p for p in positions if isinstance(p.instrument, Option)]
        others = [p for p in positions if not isinstance(p.instrument, Option)]
        self.option_names = [p.name for p in options]
        self.other_names = [p.name for p in others]
        contracts = [p.instrument for p in options if isinstance(p.instrument, Option)]
        self._opt_size = np.array([p.size for p in options], dtype=float)
        self._opt_strike = np.array([o.strike for o in contracts], dtype=float)
        self._opt_t = np.array(
            [max(year_fraction(start=as_of, end=o.expiry), 0.0) for o in contracts], dtype=float
        )
        self._opt_fwd = np.array(
            [_required(p.underlying_price, p.name, "underlying_price") for p in options], dtype=float
        )
        self._opt_vol = np.array([_required(p.mark_iv, p.name, "mark_iv") for p in options], dtype=float)
        self._opt_call = np.array([o.is_call for o in contracts], dtype=np.bool_)
        self._opt_inverse = np.array([o.settlement is Settlement.INVERSE for o in contracts], dtype=np.bool_)
        self._fut_size = np.array([p.size for p in others], dtype=float)
        self._fut_mark = np.array([p.mark_price for p in others], dtype=float)
        self._fut_inverse = np.array(
            [p.instrument.settlement is Settlement.INVERSE for p in others], dtype=bool
        )
        self._opt_base = self._option_prices(np.ones(1), np.ones(1))[0]

    def _option_prices(self, price_factor: np.ndarray, vol_factor: np.ndarray) -> np.ndarray:
        """Black-76 USD prices, shape (scenarios, options)."""
        if self._opt_size.size == 0:
            return np.zeros((price_factor.size, 0))
        return np.asarray(
            black_price(
                forward=self._opt_fwd[None, :] * price_factor[:, None],
                strike=self._opt_strike[None, :],
                t_years=self._opt_t[None, :],
                vol=self._opt_vol[None, :] * vol_factor[:, None],
                is_call=self._opt_call[None, :],
                rate=self.rate,
            )
        )

    def contributions(self, price_moves: np.ndarray, vol_shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-position P&L (USD at the shocked index): arrays (scenarios, options), (scenarios, others)."""
        f = 1.0 + np.asarray(price_moves, dtype=float)
        v = 1.0 + np.asarray(vol_shifts, dtype=float)
        if np.any(f <= 0) or np.any(v < 0):
            raise ValueError("price moves must stay above -100 % and vol shifts at or above -100 %")
        s_new = self.index * f[:, None]
        if self._opt_size.size:
            prices = self._option_prices(f, v)
            fwd_new = self._opt_fwd[None, :] * f[:, None]
            opt_coin = self._opt_size * (prices / fwd_new - self._opt_base / self._opt_fwd)
            opt_usd = self._opt_size * (prices - self._opt_base)
            options = np.where(self._opt_inverse, opt_coin * s_new, opt_usd)
        else:
            options = np.zeros((f.size, 0))
        mark_new = self._fut_mark[None, :] * f[:, None]
        fut_coin = self._fut_size * (1.0 / self._fut_mark - 1.0 / mark_new)
        fut_usd = self._fut_size * (mark_new - self._fut_mark)
        others = np.where(self._fut_inverse, fut_coin * s_new, fut_usd)
        return options, others

    def pnl_usd(
        self, price_moves: Sequence[float] | np.ndarray, vol_shifts: Sequence[float] | np.ndarray
    ) -> np.ndarray:
        """Change of account equity in USD for each scenario."""
        moves = np.asarray(price_moves, dtype=float)
        options, others = self.contributions(moves, np.asarray(vol_shifts, dtype=float))
        collateral = self.equity_coin * self.index * moves if self.coin_margined else np.zeros_like(moves)
        return collateral + options.sum(axis=1) + others.sum(axis=1)

    def equity_coin_at(self, price_moves: np.ndarray) -> np.ndarray:
        """Equity in coin after a price move (volatility unchanged)."""
        moves = np.asarray(price_moves, dtype=float)
        options, others = self.contributions(moves, np.zeros_like(moves))
        s_new = self.index * (1.0 + moves)
        return self.equity_coin + (options.sum(axis=1) + others.sum(axis=1)) / s_new

    def run(self, scenarios: Sequence[Scenario]) -> tuple[ScenarioResult, ...]:
        pnl = self.pnl_usd([s.price_move for s in scenarios], [s.vol_shift for s in scenarios])
        return tuple(ScenarioResult(s, float(p)) for s, p in zip(scenarios, pnl, strict=True))

    def stressed_leverage(self, *, move: float, equity_usd: float) -> float:
        """``max(loss(+m), loss(−m)) / (E · m)`` with ``loss = max(−P&L, 0)``: leverage with convexity.

        Only the adverse side counts.  For a linear book this is ``|Δ_usd| / E`` = L, as in DESIGN §3,
        and a short-gamma book reads higher; taking ``|P&L|`` instead would count a long-gamma book's
        gains as risk and make it read higher than its delta too.
        """
        up, down = self.pnl_usd([move, -move], [0.0, 0.0])
        return max(-up, -down, 0.0) / (equity_usd * move)

    def liquidation_move(
        self, maintenance_margin_coin: float, *, max_up: float = 9.0, max_down: float = -0.99
    ) -> float | None:
        """The smallest price move that brings equity (coin) down to the maintenance margin.

        The maintenance margin is held at its current value in coin (an approximation: on the
        exchange it moves with the positions' notional).  None when no move in
        ``[max_down, max_up]`` gets there; 0 when the account is already at or below it.
        """
        if self._opt_size.size == 0:
            if self.equity_coin <= maintenance_margin_coin:
                return 0.0
            return self._linear_liquidation_move(maintenance_margin_coin, max_up=max_up, max_down=max_down)
        return self._searched_liquidation_move(maintenance_margin_coin, max_up=max_up, max_down=max_down)

    def _searched_liquidation_move(
        self, maintenance_margin_coin: float, *, max_up: float, max_down: float
    ) -> float | None:
        """A scan of both sides for the first crossing, then vectorised multisection.

        Each round revalues the book at 65 points inside every bracket in one call (the cost of
        a call barely depends on the number of points), shrinking the brackets 64-fold to 1e-6; a
        last linear interpolation inside that bracket leaves an error of order its square.
        """
        sides = (np.geomspace(1e-4, max_up, 20), -np.geomspace(1e-4, -max_down, 20))
        scanned = self.equity_coin_at(np.concatenate([[0.0], *sides])) - maintenance_margin_coin
        if scanned[0] <= 0:
            return 0.0
        gaps = np.split(scanned[1:], 2)
        brackets = []
        for points, values in zip(sides, gaps, strict=True):
            breached = np.flatnonzero(values <= 0)
            if breached.size:
                i = int(breached[0])
                brackets.append((0.0 if i == 0 else float(points[i - 1]), float(points[i])))
        if not brackets:
            return None
        safe = np.array([b[0] for b in brackets])
        breach = np.array([b[1] for b in brackets])
        steps = np.linspace(0.0, 1.0, 65)
        for _ in range(12):
            if np.max(np.abs(breach - safe)) < 1e-6:
                break
            grid = safe[:, None] + (breach - safe)[:, None] * steps[None, :]
            over = (self.equity_coin_at(grid.ravel()) - maintenance_margin_coin).reshape(grid.shape) <= 0
            first = np.argmax(over, axis=1)  # the grid's end is a breach, so each row has one
            rows = np.arange(grid.shape[0])
            safe, breach = grid[rows, np.maximum(first - 1, 0)], grid[rows, first]
        gap_safe, gap_breach = np.split(
            self.equity_coin_at(np.concatenate([safe, breach])) - maintenance_margin_coin, 2
        )
        span = gap_safe - gap_breach
        weight = np.divide(gap_safe, span, out=np.ones_like(span), where=span > 0)
        moves = safe + (breach - safe) * weight
        return float(moves[np.argmin(np.abs(moves))])

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
