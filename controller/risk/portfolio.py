"""One account, several currencies: the book's risk in USD and the portfolio's leverage target (pure).

With ``Δ`` the vector of each currency's total USD delta (collateral, options, futures and the
hedge perpetual; DESIGN §3's ``Δ_usd`` per currency), ``σ`` each currency's σ̂ (annualised,
decimal) and ``ρ`` the correlation of their index returns (:mod:`controller.risk.correlation`)::

    Σᵢⱼ = ρᵢⱼ·σᵢ·σⱼ                    σ_book = sqrt(Δᵀ Σ Δ)   (USD, annualised)
    portfolio leverage = Σᵢ |Δᵢ| / E   risk leverage = σ_book / (E · σ_ref)
    risk contribution  RCᵢ = Δᵢ · (ΣΔ)ᵢ / σ_book     (Σᵢ RCᵢ = σ_book: Euler)

With one currency the risk leverage is DESIGN §3's ``L_iv`` (``|Δ|·σ̂ / (E·σ_ref)``).

The portfolio target keeps ``σ_book / E`` at ``target_vol`` (the single-currency rule's
``L_base · σ_ref``, :func:`controller.risk.policy.target_leverage`) by choosing each currency's goal
``Δ*``, hedged on that currency's own perpetual (``hedge change = Δ* − Δ``).  Goals are
``Δ* = k·a + b``:

* ``b`` is the frozen currencies' exposure as it is (stale data: their hedges do not move);
* ``a`` is the shape of the free currencies — ``"proportional"``: today's exposure ``sᵢ·|Δᵢ|``;
  ``"equal_risk"``: the vector of the free currencies whose risk contributions (within that
  sub-book) are equal, with signs ``sᵢ`` (:func:`equal_risk_shape`);
* ``k ≥ 0`` solves ``σ_book(k·a + b) = target_vol · E``, a quadratic in ``k``; of two
  non-negative roots the smaller (less exposure) is taken; when no ``k ≥ 0`` reaches the target
  (the frozen exposure alone is above it), ``k`` minimises ``σ_book`` instead, with a reason;
* then ``k`` is clamped so the portfolio leverage stays in ``[min_leverage, max_leverage]``, as
  ``L*`` is clamped to ``[L_min, L_max]`` for one currency.

Signs ``s`` default to today's (long where a currency has no exposure); a long-mode controller
passes +1 for every currency.  With ρ = 1 and equal σ̂ the goals sum to the single-currency goal
``L*·E``; with one currency they are that goal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SPLITS = ("proportional", "equal_risk")
ERC_TOLERANCE = 1e-12  # |yᵢ·(Σ′y)ᵢ − 1|, relative to the terms' size, at which the solver stops
ERC_MAX_STEPS = 200


def covariance(*, sigma: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """``Σᵢⱼ = ρᵢⱼ·σᵢ·σⱼ`` (annualised, decimal²), after checking σ ≥ 0 and ρ (symmetric, unit diagonal)."""
    sigma, rho = np.asarray(sigma, dtype=float), np.asarray(correlation, dtype=float)
    n = sigma.size
    if sigma.ndim != 1 or rho.shape != (n, n):
        raise ValueError(f"need σ of shape (n,) and ρ of shape (n, n), got {sigma.shape} and {rho.shape}")
    if not (np.all(np.isfinite(sigma)) and np.all(sigma >= 0)):
        raise ValueError(f"σ must be finite and >= 0, got {sigma}")
    ok = np.all(np.isfinite(rho)) and np.all(np.abs(rho) <= 1.0 + 1e-12)
    if not (ok and np.allclose(rho, rho.T, atol=1e-12) and np.allclose(np.diag(rho), 1.0, atol=1e-12)):
        raise ValueError(f"ρ must be symmetric with a unit diagonal and entries in [-1, 1], got {rho}")
    return rho * np.outer(sigma, sigma)


def book_vol_usd(*, delta_usd: np.ndarray, sigma: np.ndarray, correlation: np.ndarray) -> float:
    """``σ_book = sqrt(Δᵀ Σ Δ)``: the book's volatility in USD per year (Δ in USD, σ annualised)."""
    return _vol(_delta(delta_usd, np.asarray(sigma).size), covariance(sigma=sigma, correlation=correlation))


