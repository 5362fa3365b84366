"""What the simulated exchange lists, and how it marks it.

* Expiries at 08:00 UTC (Deribit's): the next weekly Fridays, the last Fridays of the coming
  months and of the coming quarter months (Mar, Jun, Sep, Dec).
* Instruments: ``BTC-PERPETUAL`` (inverse, USD-sized), dated inverse futures on the monthly and
  quarterly expiries, and coin-settled options on every expiry over a strike grid fixed when the
  expiry is listed (spacing and width scale with the price and with σ·√T).
* Forward of an expiry ``F = S·exp(carry·T)`` with ``carry`` the perpetual's premium, annualised
  as an 8-hour rate (clamped).
* Mark IV: a smile in standardised moneyness ``x = ln(K/F) / (σ_T √T)``:
  ``σ(K, T) = σ_T · clip(1 + skew·x + curvature·x², 0.5, 3)``, term structure
  ``σ_T = σ_30d · (T / 30 days)^term_slope``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from controller.sim.margin import FeeParams
from pricing import parse_deribit_name, year_fraction
from pricing.instruments import Instrument, deribit_expiry_code

DAY = timedelta(days=1)
THIRTY_DAYS_YEARS = 30.0 / 365.0


@dataclass(frozen=True)
class SmileParams:
    skew: float = -0.08
    curvature: float = 0.03
    term_slope: float = -0.06
    min_t_years: float = 1.0 / 365.0


@dataclass(frozen=True)
class ListingParams:
    currency: str = "BTC"
    weeklies: int = 3
    monthlies: int = 3
    quarterlies: int = 3
    strikes_each_side: int = 14
    option_tick: float = 0.0005  # coin
    option_min_amount: float = 0.1  # coin
    future_tick: float = 0.5  # USD
    future_min_amount: float = 10.0  # USD (one contract)
    max_carry: float = 0.5  # annualised
    option_tick_steps: tuple[tuple[float, float], ...] = ()  # (above_price, tick): coarser ticks up high

    @classmethod
    def for_currency(cls, currency: str, **overrides: object) -> ListingParams:
        """Deribit's contract specifications for ``currency`` (BTC or ETH), with ``overrides`` applied."""
        if currency not in CONTRACT_SPECS:
            raise ValueError(f"the simulator lists BTC and ETH, not {currency!r}")
        return cls(currency=currency, **{**CONTRACT_SPECS[currency], **overrides})  # type: ignore[arg-type]


# Deribit's inverse contracts: BTC options 0.1 BTC minimum on a 0.0005 BTC tick, BTC futures one
# 10 USD contract on a 0.5 USD tick (as its get_instruments lists them); ETH options 1 ETH on a
# 0.0005 ETH tick, ETH futures one 1 USD contract on a 0.05 USD tick.
CONTRACT_SPECS: dict[str, dict[str, float]] = {
    "BTC": {"option_tick": 0.0005, "option_min_amount": 0.1, "future_tick": 0.5, "future_min_amount": 10.0},
    "ETH": {"option_tick": 0.0005, "option_min_amount": 1.0, "future_tick": 0.05, "future_min_amount": 1.0},
}


@dataclass(frozen=True)
class Listed:
    """An instrument on the exchange with its trading rules."""

    name: str
    instrument: Instrument
    kind: str  # "option" or "future" (Deribit calls the perpetual a future too)
    expiry: datetime | None  # None for the perpetual
    strike: float | None
    is_call: bool | None
    tick_size: float
    min_amount: float
    contract_size: float
    maker_fee: float
    taker_fee: float
    created_at: datetime
    tick_size_steps: tuple[tuple[float, float], ...] = ()  # (above_price, tick), as Deribit lists them

    @property
    def is_perpetual(self) -> bool:
        return self.expiry is None

    def tick_at(self, price: float) -> float:
        """The tick in force at ``price``: the step with the highest ``above_price`` at or below it."""
        tick = self.tick_size
        for above, step in self.tick_size_steps:
            if price >= above:
                tick = step
        return tick


def list_perpetual(params: ListingParams, fees: FeeParams, now: datetime) -> Listed:
    """The currency's perpetual: inverse, sized in USD."""
    return _future(f"{params.currency}-PERPETUAL", None, params, fees, now)


def _future(
    name: str, expiry: datetime | None, params: ListingParams, fees: FeeParams, now: datetime
) -> Listed:
    return Listed(
        name,
        parse_deribit_name(name),
        "future",
        expiry,
        None,
        None,
        params.future_tick,
        params.future_min_amount,
        params.future_min_amount,
        fees.future_maker,
        fees.future_taker,
        now,
    )


