"""Book greeks: positions priced at their marks and aggregated per underlying and per expiry.

Units (DESIGN §2):

* ``size`` – signed; coin for options and linear perpetuals/futures, USD for inverse
  (coin-margined) perpetuals and futures (Deribit's ``size`` of BTC-PERPETUAL);
* ``delta`` – coin of the underlying.  Options: ``size × Black delta``; coin-settled (inverse)
  options are premium-adjusted, ``size × (Black delta − mark price in coin)`` (Deribit's "net
  transaction delta").  Inverse perpetuals/futures: ``size_usd / mark``.  Linear: ``size``;
* ``gamma`` – coin per USD of underlying (``size × Γ``);
* ``dollar_gamma_usd`` – USD change of dollar-delta for a 1 % move of the underlying:
  ``size × Γ × F × S / 100`` (Γ is taken w.r.t. the forward F, which moves 1 % with the index S);
* ``vega_usd`` – USD per volatility point; ``theta_usd`` – USD per calendar day;
* ``value_usd`` – model value of option positions at mark IV (perpetuals and futures: 0, their
  P&L is already in equity); ``notional_usd`` – gross underlying exposure ``|size| × S`` (USD size
  for inverse perpetuals/futures).

The collateral of a coin-margined account is itself long the coin: the per-underlying
``delta`` includes ``collateral`` (equity in coin), ``positions_delta`` leaves it out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from pricing.black76 import greeks
from pricing.instruments import Future, Instrument, Option, Perpetual, deribit_expiry_code, year_fraction


class BookError(ValueError):
    """A position or market figure needed to price the book is missing or invalid."""


@dataclass(frozen=True)
class Position:
    """One position with the market figures needed to price it.

    ``mark_price`` follows the exchange's quote: coin per unit of underlying for coin-settled
    options (Deribit's ``mark_price``), USD otherwise.  ``underlying_price`` is the option's
    forward F in USD and ``mark_iv`` its volatility as a decimal; both are needed for options only.
    """

    instrument: Instrument
    size: float
    mark_price: float
    underlying_price: float | None = None
    mark_iv: float | None = None


@dataclass(frozen=True)
class PositionRisk:
    """Greeks of one position in book units (see the module docstring)."""

    name: str
    underlying: str
    kind: str
    expiry: datetime | None
    size: float
    delta: float
    black_delta: float
    gamma: float
    dollar_gamma_usd: float
    vega_usd: float
    theta_usd: float
    value_usd: float
    notional_usd: float

    @property
    def expiry_label(self) -> str:
        return "PERPETUAL" if self.expiry is None else deribit_expiry_code(self.expiry)


@dataclass(frozen=True)
class RiskTotals:
    delta: float  # coin (within one underlying)
    gamma: float
    dollar_gamma_usd: float
    vega_usd: float
    theta_usd: float
    value_usd: float
    notional_usd: float

    @staticmethod
    def of(rows: Iterable[PositionRisk]) -> RiskTotals:
        rows = list(rows)
        return RiskTotals(
            delta=math.fsum(r.delta for r in rows),
            gamma=math.fsum(r.gamma for r in rows),
            dollar_gamma_usd=math.fsum(r.dollar_gamma_usd for r in rows),
            vega_usd=math.fsum(r.vega_usd for r in rows),
            theta_usd=math.fsum(r.theta_usd for r in rows),
            value_usd=math.fsum(r.value_usd for r in rows),
            notional_usd=math.fsum(r.notional_usd for r in rows),
        )


@dataclass(frozen=True)
class UnderlyingRisk:
    """Everything on one underlying coin; ``delta`` includes the coin collateral."""

    underlying: str
    index_price: float
    collateral: float  # coin equity counted as a long exposure (0 for a linear account)
    positions: RiskTotals
    by_expiry: Mapping[str, RiskTotals]

    @property
    def positions_delta(self) -> float:
        return self.positions.delta

    @property
    def delta(self) -> float:
        return self.positions.delta + self.collateral

    @property
    def delta_usd(self) -> float:
        return self.delta * self.index_price


@dataclass(frozen=True)
class BookGreeks:
    as_of: datetime
    positions: tuple[PositionRisk, ...]
    underlyings: Mapping[str, UnderlyingRisk] = field(default_factory=dict)

    @property
    def delta_usd(self) -> float:
        """Book delta in USD across underlyings, collateral included."""
        return math.fsum(u.delta_usd for u in self.underlyings.values())

    @property
    def dollar_gamma_usd(self) -> float:
        return math.fsum(u.positions.dollar_gamma_usd for u in self.underlyings.values())

    @property
    def vega_usd(self) -> float:
        return math.fsum(u.positions.vega_usd for u in self.underlyings.values())

    @property
    def theta_usd(self) -> float:
        return math.fsum(u.positions.theta_usd for u in self.underlyings.values())

    @property
    def notional_usd(self) -> float:
        return math.fsum(u.positions.notional_usd for u in self.underlyings.values())

    def drivers(self, metric: str, top: int = 5) -> list[PositionRisk]:
        """The positions contributing most to ``metric`` (e.g. ``"vega_usd"``), by magnitude."""
        if metric not in PositionRisk.__dataclass_fields__:
            raise ValueError(f"unknown metric {metric!r}")
        rows = sorted(self.positions, key=lambda r: abs(getattr(r, metric)), reverse=True)
        return rows[:top]


def book_greeks(
    positions: Sequence[Position],
    *,
    as_of: datetime,
    index_prices: Mapping[str, float],
    collateral: Mapping[str, float] | None = None,
    rate: float = 0.0,
) -> BookGreeks:
    """Price every position at its mark and aggregate per underlying and per expiry.

    Args:
        positions: the book.
        as_of: valuation time (tz-aware UTC); options past expiry are worth intrinsic value.
        index_prices: USD index price per underlying coin, e.g. ``{"BTC": 61234.5}``.
        collateral: account equity per currency in that currency, e.g. ``{"BTC": 10.0}`` for a
            coin-margined account; a coin's equity adds to that coin's delta.  Stablecoins add none.
        rate: discount rate for options (0 on Deribit).

    Raises :class:`BookError` naming the position and figure when something is missing or not
    a finite number; a book is never priced on a silent NaN.
    """
    collateral = dict(collateral or {})
    rows = _price_positions(positions, as_of=as_of, index_prices=index_prices, rate=rate)
    coins = sorted({r.underlying for r in rows} | {c for c in collateral if c in index_prices})
    underlyings: dict[str, UnderlyingRisk] = {}
    for coin in coins:
        mine = [r for r in rows if r.underlying == coin]
        groups: dict[str, list[PositionRisk]] = {}
        expiry_of: dict[str, datetime | None] = {}
        for r in mine:  # one pass: labels are computed once per position
            label = r.expiry_label
            groups.setdefault(label, []).append(r)
            expiry_of[label] = r.expiry
        underlyings[coin] = UnderlyingRisk(
            underlying=coin,
            index_price=_index(index_prices, coin),
            collateral=_finite(collateral.get(coin, 0.0), f"collateral[{coin}]"),
            positions=RiskTotals.of(mine),
            by_expiry={
                label: RiskTotals.of(groups[label])
                for label, _ in sorted(expiry_of.items(), key=_expiry_order)
            },
        )
    return BookGreeks(as_of=as_of, positions=tuple(rows), underlyings=underlyings)


def _expiry_order(item: tuple[str, datetime | None]) -> tuple[int, datetime | str]:
    label, expiry = item
    return (1, label) if expiry is None else (0, expiry)


def _price_positions(
    positions: Sequence[Position], *, as_of: datetime, index_prices: Mapping[str, float], rate: float
) -> list[PositionRisk]:
    option_at = [i for i, p in enumerate(positions) if isinstance(p.instrument, Option)]
    priced = _price_options([positions[i] for i in option_at], as_of, index_prices, rate)
    rows: list[PositionRisk | None] = [None] * len(positions)
    for i, row in zip(option_at, priced, strict=True):
        rows[i] = row
    for i, p in enumerate(positions):
        if isinstance(p.instrument, Perpetual | Future):
            rows[i] = _linear_risk(p, _index(index_prices, p.instrument.underlying))
        elif not isinstance(p.instrument, Option):
            raise BookError(f"position {p!r}: unsupported instrument type")
    return [r for r in rows if r is not None]


def _price_options(
    options: list[Position], as_of: datetime, index_prices: Mapping[str, float], rate: float
) -> list[PositionRisk]:
    if not options:
        return []
    instruments: list[Option] = [p.instrument for p in options]  # type: ignore[misc]
    for p in options:
        name = p.instrument.name
        _finite(p.size, f"position {name}: size")
        if p.underlying_price is None or not (
            _finite(p.underlying_price, f"position {name}: underlying_price") > 0
        ):
            raise BookError(
                f"position {name}: underlying_price (the option's forward) must be a positive number"
            )
        if p.mark_iv is None or not (_finite(p.mark_iv, f"position {name}: mark_iv") >= 0):
            raise BookError(f"position {name}: mark_iv must be a non-negative decimal volatility")
    forward = np.array([p.underlying_price for p in options], dtype=float)
    g = greeks(
        forward=forward,
        strike=np.array([o.strike for o in instruments]),
        t_years=np.array([year_fraction(start=as_of, end=o.expiry) for o in instruments]),
        vol=np.array([p.mark_iv for p in options], dtype=float),
        is_call=np.array([o.is_call for o in instruments]),
        rate=rate,
        invalid="raise",
    )
    rows = []
    for i, (p, o) in enumerate(zip(options, instruments, strict=True)):
        spot = _index(index_prices, o.underlying)
        size = p.size
        black_delta = size * float(g.delta[i])
        premium_in_coin = float(g.price[i]) / forward[i]
        delta = black_delta - size * premium_in_coin if o.settlement == "inverse" else black_delta
        rows.append(
            PositionRisk(
                name=o.name,
                underlying=o.underlying,
                kind="option",
                expiry=o.expiry,
                size=size,
                delta=delta,
                black_delta=black_delta,
                gamma=size * float(g.gamma[i]),
                dollar_gamma_usd=size * float(g.gamma[i]) * forward[i] * spot / 100.0,
                vega_usd=size * float(g.vega[i]),
                theta_usd=size * float(g.theta[i]),
                value_usd=size * float(g.price[i]),
                notional_usd=abs(size) * spot,
            )
        )
    return rows


def _linear_risk(p: Position, spot: float) -> PositionRisk:
    """Perpetuals and futures: delta one, no convexity modelled at this level."""
    inst = p.instrument
    name = inst.name
    size = _finite(p.size, f"position {name}: size")
    if inst.settlement == "inverse":
        mark = _finite(p.mark_price, f"position {name}: mark_price")
        if mark <= 0:
            raise BookError(f"position {name}: mark_price must be positive, got {mark}")
        delta, notional = size / mark, abs(size)
    else:
        delta, notional = size, abs(size) * spot
    return PositionRisk(
        name=name,
        underlying=inst.underlying,
        kind=inst.kind,
        expiry=inst.expiry,
        size=size,
        delta=delta,
        black_delta=delta,
        gamma=0.0,
        dollar_gamma_usd=0.0,
        vega_usd=0.0,
        theta_usd=0.0,
        value_usd=0.0,
        notional_usd=notional,
    )


def _index(index_prices: Mapping[str, float], coin: str) -> float:
    if coin not in index_prices:
        raise BookError(f"no index price for underlying {coin!r} (have: {sorted(index_prices)})")
    value = _finite(index_prices[coin], f"index price of {coin}")
    if value <= 0:
        raise BookError(f"index price of {coin} must be positive, got {value}")
    return value


def _finite(value: float, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise BookError(f"{what} must be a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise BookError(f"{what} must be a finite number, got {value!r}")
    return number


__all__ = [
    "BookError",
    "BookGreeks",
    "Position",
    "PositionRisk",
    "RiskTotals",
    "UnderlyingRisk",
    "book_greeks",
]