def portfolio_leverage(*, delta_usd: np.ndarray, equity_usd: float) -> float:
    """``Σ |Δ_usd| / E``: the currencies' leverages added, hedges netting only within a currency."""
    _check_equity(equity_usd)
    return float(np.sum(np.abs(np.asarray(delta_usd, dtype=float)))) / equity_usd


def risk_leverage(*, book_vol_usd: float, equity_usd: float, reference_vol: float) -> float:
    """``σ_book / (E · σ_ref)``: the leverage of one asset at the reference vol that carries the same risk."""
    _check_equity(equity_usd)
    if not reference_vol > 0:
        raise ValueError(f"reference_vol must be positive, got {reference_vol}")
    return book_vol_usd / (equity_usd * reference_vol)


def risk_contributions(*, delta_usd: np.ndarray, sigma: np.ndarray, correlation: np.ndarray) -> np.ndarray:
    """Each currency's share of σ_book (USD): ``Δᵢ·(ΣΔ)ᵢ / σ_book``; they add up to σ_book
    (all zero when σ_book is)."""
    cov = covariance(sigma=sigma, correlation=correlation)
    delta = _delta(delta_usd, cov.shape[0])
    vol = _vol(delta, cov)
    return np.zeros_like(delta) if vol == 0 else delta * (cov @ delta) / vol


def equal_risk_shape(*, covariance: np.ndarray, signs: np.ndarray) -> np.ndarray | None:
    """The exposure vector with signs ``signs`` whose risk contributions are all equal, scaled to a
    book vol of 1; None when there is none (ρ = −1 between two currencies held the same way, say).

    With ``Σ′ = SΣS`` and ``y = S·Δ > 0`` the conditions ``yᵢ·(Σ′y)ᵢ = 1`` are the stationary point
    of the strictly convex ``f(y) = ½yᵀΣ′y − Σ ln yᵢ`` (Maillard, Roncalli & Teïletche 2010).  ``f``
    is self-concordant, so damped Newton steps ``y += δ / (1 + λ)`` (``λ`` the Newton decrement) stay
    inside ``y > 0``, decrease ``f`` without a line search (none of ``f``'s rounding near the
    optimum) and turn into full, quadratically converging steps near it (Nesterov 2004, §4.1.5).
    Every σᵢ must be positive.
    """
    s = np.where(np.asarray(signs, dtype=float) < 0, -1.0, 1.0)
    cov = np.asarray(covariance, dtype=float) * np.outer(s, s)
    if not np.all(np.diag(cov) > 0):
        raise ValueError("equal risk contributions need every σ positive")
    y = 1.0 / np.sqrt(np.diag(cov))
    for _ in range(ERC_MAX_STEPS):
        if not np.all(np.isfinite(y)) or np.max(y * np.sqrt(np.diag(cov))) > 1e4:
            return None  # running off along a (nearly) riskless direction: no (well-posed) minimum
        contributions = y * (cov @ y)
        rounding = np.max(y * (np.abs(cov) @ y))  # the size of the terms that cancel in (Σ′y)ᵢ
        hessian = cov + np.diag(1.0 / y**2)
        try:
            step = np.linalg.solve(hessian, 1.0 / y - cov @ y)
        except np.linalg.LinAlgError:
            return None
        decrement = math.sqrt(max(float(step @ hessian @ step), 0.0))
        if np.max(np.abs(contributions - 1.0)) <= ERC_TOLERANCE * max(1.0, rounding) or decrement < 1e-13:
            return s * y / math.sqrt(float(y @ cov @ y))
        y = y + step / (1.0 + decrement)
    return None


@dataclass(frozen=True)
class CurrencyGoal:
    currency: str
    delta_usd: float  # today's total Δ_usd
    goal_delta_usd: float  # Δ*: the total Δ_usd aimed at
    hedge_change_usd: float  # Δ* − Δ, to be traded on the currency's perpetual (0 when frozen)
    goal_hedge_usd: float  # the hedge's Δ_usd at the goal: today's hedge + the change
    risk_contribution_usd: float  # RC at the goal
    frozen: bool


@dataclass(frozen=True)
class PortfolioTarget:
    goals: tuple[CurrencyGoal, ...]
    split: str
    target_vol: float  # σ_book / E aimed at, annualised decimal
    book_vol_usd: float  # today
    goal_book_vol_usd: float  # at the goals
    goal_leverage: float  # Σ|Δ*| / E
    scale: float  # k
    reasons: tuple[str, ...]

    def goal(self, currency: str) -> CurrencyGoal:
        return next(g for g in self.goals if g.currency == currency)