def list_expiries(
    params: ListingParams,
    fees: FeeParams,
    *,
    now: datetime,
    index: float,
    atm_vol: float,
    listed_expiries: set[datetime],
) -> list[Listed]:
    """The dated futures and options of every expiry due to be listed that is not listed yet."""
    out = []
    for expiry in expiries_after(now, params):
        if expiry in listed_expiries:
            continue
        t = year_fraction(start=now, end=expiry)
        if is_futures_expiry(expiry, params):
            out.append(_future(future_name(params.currency, expiry), expiry, params, fees, now))
        for strike in strike_grid(index=index, atm_vol=atm_vol, t_years=t, params=params):
            for is_call in (True, False):
                name = option_name(params.currency, expiry, strike, is_call)
                out.append(
                    Listed(
                        name,
                        parse_deribit_name(name),
                        "option",
                        expiry,
                        strike,
                        is_call,
                        params.option_tick,
                        params.option_min_amount,
                        1.0,
                        fees.option_rate,
                        fees.option_rate,
                        now,
                        params.option_tick_steps,
                    )
                )
    return out


def expiries_after(now: datetime, params: ListingParams) -> list[datetime]:
    """Listed expiries strictly after ``now`` (08:00 UTC Fridays)."""
    fridays: set[datetime] = set()
    day = now.date()
    weekly = _next_friday(now)
    for _ in range(params.weeklies):
        fridays.add(weekly)
        weekly += 7 * DAY
    month = date(day.year, day.month, 1)
    added = 0
    while added < params.monthlies:
        expiry = _last_friday(month.year, month.month)
        if expiry > now:
            fridays.add(expiry)
            added += 1
        month = _add_month(month)
    month = date(day.year, day.month, 1)
    added = 0
    while added < params.quarterlies:
        if month.month % 3 == 0:
            expiry = _last_friday(month.year, month.month)
            if expiry > now:
                fridays.add(expiry)
                added += 1
        month = _add_month(month)
    return sorted(fridays)


def is_futures_expiry(expiry: datetime, params: ListingParams) -> bool:
    """Dated futures trade on month-end expiries (the last Friday of a month)."""
    return expiry == _last_friday(expiry.year, expiry.month)


def strike_grid(*, index: float, atm_vol: float, t_years: float, params: ListingParams) -> list[float]:
    """Strikes around the index: a round spacing of about a quarter of σ·√T, 2·n + 1 of them."""
    width = max(atm_vol * math.sqrt(max(t_years, 1.0 / 365.0)), 0.03)
    spacing = _round_step(index * width / 4.0)
    centre = round(index / spacing) * spacing
    strikes = [centre + i * spacing for i in range(-params.strikes_each_side, params.strikes_each_side + 1)]
    return [k for k in strikes if k > 0]


def option_name(currency: str, expiry: datetime, strike: float, is_call: bool) -> str:
    strike_text = f"{strike:.0f}" if strike == int(strike) else f"{strike:g}".replace(".", "d")
    return f"{currency}-{deribit_expiry_code(expiry)}-{strike_text}-{'C' if is_call else 'P'}"


def future_name(currency: str, expiry: datetime) -> str:
    return f"{currency}-{deribit_expiry_code(expiry)}"


def forward_price(*, index: float, premium: float, t_years: float, params: ListingParams) -> float:
    carry = max(-params.max_carry, min(params.max_carry, premium * 3.0 * 365.0))
    return index * math.exp(carry * max(t_years, 0.0))


def smile_vol(
    *, atm_vol_30d: float, forward: float, strike: float, t_years: float, smile: SmileParams
) -> float:
    t = max(t_years, smile.min_t_years)
    sigma_t = atm_vol_30d * (t / THIRTY_DAYS_YEARS) ** smile.term_slope
    x = math.log(strike / forward) / (sigma_t * math.sqrt(t))
    return sigma_t * min(3.0, max(0.5, 1.0 + smile.skew * x + smile.curvature * x * x))


def _next_friday(now: datetime) -> datetime:
    candidate = datetime.combine(now.date(), time(8), tzinfo=UTC)
    while candidate.weekday() != 4 or candidate <= now:
        candidate += DAY
    return candidate


def _last_friday(year: int, month: int) -> datetime:
    last = _add_month(date(year, month, 1)) - DAY
    while last.weekday() != 4:
        last -= DAY
    return datetime.combine(last, time(8), tzinfo=UTC)


def _add_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _round_step(raw: float) -> float:
    """The nearest 'nice' step (1, 2, 2.5 or 5 times a power of ten) at or above ``raw``."""
    power = 10.0 ** math.floor(math.log10(max(raw, 1e-12)))
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        if multiple * power >= raw:
            return multiple * power
    return 10.0 * power  # pragma: no cover
