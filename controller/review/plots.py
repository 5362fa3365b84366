"""The report's plots, one set per run: every axis labelled with its unit, a legend on every plot,
time in UTC, fractions as percentages.  A run that went bust is marked where it did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from controller.review.report import CycleColumns, Summary

MAX_PLOT_POINTS = 5_000
PLOTS = ("leverage", "volatility", "equity", "greeks", "margin")


def plot_run(c: CycleColumns, summary: Summary, out: Path, *, prefix: str) -> dict[str, Path]:
    """Write one run's PNGs as ``{prefix}{name}.png``; their paths by name (none without cycles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = np.flatnonzero(c.good)
    if every.size < 2:
        return {}
    # a line needs no more points than a plot has pixels: thin long logs, keep every rebalance
    stride = max(1, every.size // MAX_PLOT_POINTS)
    kept = every[(np.arange(every.size) % stride == 0) | c.rebalance[every]]
    t = (c.t_s[kept] * 1e6).astype("datetime64[us]")  # UTC
    bust = None if summary.went_bust is None else np.datetime64(summary.went_bust.rstrip("Z"), "us")
    title = f"run {summary.run}{f' {summary.part}' if summary.part else ''} ({summary.role or summary.mode})"

    def col(name: str) -> np.ndarray:
        return c[name][kept]

    paths: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.fill_between(
        t, col("band_low"), col("band_high"), color="tab:green", alpha=0.15, label="no-trade band"
    )
    ax.plot(t, col("target_leverage"), color="tab:green", lw=1, label="target L*")
    ax.plot(t, col("signed_leverage"), color="tab:blue", lw=1.2, label="leverage L")
    trades = c.rebalance[kept]
    ax.scatter(t[trades], col("signed_leverage")[trades], color="tab:red", s=14, zorder=3, label="rebalance")
    ax.set_ylabel("leverage (× equity)")
    _finish(ax, f"{title}: effective leverage against the target band", bust)
    paths["leverage"] = _save(fig, out / f"{prefix}leverage.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.plot(t, col("sigma_hat"), color="tab:purple", label="σ̂ (left, % a year)")
    ax.set_ylabel("σ̂ (annualised)")
    _percent(ax)
    twin = ax.twinx()
    twin.plot(t, col("target_leverage"), color="tab:green", label="target L* (right, × equity)")
    twin.set_ylabel("target leverage (× equity)")
    _finish(ax, f"{title}: volatility signal and the target it sets", bust, twin)
    paths["volatility"] = _save(fig, out / f"{prefix}volatility.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    equity = col("equity_usd")
    start = float(equity[0])
    ax.plot(t, equity, color="tab:blue", label="equity (left, USD; right: P&L since the start, USD)")
    ax.set_ylabel("equity (USD)")
    pnl = ax.secondary_yaxis(
        "right", functions=(lambda e: np.asarray(e) - start, lambda p: np.asarray(p) + start)
    )
    pnl.set_ylabel("P&L since the start (USD)")
    _thousands(ax, pnl)
    _finish(ax, f"{title}: equity and P&L" + (" — WENT BUST" if bust is not None else ""), bust)
    paths["equity"] = _save(fig, out / f"{prefix}equity.png")

    fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharex=True)
    for axis, (name, label, unit) in zip(
        axes.flat,
        (
            ("delta_usd", "delta", "USD"),
            ("dollar_gamma_usd", "dollar gamma", "USD per 1 % move"),
            ("vega_usd", "vega", "USD per vol point"),
            ("theta_usd", "theta", "USD per day"),
        ),
        strict=True,
    ):
        axis.plot(t, col(name), lw=1, label=f"{label} ({unit})")
        axis.set_ylabel(unit, fontsize=8)
        _thousands(axis)
        axis.legend(loc="upper left", fontsize=7)
        axis.set_title(label, fontsize=9)
    for axis in axes[1]:
        axis.set_xlabel("time (UTC)")
    fig.suptitle(f"{title}: book greeks")
    paths["greeks"] = _save(fig, out / f"{prefix}greeks.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.plot(t, col("margin_ratio"), color="tab:red", label="margin ratio (left, maintenance / equity)")
    ax.set_ylabel("margin ratio")
    _percent(ax)
    twin = ax.twinx()
    twin.plot(
        t, col("worst_scenario_loss_usd"), color="tab:gray", lw=0.8, label="worst scenario P&L (right, USD)"
    )
    twin.set_ylabel("worst scenario P&L (USD)")
    _thousands(twin)
    _finish(ax, f"{title}: margin ratio and worst scenario loss", bust, twin)
    paths["margin"] = _save(fig, out / f"{prefix}margin.png")
    plt.close("all")
    return paths


def _finish(ax: Any, title: str, bust: Any, twin: Any = None) -> None:
    """Title, the UTC time axis, the bust marker, and one legend for both y axes, above the plot."""
    if bust is not None:
        ax.axvline(bust, color="black", ls="--", lw=1.2, label="went bust")
    ax.figure.suptitle(title)
    ax.set_xlabel("time (UTC)")
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    (twin or ax).legend(
        handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=min(4, len(handles)),
        fontsize=8, frameon=False,
    )  # fmt: skip


def _percent(ax: Any) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))


def _thousands(*axes: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    for ax in axes:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _save(fig: Any, path: Path) -> Path:
    fig.autofmt_xdate()
    # fixed margins (room for the rotated dates and a twin axis): a tight layout would draw every
    # figure twice, and on a long log laying out the date ticks is most of the report's time
    fig.subplots_adjust(left=0.09, right=0.88, bottom=0.22, top=0.8, hspace=0.45, wspace=0.3)
    fig.savefig(path, dpi=90)
    return path


def plot_equity_together(data_runs: list[tuple[Summary, CycleColumns]], out: Path) -> Path | None:
    """The runs' equity on one plot, each its own line (a replay's controller beside its baselines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [(s, c) for s, c in data_runs if np.count_nonzero(c.good) >= 2]
    if len(drawn) < 2:
        return None
    fig, ax = plt.subplots(figsize=(11, 4))
    for summary, c in drawn:
        every = np.flatnonzero(c.good)
        kept = every[:: max(1, every.size // MAX_PLOT_POINTS)]
        t = (c.t_s[kept] * 1e6).astype("datetime64[us]")
        name = f"run {summary.run} {summary.role or summary.mode}" + (
            " (went bust)" if summary.went_bust else ""
        )
        ax.plot(t, c["equity_usd"][kept], lw=1, label=name)
    ax.set_ylabel("equity (USD)")
    _thousands(ax)
    _finish(ax, "Equity of each run", None)
    path = _save(fig, out / "runs-equity.png")
    plt.close("all")
    return path
