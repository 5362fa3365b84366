"""Deribit's published portfolio-margin (PM) parameters and the scenarios they define (pure).

One place for the parameters: the simulator's PM margin (:mod:`controller.sim.portfolio_margin`)
and the controller's scenario grid (:func:`controller.risk.scenarios.deribit_pm_grid`) both read
them from here (``pricing`` is the one package both may import).

Source: Deribit, "Portfolio Margin" (https://support.deribit.com/hc/en-us/articles/25944756247837-
Portfolio-Margin) for the model, and the parameters as ``private/pme/simulate`` publishes them
(docs.deribit.com/api-reference/account-management/private-simulate, example of 2024-06-17 for
BTC; a captured mainnet reply of 2026-02-15 for ETH, in the public-code index as file 53105521535;
both in ``tests/fixtures/deribit/``).

* Standard table: the underlying moves over ``±price_range`` in ``buckets`` evenly spaced points,
  each with the volatility up, unchanged and down.
* Extended table: the moves :data:`EXTENDED_MOVES`, only with the volatility up (then, for the
  margin, a fraction ``extended_table_factor`` of the P&L and a dampener).
* Volatility shocks scale with the option's tenor.  Deribit publishes the parameters, not the
  formula; read as a third-party reimplementation gives it (docs.oreome.com, "Advanced Risk
  Scenarios"): with ``d`` the days to expiry (at least one) and ``p`` the short-term vega power
  below 30 days, the long-term one from 30 days,

      up   σ' = max(σ·(1 + volatility_range_up·(30/d)^p), min_volatility_for_shock_up)
      down σ' = max(σ·(1 − volatility_range_down·(30/d)^p), 0)

Units: moves and volatilities are decimals (0.16 is 16 %), time in ACT/365 years, the dampener in
USD, the roll shock in coin per coin of futures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from pricing._inputs import FloatArray

SOURCE = (
    "Deribit, Portfolio Margin (support.deribit.com/hc/en-us/articles/25944756247837); parameters "
    "of private/pme/simulate (docs.deribit.com, example of 2024-06-17 for BTC; mainnet reply of "
    "2026-02-15 for ETH)"
)
EXTENDED_MOVES = (-0.66, -0.33, 0.50, 1.00, 2.00, 3.00, 4.00, 5.00)  # relative moves of the index
SHORT_TERM_DAYS = 30.0  # below this, the short-term vega power; the shocks are those of 30 days at 30


@dataclass(frozen=True)
class PortfolioMarginParams:
    """One currency's published PM parameters (names as ``private/pme/simulate`` spells them)."""

    price_range: float  # the standard table's largest move, decimal
    volatility_range_up: float  # the 30-day relative vol shock up, decimal
    volatility_range_down: float  # the 30-day relative vol shock down, decimal
    min_volatility_for_shock_up: float  # the floor of an option's vol under "up", decimal
    short_term_vega_power: float
    long_term_vega_power: float
    extended_table_factor: float  # the fraction of the extended table's P&L that counts
    extended_dampener: float  # USD
    pnl_offset: float  # the fraction of a gain that offsets losses
    min_annualised_move: float  # the roll shock per coin of futures
    mm_factor: float  # maintenance margin = mm_factor × initial
    buckets: int = 9  # points of the standard table's price range


PM_PARAMS: dict[str, PortfolioMarginParams] = {
    "BTC": PortfolioMarginParams(
        price_range=0.16,
        volatility_range_up=0.5,
        volatility_range_down=0.25,
        min_volatility_for_shock_up=0.5,
        short_term_vega_power=0.3,
        long_term_vega_power=0.13,
        extended_table_factor=1.0,
        extended_dampener=100_000.0,
        pnl_offset=0.0,
        min_annualised_move=0.01,
        mm_factor=0.8,
    ),
    "ETH": PortfolioMarginParams(
        price_range=0.18,
        volatility_range_up=0.4,
        volatility_range_down=0.25,
        min_volatility_for_shock_up=0.5,
        short_term_vega_power=0.3,
        long_term_vega_power=0.13,
        extended_table_factor=1.0,
        extended_dampener=200_000.0,
        pnl_offset=0.6,
        min_annualised_move=0.005,
        mm_factor=0.8,
    ),
}


def standard_moves(*, params: PortfolioMarginParams) -> FloatArray:
    """The standard table's relative moves of the index, ``−price_range … +price_range``."""
    return np.linspace(-params.price_range, params.price_range, params.buckets)


def shocked_vols(
    *, vol: ArrayLike, t_years: ArrayLike, params: PortfolioMarginParams
) -> tuple[FloatArray, FloatArray]:
    """(up, down) volatility of options (decimal) of Black vol ``vol`` and ``t_years`` (ACT/365) to
    expiry under the "up" and "down" scenarios; broadcast, element by element."""
    v = np.asarray(vol, dtype=float)
    days = np.maximum(np.asarray(t_years, dtype=float) * 365.0, 1.0)
    power = np.where(days < SHORT_TERM_DAYS, params.short_term_vega_power, params.long_term_vega_power)
    scale = (SHORT_TERM_DAYS / days) ** power
    up = np.maximum(v * (1.0 + params.volatility_range_up * scale), params.min_volatility_for_shock_up)
    down = np.maximum(v * (1.0 - params.volatility_range_down * scale), 0.0)
    return up, down


@dataclass(frozen=True)
class TenorVolShock:
    """A scenario's volatility shock that depends on each option's tenor and IV (PM "up"/"down")."""

    direction: Literal["up", "down"]
    params: PortfolioMarginParams

    def factors(self, *, vol: ArrayLike, t_years: ArrayLike) -> FloatArray:
        """σ'/σ of each option (vol decimal, t_years ACT/365); 1 where σ is 0 (a factor cannot lift
        a zero volatility to the "up" floor)."""
        v = np.asarray(vol, dtype=float)
        up, down = shocked_vols(vol=v, t_years=t_years, params=self.params)
        shocked = up if self.direction == "up" else down
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0.0, shocked / np.where(v > 0.0, v, 1.0), 1.0)


__all__ = [
    "EXTENDED_MOVES",
    "PM_PARAMS",
    "SOURCE",
    "PortfolioMarginParams",
    "TenorVolShock",
    "shocked_vols",
    "standard_moves",
]
