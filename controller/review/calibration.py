"""The page of a calibration (``levctl calibrate``): its history, what mattered, each fold in and out.

It reads the calibration's result as plain data (the ``--json`` shape, and the importance of each
parameter), so it loads neither Optuna nor the controller; plots and page are those of
:mod:`.report` (matplotlib, images inline).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from controller.review.page import figure_text, html_page, html_table

FIGURE_NAMES = {
    "tracking_error": "tracking error",
    "vol_ratio": "vol / target",
    "vol_of_vol": "vol of vol",
    "trades_per_year": "trades / yr",
    "max_drawdown": "max drawdown",
    "objective": "objective",
}
PERCENT = {"tracking_error", "vol_of_vol", "max_drawdown"}


def fold_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """One row per fold and sample: its windows and figures, as text."""
    rows = []
    for i, fold in enumerate(result["walk_forward"], start=1):
        for sample, window in (("in_sample", fold["train"]), ("out_of_sample", fold["test"])):
            figures = fold[sample] or {}
            rows.append(
                {
                    "fold": str(i),
                    "sample": sample.replace("_", " "),
                    "window": f"{window[0][:10]} → {window[1][:10]}",
                    **{
                        FIGURE_NAMES[k]: figure_value(k, figures.get(k)) for k in FIGURE_NAMES if k in figures
                    },
                }
            )
    return rows


def figure_value(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name in PERCENT or name == "objective":
        return f"{value:.1%}" if name in PERCENT else f"{value:.4f}"
    return f"{value:.3f}" if name == "vol_ratio" else figure_text(name, float(value))


def param_text(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_calibration_report(
    result: dict[str, Any],
    out: Path,
    *,
    title: str,
    importance: dict[str, dict[str, float]],
    defaults: dict[str, Any],
    summary: list[str],
) -> Path:
    """``calibration.html`` (and its PNGs) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(result, importance, out)
    parts = [f"<h1>{html.escape(title)}</h1>", *(f"<p>{html.escape(s)}</p>" for s in summary)]
    best = result["best"]
    parts.append(
        html_table(
            f"Best parameters (final study, objective {best['objective']:.4f})",
            [
                {"parameter": k, "configured": param_text(defaults.get(k)), "calibrated": param_text(v)}
                for k, v in best["params"].items()
            ],
        )
    )
    parts.append(html_table("Walk-forward: each fold in and out of sample", fold_rows(result)))
    parts.append(
        html_table(
            "Each fold's chosen parameters",
            [
                {"fold": str(i), **{k: param_text(v) for k, v in f["params"].items()}}
                for i, f in enumerate(result["walk_forward"], start=1)
            ],
        )
    )
    for name, path in plots.items():
        encoded = base64.b64encode(path.read_bytes()).decode()
        parts.append(f'<h2>{name}</h2><img alt="{name}" src="data:image/png;base64,{encoded}">')
    parts.append(
        html_table(
            "Trials",
            [
                {
                    "study": t["study"],
                    "trial": t["number"],
                    "state": t["state"],
                    "objective": figure_value("objective", t["objective"]),
                    "params": ", ".join(f"{k}={param_text(v)}" for k, v in t["params"].items()),
                    "error": t["error"] or "",
                }
                for t in result["trials"]
            ],
        )
    )
    page = out / "calibration.html"
    page.write_text(html_page(title, "\n".join(parts)), encoding="utf-8")
    return page


def _plots(result: dict[str, Any], importance: dict[str, dict[str, float]], out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    by_study: dict[str, list[tuple[int, float]]] = {}
    for t in result["trials"]:
        if t["objective"] is not None:
            by_study.setdefault(t["study"], []).append((t["number"], t["objective"]))
    if by_study:
        fig, ax = plt.subplots(figsize=(11, 4))
        for study, points in by_study.items():
            points.sort()
            numbers = [n for n, _ in points]
            values = [v for _, v in points]
            best = [min(values[: i + 1]) for i in range(len(values))]
            dots = ax.scatter(numbers, values, s=12, alpha=0.5)
            ax.step(numbers, best, where="post", color=dots.get_facecolor()[0], label=f"{study}: best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("objective")
        ax.set_title("Optimisation history: each trial's objective, and the best so far, per study")
        ax.legend(loc="best", fontsize=8)
        fig.savefig(out / "history.png", dpi=90)
        paths["optimisation history"] = out / "history.png"
    shares = importance.get("final") or next((v for v in importance.values() if v), {})
    if shares:
        fig, ax = plt.subplots(figsize=(11, 0.5 + 0.45 * len(shares)))
        names = list(shares)[::-1]
        ax.barh(names, [shares[n] for n in names], color="tab:blue")
        ax.set_xlabel("importance (PED-ANOVA, share)")
        ax.set_title("Parameter importance (final study)")
        fig.subplots_adjust(left=0.3)
        fig.savefig(out / "importance.png", dpi=90)
        paths["parameter importance"] = out / "importance.png"
    folds = result["walk_forward"]
    if folds:
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.5))
        x = list(range(1, len(folds) + 1))
        for ax, key in zip(axes, ("tracking_error", "vol_ratio", "trades_per_year"), strict=True):
            for offset, sample in ((-0.2, "in_sample"), (0.2, "out_of_sample")):
                values = [(f[sample] or {}).get(key) or 0.0 for f in folds]
                ax.bar([i + offset for i in x], values, width=0.4, label=sample.replace("_", " "))
            ax.set_xticks(x)
            ax.set_xlabel("fold")
            ax.set_title(FIGURE_NAMES[key], fontsize=9)
        axes[0].legend(fontsize=8)
        fig.suptitle("Walk-forward: in sample (training) against out of sample (the next window)")
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.15, top=0.82, wspace=0.3)
        fig.savefig(out / "folds.png", dpi=90)
        paths["walk-forward folds"] = out / "folds.png"
    plt.close("all")
    return paths
