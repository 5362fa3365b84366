"""Deribit's segregated portfolio margin (S:PM) for a coin-margined account, in coin.

The model (Deribit, "Portfolio Margin",
https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin): the portfolio is
revalued under scenarios and the worst loss is the margin.

* Standard table: the underlying moves over ``±price_range`` in 9 evenly spaced buckets, each with
  the volatility up, unchanged and down — 27 scenarios.
* Extended table (aimed at large short out-of-the-money options): moves of −66 %, −33 %, +50 %,
  +100 %, +200 %, +300 %, +400 %, +500 %, only with the volatility up, only a fraction
  (``extended_table_factor``) of the simulated P&L, and a dampener.
* The margin of the risk matrix is the worst case plus contingencies; maintenance margin is
  ``mm_factor`` of it.

Parameters: ``private/pme/simulate`` publishes them (docs.deribit.com/api-reference/
account-management/private-simulate, example of 2024-06-17 for BTC; a captured mainnet reply of
2026-02-15 for ETH, in the public-code index as file 53105521535); they live, with that citation,
in :mod:`pricing.portfolio_margin`, where the controller's scenario grid reads them too.  Both
replies also publish their results, which the tests reproduce to the last digit:

* a position's P&L in coin for a move ``m`` is, for an inverse future of ``n`` coin, ``n·(1 − 1/(1+m))``;
  in the extended table a future keeps the P&L of the range's edge on its side;
* gains count at ``pnl_offset`` of their value (0 for BTC: only losses count);
* ``roll_shock`` = ``min_annualised_move`` × Σ |futures size in coin|;
* ``risk_matrix_margin`` = worst case (rounded to 1e-9 coin) + roll shock (+ delta shock and
  correlation contingency, both 0 in the published examples and 0 here), initial margin = that
  (+ open orders' margin), maintenance = ``mm_factor`` × it.

Not published, so read the way named here and stated in docs/simulator.md: an option's volatility
under the "up" scenario is ``max(σ·(1 + range_up·(30/d)^p), min_volatility_for_shock_up)``, "down"
``σ·(1 − range_down·(30/d)^p)``, with ``d`` the days to expiry (at least one) and ``p`` the short-
or long-term vega power below or from 30 days (the form a third-party reimplementation,
docs.oreome.com "Advanced Risk Scenarios", gives for these parameters); the dampener pulls an
extended scenario's P&L towards zero by ``extended_dampener × (|m| / price_range − 1)`` USD;
``annualised_move_risk`` (a longer future's roll shock) and the delta shock (above
``delta_total_liq_shock_threshold``) are not modelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pricing import black_price
from pricing.portfolio_margin import (
    EXTENDED_MOVES,
    PortfolioMarginParams,
    shocked_vols,
    standard_moves,
)

VOL_SCENARIOS = ("up", "same", "down")


@dataclass(frozen=True)
class PMInstrument:
    """What the model needs of an instrument: an inverse future (``strike`` None) or option."""

    name: str
    mark: float  # futures: USD; options: the forward is ``forward`` and the IV ``iv``
    forward: float = 0.0
    strike: float | None = None
    is_call: bool = True
    t_years: float = 0.0
    iv: float = 0.0

    @property
    def is_option(self) -> bool:
        return self.strike is not None


@dataclass(frozen=True)
class RiskVectors:
    """Coin P&L per unit of each instrument (USD of size for futures, coin for options) under the
    standard scenarios (9 moves × up/same/down, move-major) and the extended ones, and its roll shock."""

    names: tuple[str, ...]
    standard: np.ndarray  # (instruments, 27)
    extended: np.ndarray  # (instruments, 8)
    roll: np.ndarray  # (instruments,)


@dataclass(frozen=True)
class PortfolioMargin:
    worst_case: float
    roll_shock: float
    standard: np.ndarray  # the aggregated P&L per scenario (gains offset, extended dampened)
    extended: np.ndarray

    @property
    def risk_matrix_margin(self) -> float:
        """Worst case (rounded to 1e-9 coin, as the published example's sum shows) + roll shock."""
        return round(self.worst_case, 9) + self.roll_shock


def vol_shocks(iv: float, t_years: float, params: PortfolioMarginParams) -> tuple[float, float, float]:
    """(up, same, down) volatility of an option under the standard and extended scenarios."""
    up, down = shocked_vols(vol=iv, t_years=t_years, params=params)
    return float(up), iv, float(down)


def risk_vectors(items: Sequence[PMInstrument], params: PortfolioMarginParams) -> RiskVectors:
    moves = standard_moves(params=params)
    extended = np.array(EXTENDED_MOVES)
    standard_rows, extended_rows, roll = [], [], []
    for x in items:
        if x.is_option:
            up, same, down = vol_shocks(x.iv, x.t_years, params)
            standard_rows.append(_option_pnl(x, np.repeat(moves, 3), np.tile([up, same, down], moves.size)))
            extended_rows.append(_option_pnl(x, extended, np.full(extended.size, up)))
            roll.append(0.0)
        else:
            per_move = (1.0 - 1.0 / (1.0 + moves)) / x.mark  # coin per USD of an inverse future
            standard_rows.append(np.repeat(per_move, 3))
            edge = np.where(extended < 0, per_move[0], per_move[-1])  # the range's edge on its side
            extended_rows.append(edge)
            roll.append(params.min_annualised_move / x.mark)
    return RiskVectors(
        tuple(x.name for x in items),
        np.array(standard_rows).reshape(len(items), moves.size * 3),
        np.array(extended_rows).reshape(len(items), extended.size),
        np.array(roll),
    )


def _option_pnl(x: PMInstrument, moves: np.ndarray, vols: np.ndarray) -> np.ndarray:
    """Coin P&L of one long coin-settled option (value = Black-76 USD price / forward)."""
    assert x.strike is not None
    forward = x.forward * np.concatenate([[1.0], 1.0 + moves])
    vol = np.concatenate([[x.iv], vols])
    price = black_price(forward=forward, strike=x.strike, t_years=x.t_years, vol=vol, is_call=x.is_call)
    value = np.asarray(price) / forward  # coin
    return value[1:] - value[0]


def portfolio_margin(
    vectors: RiskVectors, sizes: np.ndarray, params: PortfolioMarginParams, *, index: float
) -> PortfolioMargin:
    """The margin of a portfolio holding ``sizes`` (aligned with ``vectors.names``)."""
    standard = _offset(sizes @ vectors.standard, params)
    raw_extended = params.extended_table_factor * (sizes @ vectors.extended)
    dampening = params.extended_dampener / index * (np.abs(EXTENDED_MOVES) / params.price_range - 1.0)
    extended = _offset(np.sign(raw_extended) * np.maximum(np.abs(raw_extended) - dampening, 0.0), params)
    worst = max(0.0, -float(min(standard.min(initial=0.0), extended.min(initial=0.0))))
    return PortfolioMargin(worst, float(np.abs(sizes) @ vectors.roll), standard, extended)


def _offset(pnl: np.ndarray, params: PortfolioMarginParams) -> np.ndarray:
    return np.where(pnl > 0.0, pnl * params.pnl_offset, pnl)


def margins(pm: PortfolioMargin, params: PortfolioMarginParams) -> tuple[float, float]:
    """(initial, maintenance) margin in coin."""
    risk = pm.risk_matrix_margin
    return risk, params.mm_factor * risk
