"""Named stresses of a book in several currencies: correlation to 1, one index moving β× another,
and the liquidation cascade (pure; the caller revalues each currency's positions).

Each currency's book is revalued by a callable ``revalue[c](moves, vol_shifts) -> P&L`` (USD, one
per scenario; moves relative, −0.1 is −10 %; vol shifts relative, +0.5 is implied vols × 1.5), e.g.
:meth:`controller.risk.scenarios.Revaluation.pnl_usd` of that currency's positions and collateral.
A joint scenario moves every index at once; the book's P&L is the sum of the currencies'.

* **correlation goes to 1**: ``σ_book`` with ρ = 1 is ``|Σᵢ Δᵢ·σᵢ|``; the scenario moves every index
  by ``k·σᵢ·√h`` the same way, up and down, and reports the worse (for a linear book its loss is
  ``k·√h·|Σᵢ Δᵢσᵢ|``).
* **β moves**: ``lead`` moves by ``±m``, every other index by ``βⱼ·m`` ("ETH moves 1.5× BTC":
  ``betas = {"ETH": 1.5}``; an index not named moves as the lead), the worse side reported.
* **cascade**: ``m_liq`` is the common relative move of all indices that takes the account's equity
  (USD) down to the maintenance margin (:func:`common_liquidation_move`).  Forced selling pushes
  the price on: the cascade move is ``m_liq·(1 + amplification)`` (kept inside the search's range)
  with implied vols up by ``vol_shift``.  Its loss is the worse of the loss at ``m_liq`` (vols
  unchanged) and at the cascade move: the price passes through the liquidation point on its way,
  and a book whose P&L turns back beyond it (long far out-of-the-money options) must not report a
  smaller loss than the liquidation itself.  For books without long options (collateral, futures,
  short options: P&L concave in the move, short vega) the loss grows with the amplification.
  ``distance = |m_liq|``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from controller.risk.liquidation import DEFAULT_MAX_DOWN, DEFAULT_MAX_UP, first_crossing, scan

Revalue = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class StressResult:
    label: str
    moves: dict[str, float]  # relative move of each index
    vol_shifts: dict[str, float]  # relative shift of each currency's implied vols
    pnl_usd: float

    @property
    def loss_usd(self) -> float:
        return max(-self.pnl_usd, 0.0)


@dataclass(frozen=True)
class CorrelationOneStress:
    book_vol_usd: float  # σ_book with every correlation at 1, USD annualised
    worst: StressResult  # the joint k-σ move in the direction that hurts


@dataclass(frozen=True)
class CascadeStress:
    amplification: float
    vol_shift: float
    liquidation_move: float | None  # m_liq, signed; None: no move in range liquidates
    cascade_move: float | None  # m_liq·(1 + amplification), inside the range
    liquidation_loss_usd: float | None  # at m_liq, vols unchanged
    cascade_pnl_usd: float | None  # at the cascade move, vols up
    loss_usd: float | None  # the worse of the two losses
    distance: float | None  # |m_liq|
    reason: str | None  # why there is no cascade figure, or a note


def linear_revalue(delta_usd: float) -> Revalue:
    """The revaluation of a book without options: ``P&L = Δ_usd · m`` whatever the vols do."""
    return lambda moves, vol_shifts: delta_usd * np.asarray(moves, dtype=float)


def joint_pnl(
    revalue: Mapping[str, Revalue], *, moves: Mapping[str, float], vol_shifts: Mapping[str, float]
) -> float:
    """The book's P&L (USD) in one joint scenario (a currency missing from ``vol_shifts``: unchanged)."""
    _check_moves(moves)
    return float(
        sum(revalue[c](np.array([moves[c]]), np.array([vol_shifts.get(c, 0.0)]))[0] for c in revalue)
    )


def correlation_one(
    *,
    delta_usd: Mapping[str, float],
    sigma: Mapping[str, float],
    k: float,
    horizon_days: float,
    revalue: Mapping[str, Revalue] | None = None,
    vol_shift: float = 0.0,
) -> CorrelationOneStress:
    """Every correlation at 1: σ_book (USD, annualised) and the worse joint ``±k·σᵢ·√h`` move,
    revalued by ``revalue`` (default: linear in each Δ_usd).  ``sigma``: σ̂ per currency, decimal."""
    if not (k > 0 and horizon_days > 0):
        raise ValueError("need k > 0 and horizon_days > 0")
    currencies = tuple(delta_usd)
    books = revalue or {c: linear_revalue(delta_usd[c]) for c in currencies}
    scale = k * math.sqrt(horizon_days / 365.0)
    sides = []
    for sign, word in ((1.0, "up"), (-1.0, "down")):
        moves = {c: sign * scale * sigma[c] for c in currencies}
        shifts = dict.fromkeys(currencies, vol_shift)
        pnl = joint_pnl(books, moves=moves, vol_shifts=shifts)
        sides.append(StressResult(f"correlation 1: every index {word} {k:g}σ", moves, shifts, pnl))
    book_vol = abs(sum(delta_usd[c] * sigma[c] for c in currencies))
    return CorrelationOneStress(book_vol, min(sides, key=lambda s: s.pnl_usd))


