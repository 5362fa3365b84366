"""The report's plots of a portfolio run's whole book (one point per cycle, never a currency's row
after another's): the book's equity beside each currency's, σ_book / E against its target with the
risk and portfolio leverage, and the joint VaR, ES and liquidation cascade.  Each currency's own
plots are :func:`.plots.plot_run` on its rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from controller.review.plots import MAX_PLOT_POINTS, _finish, _percent, _save, _thousands
from controller.review.report import CycleColumns, Summary


def plot_book(
    book: CycleColumns, legs: dict[str, CycleColumns], summary: Summary, out: Path, *, prefix: str
) -> dict[str, Path]:
    """Write the book's PNGs as ``{prefix}{name}.png`` (``book`` from :func:`.report.book_columns`,
    ``legs`` each currency's rows); their paths by name (none with fewer than two good cycles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = np.flatnonzero(book.good)
    if every.size < 2:
        return {}
    kept = every[:: max(1, every.size // MAX_PLOT_POINTS)]
    t = _utc(book.t_s[kept])
    bust = None if summary.went_bust is None else np.datetime64(summary.went_bust.rstrip("Z"), "us")
    title = f"run {summary.run} ({summary.role or summary.mode}), the book of {' + '.join(legs)}"
    paths: dict[str, Path] = {}

    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(t, book["equity_usd"][kept], color="black", lw=1.4, label="book (USD, the currencies' summed)")
    for name, c in legs.items():
        good = np.flatnonzero(c.good)
        shown = good[:: max(1, good.size // MAX_PLOT_POINTS)]
        ax.plot(_utc(c.t_s[shown]), c["equity_usd"][shown], lw=1, label=f"{name} (USD)")
    ax.set_ylabel("equity (USD)")
    _thousands(ax)
    _finish(ax, f"{title}: equity" + (" — WENT BUST" if bust is not None else ""), bust)
    paths["book-equity"] = _save(fig, out / f"{prefix}book-equity.png")

    fig, ax = plt.subplots(figsize=(11, 3.8))
    equity = book["portfolio_equity_usd"][kept]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = book["book_vol_usd"][kept] / equity
    ax.plot(t, ratio, color="tab:purple", label="σ_book / E (left, a year; ÷ σ_ref: the risk leverage)")
    ax.plot(t, book["book_target_vol"][kept], color="tab:green", ls="--", label="its target (left)")
    ax.set_ylabel("σ_book / equity (annualised)")
    _percent(ax)
    twin = ax.twinx()
    twin.plot(
        t,
        book["portfolio_leverage"][kept],
        color="tab:gray",
        lw=0.8,
        label="portfolio leverage Σ|Δ|/E (right)",
    )
    twin.set_ylabel("leverage (× equity)")
    _finish(ax, f"{title}: the book's volatility against its target", bust, twin)
    paths["book-risk"] = _save(fig, out / f"{prefix}book-risk.png")

    var, es, cascade = (book[k][kept] for k in ("portfolio_var_usd", "portfolio_es_usd", "cascade_distance"))
    if np.isfinite(var).any() or np.isfinite(cascade).any():
        paths["book-var"] = _var_and_cascade(
            t, var / equity, es / equity, cascade, f"{title}: ", bust, out / f"{prefix}book-var.png"
        )
    plt.close("all")
    return paths


def _var_and_cascade(
    t: np.ndarray, var: np.ndarray, es: np.ndarray, cascade: np.ndarray, title: str, bust: Any, path: Path
) -> Path:
    """VaR and ES as shares of equity on the left (when recorded), the cascade's distance on the right."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.8))
    twin = None
    if np.isfinite(var).any():
        ax.plot(t, var, color="tab:red", label="joint 1-day VaR / E (left)")
        ax.plot(t, es, color="tab:orange", lw=0.8, label="ES / E (left)")
        ax.set_ylabel("share of the book's equity")
        _percent(ax)
        twin = ax.twinx()
    side = " (right)" if twin is not None else " (VaR: too few common days yet)"
    (twin or ax).plot(
        t, cascade, color="tab:gray", lw=0.9, label=f"liquidation cascade: common move to it{side}"
    )
    (twin or ax).set_ylabel("distance (index move)")
    _percent(twin or ax)
    _finish(ax, f"{title}joint VaR and the liquidation cascade", bust, twin)
    return _save(fig, path)


def _utc(t_s: np.ndarray) -> np.ndarray:
    return (t_s * 1e6).astype("datetime64[us]")
