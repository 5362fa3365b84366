"""The live page's plot for a run of several currencies: the book's equity beside each currency's,
σ_book / E against its target, each currency's leverage against its own band, and the book's joint
VaR and liquidation cascade — each line one currency's own rows, or the book's one value per cycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from controller.review.live_plot import png

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def book_plot(
    cycles: list[dict[str, Any]], currencies: list[str], run: dict[str, Any], *, limit: float | None = None
) -> bytes:
    """``cycles``: the run's recent rows (every currency's); ``limit``: the book's VaR guard."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    good = [c for c in cycles if c["equity_usd"] is not None]
    book = list({c["n"]: c for c in good if c.get("portfolio_equity_usd") is not None}.values())
    tb = [_t(c) for c in book]
    equity = [c["portfolio_equity_usd"] for c in book]
    var = [_share(c.get("portfolio_var_usd"), c["portfolio_equity_usd"]) for c in book]
    cascade = [_nan(c.get("cascade_distance")) for c in book]
    with_risk = any(v == v for v in var + cascade)  # a number somewhere (NaN is not equal to itself)
    fig, axes = plt.subplots(4 if with_risk else 3, 1, figsize=(11, 9.5 if with_risk else 7.5), sharex=True)
    eq, vol, lev = axes[:3]
    eq.plot(tb, equity, color="black", lw=1.5, label="book (USD)")
    vol.plot(tb, [_share(c.get("book_vol_usd"), c["portfolio_equity_usd"]) for c in book], color="tab:purple",
             lw=1.4, label="σ_book / E (annualised)")  # fmt: skip
    vol.plot(
        tb,
        [_nan(c.get("book_target_vol")) for c in book],
        color="tab:green",
        ls="--",
        lw=1,
        label="its target",
    )
    _risk_leverage(vol, tb, book)
    for name, colour in zip(currencies, COLOURS, strict=False):
        rows = [c for c in good if c.get("currency") == name]
        t = [_t(c) for c in rows]
        eq.plot(t, [c["equity_usd"] for c in rows], color=colour, lw=1, label=f"{name} (USD)")
        band = ([_nan(c["band_low"]) for c in rows], [_nan(c["band_high"]) for c in rows])
        lev.fill_between(t, *band, color=colour, alpha=0.12, label=f"{name} band")
        lev.plot(t, [_nan(c["signed_leverage"]) for c in rows], color=colour, lw=1.3, label=f"{name} L")
        lev.plot(
            t, [_nan(c["target_leverage"]) for c in rows], color=colour, lw=0.8, ls=":", label=f"{name} L*"
        )
    eq.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    eq.set_ylabel("equity (USD)")
    vol.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    vol.set_ylabel("σ_book / E")
    lev.set_ylabel("× own equity")
    if with_risk:
        risk = axes[3]
        risk.plot(tb, var, color="tab:red", label="joint 1-day VaR / E")
        if limit is not None:
            risk.axhline(limit, color="tab:red", ls=":", lw=1, label=f"VaR limit {limit:.0%}")
        risk.plot(tb, cascade, color="tab:gray", label="cascade: common move to it")
        risk.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
        risk.set_ylabel("share / move")
    names = " + ".join(currencies)
    fig.subplots_adjust(left=0.1, right=0.93, top=0.91, bottom=0.08, hspace=0.4)
    title = f"run {run['id']} ({run['mode']}), the book of {names}: the last {len(book)} cycles"
    return png(fig, axes, title, columns=6)


def _risk_leverage(vol: Any, t: list[datetime], book: list[dict[str, Any]]) -> None:
    """Risk leverage σ_book / (E·σ_ref) on the right-hand axis of σ_book / E's panel.

    σ_ref is the run's, so the right axis is scaled as the left one over σ_ref: each cycle's dot
    sits on σ_book / E's line, and the target reads as L_base on the right."""
    values = [_nan(c.get("risk_leverage")) for c in book]
    if not any(v == v for v in values):
        return
    twin = vol.twinx()
    twin.plot(t, values, color="tab:brown", ls="none", marker=".", ms=3)
    vol.plot([], [], color="tab:brown", ls="none", marker=".", label="risk leverage (right axis)")
    twin.set_ylabel("risk leverage (×)")
    ratios = sorted(
        share / lev
        for c, lev in zip(book, values, strict=True)
        if lev == lev and lev and (share := _share(c.get("book_vol_usd"), c["portfolio_equity_usd"])) == share
    )
    if ratios:
        reference = ratios[len(ratios) // 2]
        low, high = vol.get_ylim()
        twin.set_ylim(low / reference, high / reference)


def _t(c: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(c["ts"]))


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _share(value: float | None, of: float | None) -> float:
    return float("nan") if value is None or not of else value / of
