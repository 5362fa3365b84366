"""The live page's HTML: the shell (styles and a few lines of script that swap in each update sent
by server-sent events) and the fragment that holds every figure.  Every value is escaped."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from controller.review.live_data import SIGMA_COLUMNS

PLOT_ALT = "leverage against the band and L*, σ̂ and equity over the recent cycles"
STATE_COLOURS = {"ACTIVE": "#1b7f3b", "REDUCING": "#b26a00", "HALTED": "#b00020", "ERROR": "#b00020"}
SEVERITY = {"ACTIVE": 0, "REDUCING": 1, "ERROR": 2, "HALTED": 3}  # a portfolio's head shows its worst


def _e(value: Any) -> str:
    return html.escape("—" if value is None else str(value))


def _num(value: Any, spec: str) -> str:
    return "—" if value is None else html.escape(format(value, spec))


def _table(caption: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, cls: str = "") -> str:
    if not rows:
        return f"<h2>{_e(caption)}</h2><p class='none'>none</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<h2>{_e(caption)}</h2><table class='{cls}'><tr>{head}</tr>{body}</table>"


def fragment(state: dict[str, Any]) -> str:
    """Everything that changes, as one HTML fragment (the page swaps it in whole)."""
    if "waiting" in state:
        return f"<p id='cycle' class='waiting'>waiting: {_e(state['waiting'])}</p>"
    run, cycle, f = state["run"], state["cycle"], state["figures"] or {}
    if cycle is None:
        return f"<p id='cycle' class='waiting'>run {_e(run['id'])} started; no cycle yet</p>"
    if state.get("legs"):
        return _portfolio_fragment(state)
    colour = STATE_COLOURS.get(cycle["state"], "#444")
    status = "" if run["status"] == "running" else f" — run {_e(run['status'])}: {_e(run['exit_reason'])}"
    parts = [
        "<div class='head'>"
        f"<span class='badge' style='background:{colour}'>{_e(cycle['state'])}</span>"
        f"<span id='cycle' data-n='{_e(cycle['n'])}'>cycle {_e(cycle['n'])}</span>"
        f"<span>run {_e(run['id'])} · {_e(run['mode'])} on {_e(run['venue'])}{status}</span>"
        f"<span class='ts'>{_e(str(cycle['ts'])[:19])} UTC</span></div>",
        f"<p class='reason'><b>{_e(cycle['action'])}</b>: {_e(cycle['reason'])}</p>",
        _cards(f, state),
        f"<div id='plot-slot' data-src='plot.png?cycle={_e(cycle['id'])}'></div>",
        "<div class='cols'><div>",
        _positions(state["positions"], f),
        _advice(state),
        "</div><div>",
        _decisions(state["decisions"]),
        _orders(state["orders"]),
        _events(state["events"]),
        "</div></div>",
    ]
    return "\n".join(parts)


def _portfolio_fragment(state: dict[str, Any]) -> str:
    """A run of several currencies: the whole book, then a panel per currency, then the tables."""
    run, cycle, legs = state["run"], state["cycle"], state["legs"]
    worst = max((leg["cycle"]["state"] for leg in legs.values()), key=lambda s: SEVERITY.get(s, 0))
    status = "" if run["status"] == "running" else f" — run {_e(run['status'])}: {_e(run['exit_reason'])}"
    names = " + ".join(legs)
    parts = [
        "<div class='head'>"
        f"<span class='badge' style='background:{STATE_COLOURS.get(worst, '#444')}'>{_e(worst)}</span>"
        f"<span id='cycle' data-n='{_e(cycle['n'])}'>cycle {_e(cycle['n'])}</span>"
        f"<span>run {_e(run['id'])} · {_e(run['mode'])} on {_e(run['venue'])} · book of {_e(names)}"
        f"{status}</span>"
        f"<span class='ts'>{_e(str(cycle['ts'])[:19])} UTC</span></div>",
        _book(state.get("book"), state.get("limits") or {}),
        f"<div id='plot-slot' data-src='plot.png?cycle={_e(cycle['id'])}'></div>",
        "<div class='cols'>",
        *(_currency_panel(name, leg, state) for name, leg in legs.items()),
        "</div><div class='cols'><div>",
        _advice(state),
        _events(state["events"]),
        "</div><div>",
        _decisions(state["decisions"], by_currency=True),
        _orders(state["orders"], by_currency=True),
        "</div></div>",
    ]
    return "\n".join(parts)


def _book(book: dict[str, Any] | None, limits: dict[str, Any]) -> str:
    if book is None:
        return "<h2>The whole book</h2><p class='none'>not recorded yet</p>"
    each = " · ".join(f"{_e(c)} {_num(v, ',.0f')}" for c, v in book["currency_equity_usd"].items())
    rho = " · ".join(f"{_e(pair)} <b>{_num(v, '+.2f')}</b>" for pair, v in book["correlation"].items())
    var, equity, var_limit = book["var_usd"], book["equity_usd"], limits.get("book_max_var_fraction")
    share = None if var is None or not equity else var / equity
    var_sub = "not yet: too few common days" if var is None else f"{_num(share, '.1%')} of the book"
    var_sub += f", limit {_num(var_limit, '.0%')}" if var_limit else ""
    var_sub += "" if var is None else f" · ES {_num(book['es_usd'], ',.0f')}"
    distance, near = book["cascade_distance"], limits.get("min_cascade_distance")
    target = book["target_vol"]
    worst = " + ".join(f"{_e(c)} {_e(w.get('label'))}" for c, w in book["worst_scenario"].items()) or "—"
    cards = [
        ("book equity (USD)", _num(equity, ",.0f"), each, False),
        ("σ_book / E (a year)", _num(book["vol_share"], ".1%"), f"target {_num(target, '.1%')}", False),
        ("σ_book (USD a year)", _num(book["book_vol_usd"], ",.0f"), "√(ΔᵀΣΔ)", False),
        ("risk leverage", _num(book["risk_leverage"], ".2f"), "σ_book / (E·σ_ref)", False),
        ("portfolio leverage", _num(book["portfolio_leverage"], ".2f"), "Σ|Δ_usd| / E", False),
        ("joint 1-day VaR (USD)", _num(var, ",.0f"), var_sub, _above(share, var_limit)),
        (
            "liquidation cascade",
            _num(distance, ".1%"),
            _cascade_sub(book, near),
            distance is not None and near is not None and distance < near,
        ),
        ("worst joint scenario (USD)", _num(book["worst_scenario_usd"], ",.0f"), worst, False),
        ("split", f"<span class='word'>{_e(book['split'])}</span>", f"scale k {_num(book['scale'], '.3f')}",
         False),
    ]  # fmt: skip
    goals = [
        (
            f"<b>{_e(c)}</b>", _num(g["delta_usd"], "+,.0f"), _num(g["goal_delta_usd"], "+,.0f"),
            _num(g["hedge_change_usd"], "+,.0f"), _num(g["risk_contribution_usd"], ",.0f"),
            f"<b class='on'>frozen: {_e(g['frozen'])}</b>" if g["frozen"] else "",
        )
        for c, g in book["goals"].items()
    ]  # fmt: skip
    stresses = " · ".join(
        f"{_e(x.get('label'))} <b>{_num(x.get('pnl_usd'), '+,.0f')}</b> USD" for x in book["stresses"]
    )
    lines = [f"correlation of the indices: {rho or '—'}", f"stresses: {stresses or '—'}"]
    lines += [_e(r) for r in book["reasons"]]
    header = ("currency", "Δ_usd", "goal Δ_usd", "hedge change (USD)", "risk contribution (USD)", "")
    return (
        f"<h2>The whole book (cycle {_e(book['n'])})</h2>"
        + _card_grid(cards)
        + "".join(f"<p class='sigma'>{line}</p>" for line in lines)
        + _table("Each currency's share of the target", header, goals, cls="num")
    )


def _cascade_sub(book: dict[str, Any], near: float | None) -> str:
    limit = f"; limit {_num(near, '.0%')}" if near else ""
    if book["cascade_distance"] is None and book.get("cascade_reason"):
        return _e(book["cascade_reason"]) + limit
    return f"common move; loss {_num(book['cascade_loss_usd'], ',.0f')} USD{limit}"


def _currency_panel(name: str, leg: dict[str, Any], state: dict[str, Any]) -> str:
    cycle, f = leg["cycle"], leg["figures"] or {}
    colour = STATE_COLOURS.get(cycle["state"], "#444")
    frozen = ((state.get("book") or {}).get("goals") or {}).get(name, {}).get("frozen")
    flag = f" <b class='on frozen'>frozen: {_e(frozen)}</b>" if frozen else ""
    head = (
        f"<h2 class='leg'><span class='badge' style='background:{colour}'>{_e(cycle['state'])}</span> "
        f"{_e(name)} <span class='sub'>cycle {_e(cycle['n'])}</span>{flag}</h2>"
        f"<p class='reason'><b>{_e(cycle['action'])}</b>: {_e(cycle['reason'])}</p>"
    )
    shown = f"data-currency='{_e(name)}' data-n='{_e(f.get('n'))}'"  # the cycle of its figures
    return f"<div class='leg' {shown}>{head}{_cards(f, state)}{_positions(leg['positions'], f)}</div>"


def _cards(f: dict[str, Any], state: dict[str, Any]) -> str:  # (label, value, below, alarm)
    limits = state.get("limits") or {}
    band = "—" if f.get("band_low") is None else f"[{f['band_low']:+.2f}, {f['band_high']:+.2f}]"
    margin_limit, no = limits.get("max_margin_ratio"), False
    iv, index = _num(f.get("leverage_iv"), ".2f"), _num(f.get("index_price"), ",.2f")
    cards = [
        ("leverage L", _num(f.get("signed_leverage"), "+.2f"), f"band {html.escape(band)}", False),
        ("target L*", _num(f.get("target_leverage"), "+.2f"), f"L_iv {iv}", no),
        ("σ̂ (annualised)", _num(f.get("sigma_hat"), ".1%"), f"source {_e(f.get('sigma_source'))}", False),
        ("equity (USD)", _num(f.get("equity_usd"), ",.0f"), f"index {index}", no),
        (
            "margin ratio",
            _num(f.get("margin_ratio"), ".1%"),
            f"maintenance / equity; limit {_num(margin_limit, '.0%')}",
            _above(f.get("margin_ratio"), margin_limit),
        ),
        ("to liquidation", _num(f.get("liquidation_move"), "+.1%"), "index move", False),
        (
            "L_stress",
            _num(f.get("leverage_stress"), ".2f"),
            f"gross {_num(f.get('gross_leverage'), '.2f')}",
            False,
        ),
        (
            "worst scenario (USD)",
            _num(f.get("worst_scenario_loss_usd"), ",.0f"),
            _e(f.get("worst_scenario")),
            False,
        ),
    ]
    if "var_usd" in f:
        cards.append(_var_card(f, limits))
    return _card_grid(cards) + _sigma_line(f, state["sigma_columns"])


def _card_grid(cards: Sequence[tuple[str, str, str, bool]]) -> str:
    return (
        "<div class='cards'>"
        + "".join(
            f"<div class='card{' alarm' if alarm else ''}'><div class='label'>{label}</div>"
            f"<div class='value'>{value}</div><div class='sub'>{sub}</div></div>"
            for label, value, sub, alarm in cards
        )
        + "</div>"
    )


def _above(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value > limit


def _var_card(f: dict[str, Any], limits: dict[str, Any]) -> tuple[str, str, str, bool]:
    level = limits.get("var_level")
    label = f"1-day {_num(level, '.0%')} VaR (USD)" if level else "1-day VaR (USD)"
    var, equity, limit = f.get("var_usd"), f.get("equity_usd"), limits.get("max_var_fraction")
    share = None if var is None or not equity else var / equity
    if var is None:
        return label, "—", "not yet: too few past days in the log", False
    sub = f"{_num(share, '.1%')} of equity" + (f", limit {_num(limit, '.0%')}" if limit else "")
    sub += f" · ES {_num(f.get('es_usd'), ',.0f')}"
    return label, _num(var, ",.0f"), sub, _above(share, limit)


def _worst_days(raw: Any) -> str:
    if not raw:
        return ""
    try:
        days = json.loads(raw)
    except ValueError:
        return str(raw)
    return ", ".join(str(d) for d in days) if isinstance(days, list) else str(days)


def _sigma_line(f: dict[str, Any], columns: list[str]) -> str:
    """σ̂'s components as the cycle logged them (σ̂ is the configured estimator's), and VaR's details."""
    names = dict(SIGMA_COLUMNS)
    shown = [
        f"{_e(names[c])} <b>{_num(f.get(c), '.2f' if c == 'vrp_ratio' else '.1%')}</b>"
        for c in columns
        if c in f
    ]
    lines = []
    if shown:
        short = any(f.get(c) is None for c in columns if c in f)
        note = " <span class='sub'>(— : not enough history yet)</span>" if short else ""
        lines.append("σ̂ components: " + " · ".join(shown) + note)
    if f.get("var_usd") is not None:
        worst = _worst_days(f.get("var_worst_days"))
        lines.append(
            f"VaR by full revaluation on past days; delta-gamma-vega approximation "
            f"<b>{_num(f.get('var_dgv_usd'), ',.0f')}</b> USD (ES {_num(f.get('es_dgv_usd'), ',.0f')})"
            + (f"; worst days {_e(worst)}" if worst else "")
        )
    return "".join(f"<p class='sigma'>{line}</p>" for line in lines)


