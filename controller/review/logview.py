"""``levctl log`` on a terminal: tables of runs, cycles, orders, events and breaches (rich), and the
one-line forms ``--follow`` prints as rows arrive."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from controller.review.breaches import Episode
from controller.review.render import fmt_optional


def _table(title: str, columns: tuple[str, ...], right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def render_activity(console: Console, activity: dict[str, list[dict[str, Any]]]) -> None:
    runs = _table("runs", ("id", "started", "mode", "venue", "status", "exit reason"))
    for r in activity["runs"]:
        runs.add_row(
            str(r["id"]),
            str(r["started_at"])[:19],
            r["mode"],
            r["venue"],
            r["status"] or "",
            r["exit_reason"] or "",
        )
    console.print(runs)
    for r in activity["runs"]:
        if r["status"] in ("halted", "crashed", "failed"):
            console.print(f"[bold red]run {r['id']} {r['status'].upper()}[/]: {r['exit_reason'] or ''}")
    if activity.get("in_flight"):
        pending = _table(
            "orders in flight (outcome not settled)",
            ("run", "label", "instrument", "side", "amount", "status", "since", "error"),
        )
        for o in activity["in_flight"]:
            pending.add_row(
                str(o["run_id"]), o["label"], o["instrument"], o["side"], f"{o['amount']:g}", o["status"],
                str(o["ts"])[:19], (o["error"] or "")[:60],
            )  # fmt: skip
        console.print(pending)
    several = len({c.get("currency") for c in activity["cycles"]}) > 1  # a portfolio: per currency
    cycles = _table(
        "cycles"
        + (" of a portfolio: R = σ_book / (E · σ_ref), the whole book's risk leverage" if several else ""),
        (
            "run",
            "n",
            *(("cur", "R") if several else ()),
            "time (UTC)",
            "state",
            "action",
            "equity $",
            "L",
            "L*",
            "band",
            "σ̂",
            "L_stress",
            "reason",
        ),
        right=("run", "n", "R", "equity $", "L", "L*", "band", "σ̂", "L_stress"),
    )
    for c in activity["cycles"]:
        cycles.add_row(
            str(c["run_id"]), str(c["n"]),
            *((c.get("currency") or "", fmt_optional(c.get("risk_leverage"), ".2f", "")) if several else ()),
            str(c["ts"])[:19], c["state"], c["action"],
            fmt_optional(c["equity_usd"], ",.0f", ""), fmt_optional(c["signed_leverage"], "+.2f", ""),
            fmt_optional(c["target_leverage"], "+.2f", ""), _band(c), fmt_optional(c["sigma_hat"], ".1%", ""),
            fmt_optional(c["leverage_stress"], ".2f", ""), (c["reason"] or "")[:90],
        )  # fmt: skip
    console.print(cycles)
    if activity["orders"]:
        orders = _table(
            "orders",
            (
                "cycle",
                "label",
                "instrument",
                "side",
                "amount",
                "status",
                "exchange id",
                "filled",
                "avg price",
                "error",
            ),
        )
        for o in activity["orders"]:
            orders.add_row(
                str(o["cycle_id"]), o["label"], o["instrument"], o["side"], f"{o['amount']:g}", o["status"],
                o["exchange_order_id"] or "", fmt_optional(o["filled_amount"], "g", ""),
                fmt_optional(o["avg_price"], "g", ""), (o["error"] or "")[:60],
            )  # fmt: skip
        console.print(orders)
    if activity.get("breaches"):
        breaches = _table(
            "advice and limit breaches (over the cycles shown)",
            ("run", "breach", "from cycle", "to cycle", "cycles", "now", "latest advice"),
            right=("run", "from cycle", "to cycle", "cycles"),
        )
        for b in activity["breaches"]:
            breaches.add_row(
                str(b["run"]), b["breach"], str(b["from_cycle"]), str(b["to_cycle"]), str(b["cycles"]),
                "[bold red]ongoing[/]" if b["ongoing"] else "ended", b["advice"][:160],
            )  # fmt: skip
        console.print(breaches)
    notable = [
        e for e in activity["events"] if e["level"] != "info" or e["kind"] in ("start", "stop", "reconcile")
    ]
    if notable:
        events = _table("events", ("time (UTC)", "level", "kind", "message"))
        for e in notable[-40:]:
            events.add_row(str(e["ts"])[:19], e["level"], e["kind"], e["message"][:120])
        console.print(events)


def _band(c: dict[str, Any]) -> str:
    return "" if c["band_low"] is None else f"[{c['band_low']:+.2f}, {c['band_high']:+.2f}]"


def cycle_line(c: dict[str, Any]) -> str:
    """One cycle on one line (``levctl log --follow``)."""

    def f(name: str, spec: str) -> str:
        return fmt_optional(c[name], spec, "—")

    figures = (
        f"equity {f('equity_usd', ',.0f')} USD  L {f('signed_leverage', '+.2f')}  "
        f"L* {f('target_leverage', '+.2f')} {_band(c)}  σ̂ {f('sigma_hat', '.1%')}"
    )
    if c.get("var_usd") is not None:
        figures += f"  VaR {c['var_usd']:,.0f} USD"
    return (
        f"{str(c['ts'])[:19]}  run {c['run_id']} cycle {c['n']}{_of(c.get('currency'))}  {c['state']} "
        f"{c['action']}  {figures}  — {c['reason'] or ''}"
    )


def _of(currency: str | None) -> str:
    return f" {currency}" if currency else ""


def event_line(e: dict[str, Any]) -> str:
    return f"{str(e['ts'])[:19]}  run {e['run_id']} {e['level'].upper()} {e['kind']}: {e['message']}"


def breach_line(episode: Episode, *, started: bool) -> str:
    if started:
        where = f"run {episode.run_id}{_of(episode.currency)} cycle {episode.first_n}"
        return f"BREACH started: {episode.key} ({where}): " + " | ".join(episode.texts)
    return (
        f"BREACH ended: {episode.key} (run {episode.run_id}{_of(episode.currency)}, cycles "
        f"{episode.first_n}–{episode.last_n}, {episode.cycles} cycles)"
    )
