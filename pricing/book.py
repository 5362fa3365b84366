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
from functools import cached_property
from itertools import chain
from typing import Protocol

import numpy as np

from pricing._inputs import FloatArray
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


class PricedPosition(Protocol):
    """What pricing a position reads: :class:`Position`, or any record with these fields (a venue's
    position snapshot), so that a book is priced without copying it first."""

    @property
    def instrument(self) -> Instrument: ...
    @property
    def size(self) -> float: ...
    @property
    def mark_price(self) -> float: ...
    @property
    def underlying_price(self) -> float | None: ...
    @property
    def mark_iv(self) -> float | None: ...


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
class PositionColumns:
    """Every position's greeks as columns, in book order (units of :class:`PositionRisk`)."""

    name: tuple[str, ...]
    underlying: tuple[str, ...]
    kind: tuple[str, ...]
    expiry: tuple[datetime | None, ...]
    size: FloatArray
    delta: FloatArray
    black_delta: FloatArray
    gamma: FloatArray
    dollar_gamma_usd: FloatArray
    vega_usd: FloatArray
    theta_usd: FloatArray
    value_usd: FloatArray
    notional_usd: FloatArray
    table: FloatArray = field(repr=False, compare=False)  # the nine number columns, as rows of one array

    def __len__(self) -> int:
        return len(self.name)

    def row(self, i: int) -> PositionRisk:
        numbers = (float(getattr(self, f)[i]) for f in _NUMBER_FIELDS)
        return PositionRisk(self.name[i], self.underlying[i], self.kind[i], self.expiry[i], *numbers)

    @cached_property
    def _totalled(self) -> FloatArray:
        return self.table[_TOTAL_ROWS]

    def totals(self, where: list[int] | None = None) -> RiskTotals:
        """Exactly rounded sums (``math.fsum``) of the totalled fields, over ``where`` or all."""
        rows = self._totalled if where is None else np.take(self._totalled, where, axis=1)
        return RiskTotals(*map(math.fsum, rows.tolist()))


_NUMBER_FIELDS = (
    "size",
    "delta",
    "black_delta",
    "gamma",
    "dollar_gamma_usd",
    "vega_usd",
    "theta_usd",
    "value_usd",
    "notional_usd",
)
_TOTAL_ROWS = np.array([_NUMBER_FIELDS.index(f) for f in RiskTotals.__dataclass_fields__])


@dataclass(frozen=True)
class BookGreeks:
    as_of: datetime
    columns: PositionColumns
    underlyings: Mapping[str, UnderlyingRisk] = field(default_factory=dict)

    @cached_property
    def positions(self) -> tuple[PositionRisk, ...]:
        """One :class:`PositionRisk` per position (built on first use: the columns are the data)."""
        c = self.columns  # the numbers converted in one go, not nine at a time per position
        return tuple(map(PositionRisk, c.name, c.underlying, c.kind, c.expiry, *c.table.tolist()))

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
        if metric not in _NUMBER_FIELDS:
            raise ValueError(f"unknown metric {metric!r}")
        order = np.argsort(-np.abs(getattr(self.columns, metric)), kind="stable")
        return [self.columns.row(int(i)) for i in order[:top]]