def relative_move(
    *,
    lead: str,
    lead_move: float,
    betas: Mapping[str, float],
    revalue: Mapping[str, Revalue],
    vol_shifts: Mapping[str, float] | None = None,
) -> StressResult:
    """``lead`` moves ``±lead_move``, each other index ``βⱼ`` times as much (1 where not named):
    the side that loses more (the upward side when they lose the same)."""
    if lead not in revalue or not set(betas) <= set(revalue):
        raise ValueError(f"lead {lead!r} and betas {sorted(betas)} must be among {sorted(revalue)}")
    shifts = dict(vol_shifts or {})
    named = ", ".join(f"{c} {b:g}×" for c, b in betas.items())
    sides = []
    for move in (abs(lead_move), -abs(lead_move)):
        moves = {c: move * (1.0 if c == lead else betas.get(c, 1.0)) for c in revalue}
        pnl = joint_pnl(revalue, moves=moves, vol_shifts=shifts)
        sides.append(StressResult(f"{lead} {move:+.0%}, {named}", moves, shifts, pnl))
    return min(sides, key=lambda s: s.pnl_usd)


def common_liquidation_move(
    *,
    revalue: Mapping[str, Revalue],
    equity_usd: float,
    maintenance_usd: float,
    max_up: float = DEFAULT_MAX_UP,
    max_down: float = DEFAULT_MAX_DOWN,
) -> float | None:
    """The smallest common move of every index (vols unchanged) at which equity (USD) falls to the
    maintenance margin, held at its current USD value; 0 when it is there already, None when no
    move in ``[max_down, max_up]`` gets there (:func:`controller.risk.liquidation.first_crossing`)."""
    if not -1.0 < max_down < 0.0 < max_up:
        raise ValueError(f"need -1 < max_down < 0 < max_up, got {max_down}, {max_up}")

    def gap(f: np.ndarray) -> np.ndarray:
        moves = np.asarray(f, dtype=float) - 1.0
        pnl = sum(book(moves, np.zeros_like(moves)) for book in revalue.values())
        return equity_usd - maintenance_usd + np.asarray(pnl, dtype=float)

    sides, points = scan(max_up, max_down)
    return first_crossing(gap, sides=sides, scanned=gap(1.0 + points))


def cascade(
    *,
    liquidation_move: float | None,
    amplification: float,
    vol_shift: float,
    revalue: Mapping[str, Revalue],
    max_up: float = DEFAULT_MAX_UP,
    max_down: float = DEFAULT_MAX_DOWN,
) -> CascadeStress:
    """The liquidation move extended by ``amplification`` (≥ 0) with vols up by ``vol_shift``."""
    if not (amplification >= 0 and vol_shift >= -1.0):
        raise ValueError(f"need amplification >= 0 and vol_shift >= -1, got {amplification}, {vol_shift}")
    if liquidation_move is None:
        reason = f"no common move in [{max_down:+.0%}, {max_up:+.0%}] liquidates the account"
        return CascadeStress(amplification, vol_shift, None, None, None, None, None, None, reason)
    move = min(max(liquidation_move * (1.0 + amplification), max_down), max_up)
    same = dict.fromkeys(revalue, liquidation_move)
    at_liquidation = joint_pnl(revalue, moves=same, vol_shifts={})
    at_cascade = joint_pnl(
        revalue, moves=dict.fromkeys(revalue, move), vol_shifts=dict.fromkeys(revalue, vol_shift)
    )
    loss = max(-at_liquidation, -at_cascade, 0.0)
    note = "equity already at or below the maintenance margin" if liquidation_move == 0 else None
    return CascadeStress(
        amplification,
        vol_shift,
        liquidation_move,
        move,
        max(-at_liquidation, 0.0),
        at_cascade,
        loss,
        abs(liquidation_move),
        note,
    )


def _check_moves(moves: Mapping[str, float]) -> None:
    bad = {c: m for c, m in moves.items() if not (m > -1.0 and math.isfinite(m))}
    if bad:
        raise ValueError(f"index moves must stay above -100 %: {bad}")