def portfolio_target(
    *,
    currencies: Sequence[str],
    unhedged_delta_usd: np.ndarray,
    hedge_delta_usd: np.ndarray,
    sigma: np.ndarray,
    correlation: np.ndarray,
    equity_usd: float,
    target_vol: float,
    min_leverage: float = 0.0,
    max_leverage: float = math.inf,
    split: str = "proportional",
    frozen: frozenset[str] = frozenset(),
    signs: np.ndarray | None = None,
    currency_max_usd: np.ndarray | None = None,
) -> PortfolioTarget:
    """Each currency's goal Δ* and hedge change (module docstring), arrays in the order of ``currencies``.

    ``unhedged_delta_usd``: the Δ_usd of everything but the hedge perpetual (collateral, options,
    other futures); ``hedge_delta_usd``: the hedge perpetual's; ``target_vol``: σ_book / E aimed at;
    ``currency_max_usd``: the largest |Δ*ᵢ| each currency can hold (its own leverage cap times its own
    equity: on Deribit each currency's wallet is margined on its own).  A currency whose goal passes
    its cap is held there and the others are scaled again to carry the rest of the target.
    """
    n = len(currencies)
    if len(set(currencies)) != n or not n:
        raise ValueError(f"currencies must be distinct and at least one, got {list(currencies)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if unknown := frozen - set(currencies):
        raise ValueError(f"frozen currencies {sorted(unknown)} are not in {list(currencies)}")
    if not (target_vol >= 0 and 0 <= min_leverage <= max_leverage):
        raise ValueError("need target_vol >= 0 and 0 <= min_leverage <= max_leverage")
    _check_equity(equity_usd)
    cov = covariance(sigma=sigma, correlation=correlation)
    unhedged, hedge = _delta(unhedged_delta_usd, n), _delta(hedge_delta_usd, n)
    today = unhedged + hedge
    s = np.where(today < 0, -1.0, 1.0) if signs is None else np.where(np.asarray(signs) < 0, -1.0, 1.0)
    free = np.array([c not in frozen for c in currencies])
    reasons = [f"{c}: data stale, hedge frozen" for c in currencies if c in frozen]
    caps = np.full(n, np.inf) if currency_max_usd is None else np.asarray(currency_max_usd, dtype=float)
    fixed = np.where(free, 0.0, today)
    k, shape, capped = 1.0, np.zeros(n), np.zeros(n, dtype=bool)
    if not free.any():
        reasons.append("every currency frozen: no hedge changes")
    while (scaled := free & ~capped).any():
        shape, note = _shape(split, cov, s, today, scaled)
        k, why = _scale(shape, fixed, cov, target_vol * equity_usd)
        k, limit = _clamp(k, shape, fixed, equity_usd=equity_usd, low=min_leverage, high=max_leverage)
        over = scaled & (np.abs(k * shape) > caps * (1 + 1e-12))
        if not over.any():
            reasons += note + why + limit
            break
        capped |= over
        fixed = np.where(over, s * caps, fixed)
        reasons += [
            f"{c}: its goal passes its own leverage cap: held there"
            for c, o in zip(currencies, over, strict=True)
            if o
        ]
    else:
        if capped.any():
            shape, k = np.zeros(n), 1.0
            reasons.append("every free currency at its cap: the book's vol stays below the target")
    goal = k * shape + fixed
    contributions = risk_contributions(delta_usd=goal, sigma=sigma, correlation=correlation)
    goals = tuple(
        CurrencyGoal(
            currency=c,
            delta_usd=float(today[i]),
            goal_delta_usd=float(goal[i]),
            hedge_change_usd=float(goal[i] - today[i]) if free[i] else 0.0,
            goal_hedge_usd=float(goal[i] - unhedged[i]),
            risk_contribution_usd=float(contributions[i]),
            frozen=not free[i],
        )
        for i, c in enumerate(currencies)
    )
    return PortfolioTarget(
        goals=goals,
        split=split,
        target_vol=target_vol,
        book_vol_usd=_vol(today, cov),
        goal_book_vol_usd=_vol(goal, cov),
        goal_leverage=float(np.sum(np.abs(goal))) / equity_usd,
        scale=k,
        reasons=tuple(reasons),
    )


def _shape(
    split: str, cov: np.ndarray, s: np.ndarray, today: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """The free currencies' exposure to be scaled (zero on the frozen ones), and notes."""
    shape = np.zeros_like(today)
    if split == "equal_risk":
        erc = equal_risk_shape(covariance=cov[np.ix_(free, free)], signs=s[free])
        if erc is not None:
            shape[free] = erc
            return shape, []
        note = "equal risk contributions have no solution with these signs: proportional split used"
        return _shape("proportional", cov, s, today, free)[0], [note]
    shape[free] = s[free] * np.abs(today[free])
    return shape, []


def _scale(
    shape: np.ndarray, fixed: np.ndarray, cov: np.ndarray, target_usd: float
) -> tuple[float, list[str]]:
    """``k ≥ 0`` with ``(k·a + b)ᵀΣ(k·a + b) = T²``: ``A·k² + 2B·k + C − T² = 0``."""
    a, b, c = float(shape @ cov @ shape), float(shape @ cov @ fixed), float(fixed @ cov @ fixed)
    if not a > (1e-12 * target_usd) ** 2:  # k would pass 10¹²: nothing there to scale
        return 1.0, ["the free currencies carry no volatility to scale: exposure kept"]
    disc = b * b - a * (c - target_usd**2)
    roots = (
        [] if disc < 0 else [r for r in ((-b - math.sqrt(disc)) / a, (-b + math.sqrt(disc)) / a) if r >= 0]
    )
    if roots:
        return min(roots), []
    least = (
        "the frozen exposure keeps the book's vol above the target: the free exposure at its least-risk scale"
    )
    return max(-b / a, 0.0), [least]


def _clamp(
    k: float, shape: np.ndarray, fixed: np.ndarray, *, equity_usd: float, low: float, high: float
) -> tuple[float, list[str]]:
    """``k`` within the portfolio-leverage bounds: ``(k·Σ|a| + Σ|b|) / E`` in ``[low, high]``."""
    gross_a, gross_b = float(np.sum(np.abs(shape))), float(np.sum(np.abs(fixed)))
    if gross_a == 0:
        return k, []
    k_low = max((low * equity_usd - gross_b) / gross_a, 0.0)
    k_high = max((high * equity_usd - gross_b) / gross_a, 0.0)
    if k > k_high:
        return k_high, [f"portfolio leverage held at its maximum {high:g}x"]
    if k < k_low:
        return k_low, [f"portfolio leverage held at its minimum {low:g}x"]
    return k, []


def hedge_in_lots(
    *, change_usd: float, usd_per_unit: float, lot: float, max_units: float
) -> tuple[float, bool]:
    """A hedge change in venue units: the nearest whole number of lots, at most ``max_units``
    (floored to lots); and whether the cap cut it.  ``usd_per_unit``: Δ_usd per unit of the
    perpetual's amount (``S/mark`` for an inverse perpetual, ``S`` for a linear one), as in
    :func:`controller.risk.policy.size_hedge`."""
    if not (usd_per_unit > 0 and lot > 0 and max_units >= 0):
        raise ValueError("need usd_per_unit > 0, lot > 0 and max_units >= 0")
    amount = round(change_usd / usd_per_unit / lot) * lot
    cap = math.floor(max_units / lot + 1e-9) * lot
    if abs(amount) > cap:
        return math.copysign(cap, amount), True
    return amount, False


def _delta(delta_usd: np.ndarray, n: int) -> np.ndarray:
    delta = np.asarray(delta_usd, dtype=float)
    if delta.shape != (n,) or not np.all(np.isfinite(delta)):
        raise ValueError(f"Δ_usd must be {n} finite numbers, got {delta}")
    return delta


def _vol(delta: np.ndarray, cov: np.ndarray) -> float:
    q = float(delta @ cov @ delta)
    if q < -1e-9 * float(np.abs(delta) @ np.abs(cov) @ np.abs(delta)):
        raise ValueError("the correlation matrix is not positive semi-definite")
    return math.sqrt(max(q, 0.0))


def _check_equity(equity_usd: float) -> None:
    if not (equity_usd > 0 and math.isfinite(equity_usd)):
        raise ValueError(f"equity must be positive and finite, got {equity_usd}")