def book_greeks(
    positions: Sequence[PricedPosition],
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
    a finite number; a book is never priced on a silent NaN.  The options are priced in one
    vectorised call and every total is an exactly rounded sum (``math.fsum``).
    """
    collateral = dict(collateral or {})
    columns = _price_positions(positions, as_of=as_of, index_prices=index_prices, rate=rate)
    coins = sorted(set(columns.underlying) | {c for c in collateral if c in index_prices})
    labels: dict[datetime | None, str] = {}
    groups: dict[str, dict[str, list[int]]] = {coin: {} for coin in coins}
    expiry_of: dict[str, datetime | None] = {}
    for i, (coin, expiry) in enumerate(zip(columns.underlying, columns.expiry, strict=True)):
        label = labels.get(expiry)
        if label is None:
            label = labels[expiry] = "PERPETUAL" if expiry is None else deribit_expiry_code(expiry)
        groups[coin].setdefault(label, []).append(i)
        expiry_of[label] = expiry
    order = [label for label, _ in sorted(expiry_of.items(), key=_expiry_order)]
    underlyings = {}
    for coin in coins:
        mine = groups[coin]
        whole = columns.totals(None if len(coins) == 1 else list(chain.from_iterable(mine.values())))
        underlyings[coin] = UnderlyingRisk(
            underlying=coin,
            index_price=_index(index_prices, coin),
            collateral=_finite(collateral.get(coin, 0.0), f"collateral[{coin}]"),
            positions=whole,
            by_expiry={
                label: whole if len(mine) == 1 else columns.totals(mine[label])
                for label in order
                if label in mine
            },
        )
    return BookGreeks(as_of=as_of, columns=columns, underlyings=underlyings)


def _expiry_order(item: tuple[str, datetime | None]) -> tuple[int, datetime | str]:
    label, expiry = item
    return (1, label) if expiry is None else (0, expiry)


def _price_positions(
    positions: Sequence[PricedPosition], *, as_of: datetime, index_prices: Mapping[str, float], rate: float
) -> PositionColumns:
    n = len(positions)
    instruments = [p.instrument for p in positions]
    option_at = [i for i, x in enumerate(instruments) if isinstance(x, Option)]
    linear_at = [i for i, x in enumerate(instruments) if isinstance(x, Perpetual | Future)]
    if len(option_at) + len(linear_at) != n:
        bad = next(p for p in positions if not isinstance(p.instrument, Option | Perpetual | Future))
        raise BookError(f"position {bad!r}: unsupported instrument type")
    spots = {coin: _index(index_prices, coin) for coin in {x.underlying for x in instruments}}
    blocks = []  # (rows of the nine numbers, where those positions sit in the book)
    if option_at:
        blocks.append((_price_options([positions[i] for i in option_at], as_of, spots, rate), option_at))
    if linear_at:
        blocks.append((_linear_risk([positions[i] for i in linear_at], spots), linear_at))
    if len(blocks) == 1:  # one kind of position: the block is the table
        table = blocks[0][0]
    else:
        table = np.zeros((len(_NUMBER_FIELDS), n))
        for block, at in blocks:
            table[:, at] = block
    return PositionColumns(
        name=tuple(x.name for x in instruments),
        underlying=tuple(x.underlying for x in instruments),
        kind=tuple(x.kind for x in instruments),
        expiry=tuple(x.expiry for x in instruments),
        **dict(zip(_NUMBER_FIELDS, table, strict=True)),
        table=table,
    )


def _price_options(
    options: list[PricedPosition], as_of: datetime, spots: Mapping[str, float], rate: float
) -> FloatArray:
    """The nine numbers of option positions, as rows: one vectorised kernel call."""
    instruments: list[Option] = [p.instrument for p in options]  # type: ignore[misc]
    size, forward, vol = _numbers(options, ("size", "underlying_price", "mark_iv"))
    if not (np.isfinite(size + forward + vol).all() and forward.min() > 0 and vol.min() >= 0):
        for p in options:  # name the first offender, with the message a scalar check gives
            _check_option(p)
    years: dict[datetime, float] = {}  # a book has few expiries
    for o in instruments:
        if o.expiry not in years:
            years[o.expiry] = year_fraction(start=as_of, end=o.expiry)
    g = greeks(
        forward=forward,
        strike=np.array([o.strike for o in instruments]),
        t_years=np.array([years[o.expiry] for o in instruments]),
        vol=vol,
        is_call=np.array([o.is_call for o in instruments]),
        rate=rate,
        invalid="raise",
    )
    spot = np.array([spots[o.underlying] for o in instruments])
    inverse = np.array([o.settlement == "inverse" for o in instruments])
    black_delta = size * g.delta
    premium_in_coin = g.price / forward
    gamma = size * g.gamma
    return np.array(
        [
            size,
            np.where(inverse, black_delta - size * premium_in_coin, black_delta),
            black_delta,
            gamma,
            gamma * forward * spot / 100.0,
            size * g.vega,
            size * g.theta,
            size * g.price,
            np.abs(size) * spot,
        ]
    )


def _numbers(positions: list[PricedPosition], fields: tuple[str, ...]) -> list[FloatArray]:
    """Columns of floats (None → NaN); something that is not a number is named by the scalar checks."""
    try:
        return [
            np.array([np.nan if (v := getattr(p, f)) is None else v for p in positions], dtype=float)
            for f in fields
        ]
    except (TypeError, ValueError):
        for p in positions:
            for f in fields:
                value = getattr(p, f)
                if value is not None:
                    _finite(value, f"position {p.instrument.name}: {f}")
        raise


def _check_option(p: PricedPosition) -> None:
    name = p.instrument.name
    _finite(p.size, f"position {name}: size")
    if p.underlying_price is None or not (
        _finite(p.underlying_price, f"position {name}: underlying_price") > 0
    ):
        raise BookError(f"position {name}: underlying_price (the option's forward) must be a positive number")
    if p.mark_iv is None or not (_finite(p.mark_iv, f"position {name}: mark_iv") >= 0):
        raise BookError(f"position {name}: mark_iv must be a non-negative decimal volatility")


def _linear_risk(positions: list[PricedPosition], spots: Mapping[str, float]) -> FloatArray:
    """The nine numbers of perpetuals and futures, as rows: delta one, no convexity modelled at this
    level (plain arithmetic: no kernel to vectorise, and a book holds few of them)."""
    rows = []
    for p in positions:
        name = p.instrument.name
        size = _finite(p.size, f"position {name}: size")
        if p.instrument.settlement == "inverse":
            mark = _finite(p.mark_price, f"position {name}: mark_price")
            if mark <= 0:
                raise BookError(f"position {name}: mark_price must be positive, got {mark}")
            delta, notional = size / mark, abs(size)
        else:
            delta, notional = size, abs(size) * spots[p.instrument.underlying]
        rows.append((size, delta, delta, 0.0, 0.0, 0.0, 0.0, 0.0, notional))
    return np.array(rows, dtype=float).T.copy()


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
    "PositionColumns",
    "PositionRisk",
    "PricedPosition",
    "RiskTotals",
    "UnderlyingRisk",
    "book_greeks",
]