def _positions(positions: list[dict[str, Any]], f: dict[str, Any]) -> str:
    rows = [
        (
            _e(p["instrument"]), _size(p["size"]), _num(p["delta"], "+.4f"),
            _num(p["dollar_gamma_usd"], "+,.0f"), _num(p["vega"], "+,.0f"), _num(p["theta"], "+,.0f"),
            _num(p["mark_iv"], ".1%"),
        )
        for p in positions
    ]  # fmt: skip
    if rows:
        rows.append(
            (
                "<b>book</b>", "", f"<b>{_num(f.get('delta_coin'), '+.4f')}</b>",
                f"<b>{_num(f.get('dollar_gamma_usd'), '+,.0f')}</b>",
                f"<b>{_num(f.get('vega_usd'), '+,.0f')}</b>",
                f"<b>{_num(f.get('theta_usd'), '+,.0f')}</b>", "",
            )
        )  # fmt: skip
    header = ("instrument", "size", "delta (coin)", "$gamma /1 %", "vega $/pt", "theta $/day", "mark IV")
    return _table("Positions and greeks (book total: delta with the collateral)", header, rows, cls="num")


def _size(size: float | None) -> str:
    return _num(size, "+,.0f" if abs(size or 0) >= 1000 else "+,.4g")


def _advice(state: dict[str, Any]) -> str:
    legs = state.get("legs") or {}
    texts = [f"{c}: {t}" for c, leg in legs.items() for t in leg["advice"]] if legs else state["advice"]
    now = "".join(f"<li>{_e(text)}</li>" for text in texts)
    current = f"<ul class='advice'>{now}</ul>" if now else "<p class='none'>no limit exceeded now</p>"
    several = bool(state.get("legs"))
    rows = [
        (
            *((_e(b.get("currency")),) if several else ()), _e(b["breach"]), _e(b["from_cycle"]),
            _e(b["to_cycle"]), _e(b["cycles"]), "<b class='on'>ongoing</b>" if b["ongoing"] else "ended",
        )
        for b in state["breaches"]
    ]  # fmt: skip
    return (
        "<h2>Advice and limit breaches</h2>"
        + current
        + _table(
            "Breaches over the recent cycles",
            (*(("currency",) if several else ()), "breach", "from cycle", "to cycle", "cycles", "now"),
            rows,
        )
    )


