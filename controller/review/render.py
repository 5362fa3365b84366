"""Human tables (rich) and JSON-ready dicts for books and greeks."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # annotations only: printing a log must not load numpy through pricing
    from pricing import BookGreeks, Greeks, PositionRisk, RiskTotals


def book_to_dict(book: BookGreeks) -> dict[str, Any]:
    return {
        "as_of": book.as_of.isoformat(),
        "positions": [_row_dict(r) for r in book.positions],
        "underlyings": {
            coin: {
                "index_price": u.index_price,
                "collateral": u.collateral,
                "positions_delta": u.positions_delta,
                "delta": u.delta,
                "delta_usd": u.delta_usd,
                "totals": _totals_dict(u.positions),
                "by_expiry": {label: _totals_dict(t) for label, t in u.by_expiry.items()},
            }
            for coin, u in book.underlyings.items()
        },
        "totals": {
            "delta_usd": book.delta_usd,
            "dollar_gamma_usd": book.dollar_gamma_usd,
            "vega_usd": book.vega_usd,
            "theta_usd": book.theta_usd,
            "notional_usd": book.notional_usd,
        },
    }


def _row_dict(r: PositionRisk) -> dict[str, Any]:
    row = {"instrument": r.name, **asdict(r)}
    del row["name"]
    row["expiry"] = None if r.expiry is None else r.expiry.isoformat()
    return row


def _totals_dict(t: RiskTotals) -> dict[str, float]:
    return asdict(t)


def print_book(console: Console, book: BookGreeks, title: str) -> None:
    console.print(f"[bold]{title}[/bold]  (valued {book.as_of:%Y-%m-%d %H:%M} UTC)")
    for coin, u in book.underlyings.items():
        table = Table(title=f"{coin} positions", title_justify="left", show_footer=True)
        table.add_column("instrument", footer="total positions")
        table.add_column("size", justify="right")
        table.add_column(f"delta ({coin})", justify="right", footer=f"{u.positions_delta:+.4f}")
        table.add_column("$gamma/1%", justify="right", footer=_usd(u.positions.dollar_gamma_usd))
        table.add_column("vega $/pt", justify="right", footer=_usd(u.positions.vega_usd))
        table.add_column("theta $/day", justify="right", footer=_usd(u.positions.theta_usd))
        table.add_column("value $", justify="right", footer=_usd(u.positions.value_usd))
        for r in (r for r in book.positions if r.underlying == coin):
            size = f"{r.size:+,.0f} USD" if r.kind != "option" and abs(r.size) >= 1000 else f"{r.size:+,.4g}"
            table.add_row(
                r.name,
                size,
                f"{r.delta:+.4f}",
                _usd(r.dollar_gamma_usd),
                _usd(r.vega_usd),
                _usd(r.theta_usd),
                _usd(r.value_usd),
            )
        console.print(table)
        expiries = Table(title=f"{coin} by expiry", title_justify="left")
        for column in ("expiry", f"delta ({coin})", "$gamma/1%", "vega $/pt", "theta $/day"):
            expiries.add_column(column, justify="left" if column == "expiry" else "right")
        for label, t in u.by_expiry.items():
            expiries.add_row(
                label, f"{t.delta:+.4f}", _usd(t.dollar_gamma_usd), _usd(t.vega_usd), _usd(t.theta_usd)
            )
        console.print(expiries)
        console.print(
            f"{coin}: positions delta {u.positions_delta:+.4f} + collateral {u.collateral:+.4f} "
            f"= [bold]{u.delta:+.4f} {coin}[/bold] = [bold]{_usd(u.delta_usd)} USD[/bold] "
            f"at index {u.index_price:,.2f}"
        )
    console.print(
        f"[bold]Book[/bold] (USD): delta {_usd(book.delta_usd)}, "
        f"dollar gamma {_usd(book.dollar_gamma_usd)} per 1 %, "
        f"vega {_usd(book.vega_usd)} per vol point, theta {_usd(book.theta_usd)} per day, "
        f"gross notional {_usd(book.notional_usd)}"
    )
    drivers = [r for r in book.drivers("vega_usd", top=3) if r.vega_usd != 0.0]
    if drivers:
        console.print("Largest vega: " + ", ".join(f"{r.name} {_usd(r.vega_usd)}" for r in drivers))


def greeks_to_dict(g: Greeks) -> dict[str, float]:
    return {
        name: float(getattr(g, name))
        for name in ("price", "delta", "gamma", "vega", "theta", "vanna", "volga")
    }


def print_greeks(console: Console, values: dict[str, float], heading: str) -> None:
    table = Table(title=heading, title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("unit")
    units = {
        "price": "USD per unit",
        "price_in_coin": "coin per unit (inverse quote)",
        "delta": "per unit of underlying",
        "gamma": "per USD of underlying",
        "vega": "USD per vol point",
        "theta": "USD per calendar day",
        "vanna": "delta per vol point",
        "volga": "vega per vol point",
    }
    for name, value in values.items():
        table.add_row(name, f"{value:.10g}", units.get(name, ""))
    console.print(table)


def _usd(value: float) -> str:
    return f"{value:+,.2f}"


def cycle_to_dict(result: Any, mode: str) -> dict[str, Any]:
    """One cycle for machines: book, leverage figures, decision, orders."""
    report, decision = result.report, result.decision
    return {
        "cycle": result.n,
        "mode": mode,
        "book": book_to_dict(report.book),
        "metrics": dict(decision.metrics),
        "sigma": _sigma_dict(report.sigma),
        "var": None if report.var is None else _var_dict(report.var),
        "decision": {
            "action": decision.action.value,
            "state": decision.state.value,
            "reasons": list(decision.reasons),
            "advice": [a.text for a in decision.advice],
            "orders": [
                {
                    "label": o.label,
                    "instrument": o.instrument,
                    "side": o.side.value,
                    "amount": o.amount,
                    "status": o.state.value,
                    "filled_amount": o.filled_amount,
                    "avg_price": o.avg_price,
                    "error": o.error,
                }
                for o in result.execution.all_orders
            ],
        },
    }


def _sigma_dict(sigma: Any) -> dict[str, Any]:
    return {
        "value": sigma.value,
        "source": sigma.source,
        "implied": sigma.implied,
        "implied_source": sigma.implied_source,
        "realised": sigma.realised,
        "vrp_ratio": sigma.vrp_ratio,
        "implied_vrp": sigma.implied_vrp,
        "blend": sigma.blend,
    }


def _var_dict(var: Any) -> dict[str, Any]:
    return {
        "level": var.level,
        "var_usd": var.var_usd,
        "es_usd": var.es_usd,
        "var_delta_gamma_vega_usd": var.var_dgv_usd,
        "es_delta_gamma_vega_usd": var.es_dgv_usd,
        "worst_days": list(var.worst_days),
        "scenarios": var.scenarios,
    }


def print_cycle(console: Console, result: Any, mode: str) -> None:
    report, decision = result.report, result.decision
    print_book(console, report.book, title=f"Cycle {result.n} ({mode}) on {result.snapshot.venue}")
    figures = Table(title="leverage", title_justify="left")
    for column in (
        "equity $",
        "delta $",
        "L",
        "L_iv",
        "L_stress",
        "gross",
        "σ̂",
        "L*",
        "band",
        "margin ratio",
        "worst scenario $",
        "to liquidation",
    ):
        figures.add_column(column, justify="right")
    band = "" if decision.band_low is None else f"[{decision.band_low:+.2f}, {decision.band_high:+.2f}]"
    figures.add_row(
        f"{report.equity_usd:,.0f}",
        f"{report.delta_usd:+,.0f}",
        f"{report.signed_leverage:+.2f}",
        fmt_optional(report.leverage_iv, ".2f"),
        fmt_optional(report.leverage_stress, ".2f"),
        f"{report.gross_leverage:.2f}",
        fmt_optional(report.sigma_hat, ".1%"),
        fmt_optional(decision.target_leverage, "+.2f"),
        band,
        f"{report.margin_ratio:.1%}",
        f"{report.worst_loss_usd:+,.0f}",
        fmt_optional(report.liquidation_move, "+.1%"),
    )
    console.print(figures)
    s, pct = report.sigma, ".1%"
    console.print(
        f"σ̂ {fmt_optional(s.value, pct)} from {s.source or 'nothing'}: "
        f"implied {fmt_optional(s.implied, pct)}, realised {fmt_optional(s.realised, pct)}, "
        f"realised/implied {fmt_optional(s.vrp_ratio, '.2f')}, "
        f"implied × premium {fmt_optional(s.implied_vrp, pct)}, blend {fmt_optional(s.blend, pct)}"
    )
    if report.var is None:
        console.print("VaR: not yet (fewer past days than the minimum)")
    else:
        v = report.var
        console.print(
            f"1-day {v.level:.0%} VaR {v.var_usd:,.0f} USD, ES {v.es_usd:,.0f} USD over {v.scenarios} "
            f"past days (delta-gamma-vega: {v.var_dgv_usd:,.0f} / {v.es_dgv_usd:,.0f}); "
            f"worst days {', '.join(v.worst_days)}"
        )
    console.print(
        f"[bold]Decision[/bold]: {decision.action.value} ({decision.state.value}) — {decision.reason}"
    )
    for o in result.execution.all_orders:
        console.print(
            f"  order {o.label}: {o.side.value} {o.amount:g} {o.instrument} → {o.state.value}"
            + (f" ({o.error})" if o.error else "")
        )
    for advice in decision.advice:
        console.print(f"  advice: {advice.text}")


def fmt_optional(value: Any, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def console(*, stderr: bool = False) -> Console:
    """A console for human output: aligned tables, no colour guessing, wide when piped."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(highlight=False, soft_wrap=False, width=None if stream.isatty() else 160, stderr=stderr)
