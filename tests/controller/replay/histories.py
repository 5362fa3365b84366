"""Synthetic market histories for calibration tests: seeded, short, shaped to have a known answer."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

START = datetime(2024, 1, 1, tzinfo=UTC)


def write_history(
    path: Path,
    *,
    days: float,
    step_h: float = 4.0,
    vol: float | list[tuple[float, float]] = 0.6,
    dvol_pct: float | list[tuple[float, float]] = 60.0,
    seed: int = 1,
    start: datetime = START,
) -> Path:
    """A geometric random walk of the index (annualised ``vol``) with a flat funding rate.

    ``vol`` and ``dvol_pct`` are a constant or regimes ``[(from_day, value), …]``: the history changes
    regime at a known date."""
    n = int(days * 24 / step_h) + 1
    t_days = np.arange(n) * step_h / 24.0
    rng = np.random.default_rng(seed)
    sigma = _regimes(vol, t_days)
    dt = step_h / (24.0 * 365.0)
    r = sigma[1:] * np.sqrt(dt) * rng.standard_normal(n - 1) - 0.5 * sigma[1:] ** 2 * dt
    price = 50_000.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    dvol = _regimes(dvol_pct, t_days)
    t0 = start.timestamp() * 1000.0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["timestamp_ms", "index_usd", "dvol", "funding_rate_8h"])
        for i in range(n):
            out.writerow([int(t0 + t_days[i] * 86_400_000), f"{price[i]:.2f}", f"{dvol[i]:.2f}", "0.0001"])
    return path


def _regimes(value: float | list[tuple[float, float]], t_days: np.ndarray) -> np.ndarray:
    if isinstance(value, int | float):
        return np.full(t_days.size, float(value))
    out = np.empty(t_days.size)
    for from_day, v in value:
        out[t_days >= from_day] = v
    return out