def _decisions(cycles: list[dict[str, Any]], *, by_currency: bool = False) -> str:
    rows = [
        (
            _e(c["n"]), *((_e(c.get("currency")),) if by_currency else ()), _e(str(c["ts"])[11:19]),
            _e(c["state"]), _e(c["action"]), _num(c["signed_leverage"], "+.2f"),
            _num(c["target_leverage"], "+.2f"), _e(c["reason"]),
        )
        for c in cycles
    ]  # fmt: skip
    header = (
        "cycle",
        *(("currency",) if by_currency else ()),
        "time",
        "state",
        "action",
        "L",
        "L*",
        "reason",
    )
    return _table("Last decisions", header, rows)


def _orders(orders: list[dict[str, Any]], *, by_currency: bool = False) -> str:
    rows = [
        (
            _e(o["n"]), *((_e(o.get("currency")),) if by_currency else ()), _e(o["label"]), _e(o["side"]),
            _num(o["amount"], ",.6g"), _e(o["instrument"]), _e(o["status"]), _num(o["avg_price"], ",.2f"),
            _e(o["error"] or ""),
        )
        for o in orders
    ]  # fmt: skip
    currency = ("currency",) if by_currency else ()
    header = ("cycle", *currency, "label", "side", "amount", "instrument", "status", "avg price", "error")
    return _table("Orders", header, rows)


