"""Which σ̂ makes the volatility-targeted perpetual book hit its target? (docs/volatility.md)

Every candidate is a real replay — the same controller, simulator and journal as ``levctl replay``
— of the reference perpetual book (1 BTC, L_base 1.5 at σ_ref 60 %: a 90 % volatility target) on
the shared BTC history, split in two:

* in sample, 2021-03-24 → 2023-12-31: the defaults are chosen here, and only here;
* out of sample, 2024-01-01 → 2025-08-26: reported, never used to choose.

``levctl calibrate`` (docs/calibration.md) searches the same parameters with Optuna, walk-forward;
both replay and measure a candidate with :mod:`controller.replay.evaluate`.

The choice: the lowest in-sample tracking error among the candidates with at most 40 trades a year
and a full-period volatility within 5 % of the target.  Run from the repository root::

    python benchmarks/volatility_study.py [--data FILE] [--json OUT] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.config import load_config
from controller.replay.evaluate import configured, replay_figures
from controller.sim.market import load_replay_csv

SPLIT = datetime(2024, 1, 1, tzinfo=UTC)
MAX_TRADES_PER_YEAR = 40.0
VOL_TOLERANCE = 0.05


@dataclass(frozen=True)
class Candidate:
    name: str
    risk: dict[str, Any]
    band: float


def candidates() -> list[Candidate]:
    """The sources the issue names, the half-lives 1–14 days, band widths from ±15 % to ±30 %."""
    out = []
    for band in (0.15, 0.20, 0.25, 0.30):
        for days in (1, 2, 3, 4, 5, 7, 14):
            risk = {"sigma_estimator": "realised", "realised_half_life_days": days}
            out.append(Candidate(f"realised {days} d, band {band:.2f}", risk, band))
    for band in (0.15, 0.30):
        out.append(Candidate(f"implied, band {band:.2f}", {"sigma_estimator": "implied"}, band))
        vrp = {"sigma_estimator": "implied_vrp", "vrp_half_life_days": 90}
        out.append(Candidate(f"implied × premium 90 d, band {band:.2f}", vrp, band))
        for days in (3, 7):
            blend = {"sigma_estimator": "blend", "realised_half_life_days": days, "blend_weight": 0.5}
            out.append(
                Candidate(f"blend ½ realised {days} d + implied × premium, band {band:.2f}", blend, band)
            )
    return out


def run(candidate: Candidate, data: Any) -> dict[str, Any]:
    """The candidate replayed (the controller alone) and measured as ``levctl replay`` measures it."""
    base = load_config(None, embedded="replay-perpetual.toml")
    values = {f"risk.{k}": v for k, v in candidate.risk.items()} | {"policy.band": candidate.band}
    return replay_figures(configured(base, values, source=candidate.name), data)


def eligible(figures: dict[str, Any]) -> bool:
    ratio = figures["vol_ratio"]
    return (
        figures["trades_per_year"] <= MAX_TRADES_PER_YEAR
        and ratio is not None
        and abs(ratio - 1.0) <= VOL_TOLERANCE
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(
        os.environ.get("LEVCTL_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--data", type=Path, default=default / "btc_2h_dvol_funding.csv")
    parser.add_argument("--json", type=Path, help="Write every figure to this file.")
    parser.add_argument("--only", nargs="*", help="Candidates whose name contains one of these.")
    args = parser.parse_args(argv)
    data = load_replay_csv(args.data)
    windows = {"in_sample": data.between(None, SPLIT), "out_of_sample": data.between(SPLIT, None)}
    results = []
    for candidate in candidates():
        if args.only and not any(part in candidate.name for part in args.only):
            continue
        started = time.perf_counter()
        figures = {window: run(candidate, rows) for window, rows in windows.items()}
        results.append({"name": candidate.name, "risk": candidate.risk, "band": candidate.band, **figures})
        print(f"{candidate.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    chosen = min(
        (r for r in results if eligible(r["in_sample"])),
        key=lambda r: (r["in_sample"]["tracking_error"], r["in_sample"]["vol_of_vol"]),
        default=None,
    )
    print(table(results, chosen))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "chosen": chosen and chosen["name"]}, indent=2))
    return 0


def table(results: list[dict[str, Any]], chosen: dict[str, Any] | None) -> str:
    lines = [
        "| σ̂ (band) | window | vol / target | tracking error | vol of vol | max drawdown | trades / yr | turnover / yr | fees USD | funding paid USD |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        mark = " **(chosen)**" if chosen is r else ""
        for window in ("in_sample", "out_of_sample"):
            f = r[window]
            lines.append(
                f"| {r['name']}{mark if window == 'in_sample' else ''} | {window.replace('_', ' ')} "
                f"| {f['vol_ratio']:.3f} | {f['tracking_error']:.1%} | {f['vol_of_vol']:.1%} "
                f"| {f['max_drawdown']:.1%} | {f['trades_per_year']:.0f} | {f['turnover_per_year']:.1f} "
                f"| {f['fees_usd']:,.0f} | {f['funding_paid_usd']:,.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
