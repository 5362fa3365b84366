"""The live page's plot: the recent cycles of the run followed (leverage against the band and L*,
σ̂ and its components, equity, VaR against equity where the log has it), as a PNG.  Drawn only when
a new cycle arrives (the app keeps the last one)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any


def recent_plot(cycles: list[dict[str, Any]], run: dict[str, Any], *, limit: float | None = None) -> bytes:
    """``limit``: the run's VaR guard (``max_var_fraction``), drawn beside VaR / equity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    good = [c for c in cycles if c["equity_usd"] is not None]
    t = [datetime.fromisoformat(str(c["ts"])) for c in good]

    def col(name: str) -> list[float]:
        return [float("nan") if c[name] is None else c[name] for c in good]

    var_share = [
        float("nan") if c.get("var_usd") is None or not c["equity_usd"] else c["var_usd"] / c["equity_usd"]
        for c in good
    ]
    with_var = any(v == v for v in var_share)  # a number somewhere (NaN is not equal to itself)
    fig, axes = plt.subplots(4 if with_var else 3, 1, figsize=(11, 8.6 if with_var else 7), sharex=True)
    lev, vol, eq = axes[:3]
    lev.fill_between(
        t, col("band_low"), col("band_high"), color="tab:green", alpha=0.15, label="no-trade band"
    )
    lev.plot(t, col("target_leverage"), color="tab:green", lw=1, label="target L*")
    lev.plot(t, col("signed_leverage"), color="tab:blue", lw=1.3, label="leverage L")
    trades = [i for i, c in enumerate(good) if c["action"] in ("REBALANCE", "REDUCE")]
    lev.scatter([t[i] for i in trades], [col("signed_leverage")[i] for i in trades], color="tab:red", s=12,
                zorder=3, label="rebalance")  # fmt: skip
    lev.set_ylabel("× equity")
    vol.plot(t, col("sigma_hat"), color="tab:purple", lw=1.6, label="σ̂ (annualised)")
    for name, label, colour in (
        ("sigma_implied", "implied", "tab:orange"),
        ("sigma_realised", "realised", "tab:gray"),
        ("sigma_blend", "blend", "tab:cyan"),
    ):
        if any(c.get(name) is not None for c in good):
            vol.plot(t, col(name), color=colour, lw=0.8, ls="--", label=label)
    vol.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    vol.set_ylabel("σ̂")
    eq.plot(t, col("equity_usd"), color="tab:blue", label="equity (USD)")
    eq.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    eq.set_ylabel("USD")
    if with_var:
        risk = axes[3]
        risk.plot(t, var_share, color="tab:red", label="1-day VaR / equity")
        if limit is not None:
            risk.axhline(limit, color="tab:red", ls=":", lw=1, label=f"limit {limit:.0%}")
        risk.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
        risk.set_ylabel("VaR")
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.09, hspace=0.3)
    return png(fig, axes, f"run {run['id']} ({run['mode']}): the last {len(good)} cycles", columns=4)


def png(fig: Any, axes: Any, title: str, *, columns: int) -> bytes:
    """The figure as PNG bytes: UTC dates on the shared time axis, a legend above each panel."""
    import matplotlib.pyplot as plt
    from matplotlib.dates import AutoDateLocator, DateFormatter

    axes[-1].set_xlabel("time (UTC)")
    axes[-1].xaxis.set_major_locator(AutoDateLocator(maxticks=8))
    axes[-1].xaxis.set_major_formatter(DateFormatter("%m-%d %H:%M", tz="UTC"))
    for axis in axes:
        axis.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, ncol=columns, frameon=False)
        axis.grid(alpha=0.3)
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