def _events(events: list[dict[str, Any]]) -> str:
    rows = [(_e(str(e["ts"])[:19]), _e(e["level"]), _e(e["kind"]), _e(e["message"])) for e in events]
    return _table("Warnings and errors", ("time (UTC)", "level", "kind", "message"), rows)


STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#20242c;color:#eee;padding:.6em 1.2em;display:flex;justify-content:space-between}
main{padding:1em 1.2em;max-width:1500px}
.head{display:flex;gap:1.2em;align-items:center;font-size:1.15em}
.badge{color:#fff;padding:.2em .7em;border-radius:4px;font-weight:bold}
#cycle{font-weight:bold}.ts,.sub,.none{color:#666}.reason{margin:.5em 0 1em}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(128px,1fr));gap:.6em}
.card{background:#fff;border-radius:6px;padding:.5em .8em;box-shadow:0 1px 2px #0002}
.label{font-size:.8em;color:#555}.value{font-size:1.4em;font-weight:600}.sub{font-size:.75em}
.plot{width:100%;max-width:1100px;background:#fff;margin:1em 0;border-radius:6px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:1.2em}
h2{font-size:1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff;font-size:12px;width:100%}
td,th{border-bottom:1px solid #e3e3e3;padding:3px 6px;text-align:left;vertical-align:top}
table.num td+td{text-align:right}.advice li{margin:.2em 0}.on{color:#b00020}
.card.alarm{box-shadow:0 0 0 2px #b00020}.card.alarm .value{color:#b00020}.sigma{margin:.4em 0;font-size:.9em}
#conn{font-size:.85em}.leg{min-width:0}h2.leg{font-size:1.15em}.word{font-size:.7em}.frozen{font-size:.8em}
"""

SCRIPT = """
const live = document.getElementById("live"), conn = document.getElementById("conn");
const plot = document.getElementById("plot");
let loading = false;
function placePlot() {  // the plot lives outside the swapped fragment; one new drawing loads at a time
  const slot = document.getElementById("plot-slot");
  if (!slot) { plot.hidden = true; return; }
  slot.appendChild(plot);
  if (loading || plot.dataset.src === slot.dataset.src) return;
  loading = true;
  const next = new Image(), src = slot.dataset.src;
  next.onload = next.onerror = () => {
    loading = false;
    plot.dataset.src = src;
    if (next.naturalWidth) { plot.src = src; plot.hidden = false; }
    placePlot();  // a newer cycle may have arrived meanwhile
  };
  next.src = src;
}
window.addEventListener("load", () => {  // after the page has loaded: updates never hold its load
  const source = new EventSource("events");
  source.addEventListener("update", (e) => {
    live.innerHTML = e.data;
    conn.textContent = "live";
    placePlot();
  });
  source.onerror = () => { conn.textContent = "reconnecting…"; };
  placePlot();
});
"""


def page(title: str, body: str, *, db: str) -> str:
    """The whole page: the fragment now, then each update the server sends."""
    footer = f"read-only view of {_e(db)} · updates arrive by themselves · nothing here can send an order"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><span>levctl live — {_e(title)}</span><span id='conn'>connecting…</span></header>"
        f"<main><div id='live'>{body}</div><p class='sub'>{footer}</p></main>"
        f"<img id='plot' class='plot' hidden alt='{PLOT_ALT}'>"
        f"<script>{SCRIPT}</script></body></html>"
    )


def login_page(message: str = "") -> str:
    note = f"<p class='on'>{_e(message)}</p>" if message else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>levctl live — sign in</title>"
        f"<style>{STYLE}</style></head><body><main><h1>levctl live</h1>{note}"
        "<form method='post' action='login'><label>Token (LEVCTL_SERVE_TOKEN) "
        "<input type='password' name='token' autocomplete='off'></label> <button>Sign in</button></form>"
        "</main></body></html>"
    )


def json_ready(state: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in state.items() if k != "recent"}, default=str)
