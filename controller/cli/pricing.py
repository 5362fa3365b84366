"""``levctl book``, ``greeks`` and ``iv``: the pricing library from the command line (no venue, no log)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import click

from controller.cli.errors import user_errors
from controller.cli.positions_file import read_positions
from controller.cli.sample import sample_account
from controller.review.render import book_to_dict, console, greeks_to_dict, print_book, print_greeks
from pricing import IVReason, book_greeks, greeks, implied_vol, year_fraction
from pricing.instruments import EXPIRY_HOUR_UTC


def _emit_json(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(payload, indent=2, sort_keys=False))


@click.command()
@click.option(
    "--positions", "positions_file", type=click.Path(path_type=Path), help="CSV of positions (see README)."
)
@click.option(
    "--index", "index_prices", multiple=True, metavar="COIN=USD", help="Index price, e.g. BTC=61234.5."
)
@click.option(
    "--collateral", multiple=True, metavar="COIN=AMOUNT", help="Account equity per currency, e.g. BTC=10."
)
@click.option("--as-of", "as_of", metavar="ISO-TIME", help="Valuation time (UTC); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print the book as JSON.")
def book(
    positions_file: Path | None,
    index_prices: tuple[str, ...],
    collateral: tuple[str, ...],
    as_of: str | None,
    as_json: bool,
) -> None:
    """Price a book and show its greeks per position, per expiry and in total.

    Without --positions, shows the built-in sample portfolio.
    """
    if positions_file is None:
        if index_prices or collateral or as_of:
            raise click.UsageError("--index, --collateral and --as-of need --positions")
        _show_sample_book(as_json, title="Sample portfolio")
        return
    with user_errors():
        positions = read_positions(positions_file)
        valued = book_greeks(
            positions,
            as_of=_parse_time(as_of, "--as-of") if as_of else datetime.now(UTC),
            index_prices=_pairs(index_prices, "--index", minimum="positive"),
            collateral=_pairs(collateral, "--collateral", minimum="zero or more"),
        )
    if as_json:
        _emit_json(book_to_dict(valued))
    else:
        print_book(console(), valued, title=f"Book of {positions_file}")


def _show_sample_book(as_json: bool, title: str) -> None:
    account = sample_account()
    valued = book_greeks(
        account.positions,
        as_of=account.as_of,
        index_prices=account.index_prices,
        collateral=account.collateral,
    )
    if as_json:
        _emit_json(book_to_dict(valued))
    else:
        print_book(console(), valued, title=title)


def _option_inputs(fn: Callable[..., None]) -> Callable[..., None]:
    for decorator in reversed(
        [
            click.option("--forward", type=float, required=True, help="Forward (underlying) price, USD."),
            click.option("--strike", type=float, required=True, help="Strike, USD."),
            click.option("--days", type=float, help="Calendar days to expiry (ACT/365)."),
            click.option(
                "--expiry", metavar="DATE|ISO-TIME", help="Expiry; a bare date means 08:00 UTC (Deribit)."
            ),
            click.option(
                "--as-of", "as_of", metavar="ISO-TIME", help="Valuation time for --expiry; default now."
            ),
            click.option("--call/--put", "is_call", required=True, help="Option right."),
            click.option(
                "--rate", type=float, default=0.0, show_default=True, help="Discount rate, decimal."
            ),
            click.option("--json", "as_json", is_flag=True, help="Print JSON."),
        ]
    ):
        fn = decorator(fn)
    return fn


@click.command(name="greeks")
@_option_inputs
@click.option("--vol-pct", type=float, required=True, help="Volatility in percent (61.27 for 61.27 %).")
def greeks_command(
    forward: float,
    strike: float,
    days: float | None,
    expiry: str | None,
    as_of: str | None,
    is_call: bool,
    rate: float,
    as_json: bool,
    vol_pct: float,
) -> None:
    """Black-76 price and greeks of one option (Deribit conventions)."""
    t = _t_years(days, expiry, as_of)
    if t <= 0:
        raise click.ClickException(_expired(t, days, expiry, as_of, forward, strike, is_call))
    with user_errors():
        g = greeks(
            forward=forward,
            strike=strike,
            t_years=t,
            vol=vol_pct / 100.0,
            is_call=is_call,
            rate=rate,
            invalid="raise",
        )
    values = greeks_to_dict(g)
    values = {"price": values.pop("price"), "price_in_coin": float(g.price) / forward, **values}
    if as_json:
        _emit_json({"t_years": t, **values})
    else:
        print_greeks(
            console(),
            values,
            heading=f"{'call' if is_call else 'put'} K={strike:g} F={forward:g} t={t:.6f}y",
        )


@click.command(name="iv")
@_option_inputs
@click.option("--price", type=float, help="Option price in USD per unit.")
@click.option("--price-coin", type=float, help="Option price in coin per unit (Deribit's inverse quote).")
def iv_command(
    forward: float,
    strike: float,
    days: float | None,
    expiry: str | None,
    as_of: str | None,
    is_call: bool,
    rate: float,
    as_json: bool,
    price: float | None,
    price_coin: float | None,
) -> None:
    """Implied volatility of one option price; says why when there is none."""
    if (price is None) == (price_coin is None):
        raise click.UsageError("give exactly one of --price (USD) or --price-coin (coin)")
    usd = price if price is not None else price_coin * forward  # type: ignore[operator]
    t = _t_years(days, expiry, as_of)
    result = implied_vol(price=usd, forward=forward, strike=strike, t_years=t, is_call=is_call, rate=rate)
    reason = IVReason(int(result.reason))
    discount = math.exp(-rate * max(t, 0.0))
    intrinsic = discount * max((forward - strike) if is_call else (strike - forward), 0.0)
    bound = discount * (forward if is_call else strike)
    payload = {
        "vol": None if reason != IVReason.OK else float(result.vol),
        "reason": reason.name,
        "t_years": t,
        "price_usd": usd,
        "intrinsic_usd": intrinsic,
        "bound_usd": bound,
    }
    if as_json:
        _emit_json(payload)
    elif reason == IVReason.OK:
        click.echo(f"implied vol {float(result.vol) * 100:.4f} % ({float(result.vol):.8f})")
    else:
        why = _no_iv(reason, usd, intrinsic, bound, t, "call" if is_call else "put")
        option = f"{'call' if is_call else 'put'} F {forward:,.2f} K {strike:,.2f}"
        raise click.ClickException(f"no implied volatility ({reason.name}) for the {option}: {why}")


def _no_iv(reason: IVReason, price: float, intrinsic: float, bound: float, t: float, right: str) -> str:
    """Why a price has no implied volatility, with the figures that show it."""
    shown = f"the price {price:,.4f} USD"
    return {
        IVReason.BELOW_INTRINSIC: f"{shown} is below the {right}'s intrinsic value {intrinsic:,.4f} USD",
        IVReason.AT_INTRINSIC: f"{shown} equals the intrinsic value {intrinsic:,.4f} USD: no time value",
        IVReason.ABOVE_MAXIMUM: f"{shown} is at or above the bound {bound:,.4f} USD "
        f"(a {right} is worth less than its {'forward' if right == 'call' else 'strike'})",
        IVReason.EXPIRED: f"the option has expired (t = {t:.6f} years): no volatility to imply",
        IVReason.INVALID_INPUT: f"{shown}: prices, forward and strike must be finite and positive",
    }.get(reason, f"{shown}: the solver did not converge")


def _expired(
    t: float, days: float | None, expiry: str | None, as_of: str | None, forward: float, strike: float,
    is_call: bool,
) -> str:  # fmt: skip
    if days is not None:
        when = f"--days {days:g}"
    else:
        end = _parse_time(expiry or "", "--expiry", default_hour=EXPIRY_HOUR_UTC)
        start = f"{_parse_time(as_of, '--as-of'):%Y-%m-%d %H:%M} UTC (--as-of)" if as_of else "now"
        when = f"expiry {end:%Y-%m-%d %H:%M} UTC is {-t * 365:,.1f} days before {start}"
    intrinsic = max((forward - strike) if is_call else (strike - forward), 0.0)
    return (
        f"the option has expired: {when}; an expired option has no greeks and is worth its intrinsic "
        f"value, {intrinsic:,.2f} USD"
    )


def _t_years(days: float | None, expiry: str | None, as_of: str | None) -> float:
    if (days is None) == (expiry is None):
        raise click.UsageError("give exactly one of --days or --expiry")
    if days is not None:
        if as_of:
            raise click.UsageError("--as-of goes with --expiry, not --days")
        return days / 365.0
    start = _parse_time(as_of, "--as-of") if as_of else datetime.now(UTC)
    return year_fraction(start=start, end=_parse_time(expiry or "", "--expiry", default_hour=EXPIRY_HOUR_UTC))


def _parse_time(text: str, option: str, default_hour: int = 0) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"not an ISO date or time: {text!r}", param_hint=option) from None
    if len(text) == 10:  # a bare date
        parsed = datetime.combine(parsed.date(), time(default_hour))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _pairs(items: tuple[str, ...], option: str, *, minimum: str) -> dict[str, float]:
    """COIN=NUMBER pairs; ``minimum`` is "positive" (prices) or "zero or more" (collateral)."""
    out: dict[str, float] = {}
    for item in items:
        coin, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or not coin or not math.isfinite(number):
            raise click.BadParameter(f"expected COIN=NUMBER, got {item!r}", param_hint=option)
        if number < 0 or (number == 0 and minimum == "positive"):
            raise click.ClickException(f"{option} {item}: {number:g} must be {minimum}")
        out[coin.strip().upper()] = number
    return out
