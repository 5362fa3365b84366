"""Market paths for the simulated exchange: a seeded stochastic-volatility model, or a CSV replay.

A path answers two questions: ``state_at(t)``, the index price, the 30-day ATM implied volatility
(a DVOL-like index) and the perpetual's premium over the index in force at virtual time ``t``; and
``next_change_after(t)``, when that state next changes (paths are step functions).  The funding
Deribit charges is derived from the premium (:mod:`controller.sim.funding`).  The
stochastic path lives on a fixed grid of virtual time (``step_s``) and is generated from the seed
alone, so the market at a given time does not depend on how often or in what order it is asked.

Stochastic volatility model, per step ``dt`` (years), with correlated normals ``z1, z2``
(correlation ``rho < 0``: volatility rises as the price falls) and Poisson jumps::

    ln σ' = ln σ + κ (ln σ̄ − ln σ) dt + ξ √dt z2 + J_σ          (implied vol mean-reverts)
    σ_r   = realised_ratio · σ                                   (a variance risk premium)
    ln S' = ln S − ½ σ_r² dt + σ_r √dt z1 + J_S                 (J_S ~ N(μ_J, s_J), J_σ = |J_S|·jump_vol_beta)
    f'    = f + θ_f (f̄ − f) dt + η_f √dt z3                      (the perpetual's premium, mean-reverting)
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np

SECONDS_PER_YEAR = 365.0 * 86400.0


@dataclass(frozen=True)
class MarketState:
    time: datetime  # when this state took effect (a grid point or a CSV row)
    index: float  # USD
    atm_vol: float  # 30-day ATM implied volatility, decimal (DVOL / 100)
    perp_premium: float  # the perpetual's mark over the index, minus 1 (funding is derived from it)


class MarketPath(Protocol):
    start: datetime

    def state_at(self, t: datetime) -> MarketState: ...

    def next_change_after(self, t: datetime) -> datetime | None:
        """The first time after ``t`` at which the state may change (None: it never does again)."""
        ...


@dataclass(frozen=True)
class StochasticVolParams:
    index0: float = 90_000.0
    vol0: float = 0.55
    vol_mean: float = 0.55
    vol_reversion: float = 6.0  # κ per year: a half-life of about six weeks
    vol_of_vol: float = 1.1  # ξ per sqrt(year)
    rho: float = -0.5
    realised_ratio: float = 0.9
    jump_intensity: float = 6.0  # jumps per year
    jump_mean: float = -0.02
    jump_std: float = 0.05
    jump_vol_beta: float = 2.0
    funding0: float = 0.0001
    funding_mean: float = 0.0001
    funding_reversion: float = 50.0
    funding_vol: float = 0.002
    step_s: float = 300.0  # grid of virtual time, seconds


# Each currency's own level and volatility; the rest of the model is shared.  ETH's implied
# volatility (its DVOL) has run some 15-25 points above BTC's.
CURRENCY_MARKETS: dict[str, StochasticVolParams] = {
    "BTC": StochasticVolParams(),
    "ETH": StochasticVolParams(index0=3_000.0, vol0=0.75, vol_mean=0.75),
}


class GridPath:
    """A path on a fixed grid of virtual time (``params.step_s``), its arrays of ln S, ln σ and the
    premium extended lazily, a chunk at a time, by ``_extend``."""

    start: datetime
    params: StochasticVolParams
    _log_s: np.ndarray
    _log_v: np.ndarray
    _funding: np.ndarray

    def _begin(self, start: datetime, params: StochasticVolParams) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        self.start = start
        self.params = params
        self._log_s = np.array([math.log(params.index0)])
        self._log_v = np.array([math.log(params.vol0)])
        self._funding = np.array([params.funding0])

    def state_at(self, t: datetime) -> MarketState:
        step = max(0, int((t - self.start).total_seconds() // self.params.step_s))
        while step >= self._log_s.size:
            self._extend()
        return MarketState(
            time=self.start + timedelta(seconds=step * self.params.step_s),
            index=float(math.exp(self._log_s[step])),
            atm_vol=float(math.exp(self._log_v[step])),
            perp_premium=float(self._funding[step]),
        )

    def next_change_after(self, t: datetime) -> datetime:
        step_s = self.params.step_s
        elapsed = (t - self.start).total_seconds()
        return self.start + timedelta(seconds=(math.floor(elapsed / step_s) + 1) * step_s)

    def _append(self, log_s: np.ndarray, log_v: np.ndarray, funding: np.ndarray) -> None:
        self._log_s = np.concatenate([self._log_s, log_s])
        self._log_v = np.concatenate([self._log_v, log_v])
        self._funding = np.concatenate([self._funding, funding])

    def _extend(self) -> None:
        raise NotImplementedError


class StochasticVolPath(GridPath):
    """Seeded, lazily extended stochastic-volatility path on a fixed virtual-time grid."""

    _CHUNK = 4096

    def __init__(self, *, seed: int, start: datetime, params: StochasticVolParams | None = None) -> None:
        self._begin(start, params or StochasticVolParams())
        self._rng = np.random.default_rng(seed)

    def _extend(self) -> None:
        p = self.params
        n = self._CHUNK
        dt = p.step_s / SECONDS_PER_YEAR
        z = self._rng.standard_normal((3, n))
        z2 = p.rho * z[0] + math.sqrt(1.0 - p.rho**2) * z[1]
        jumps = self._rng.random(n) < p.jump_intensity * dt
        jump_sizes = np.where(jumps, self._rng.normal(p.jump_mean, p.jump_std, n), 0.0)
        log_s, log_v, funding = integrate_steps(
            p,
            last=(self._log_s[-1], self._log_v[-1], self._funding[-1]),
            z_index=z[0],
            z_vol=z2,
            z_funding=z[2],
            jump_sizes=jump_sizes,
        )
        self._append(log_s, log_v, funding)


def integrate_steps(
    p: StochasticVolParams,
    *,
    last: tuple[float, float, float],
    z_index: np.ndarray,
    z_vol: np.ndarray,
    z_funding: np.ndarray,
    jump_sizes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The next ``len(z_index)`` grid steps of (ln S, ln σ, premium) from ``last``, given the shocks
    (``z_vol`` already correlated with ``z_index``) and the log jump of each step (0: none)."""
    n = z_index.size
    dt = p.step_s / SECONDS_PER_YEAR
    log_s = np.empty(n)
    log_v = np.empty(n)
    funding = np.empty(n)
    s, v, f = last
    target = math.log(p.vol_mean)
    for i in range(n):  # a recursion: each step depends on the last
        v = v + p.vol_reversion * (target - v) * dt + p.vol_of_vol * math.sqrt(dt) * z_vol[i]
        v += abs(jump_sizes[i]) * p.jump_vol_beta
        sigma_r = p.realised_ratio * math.exp(v)
        s = s - 0.5 * sigma_r * sigma_r * dt + sigma_r * math.sqrt(dt) * z_index[i] + jump_sizes[i]
        f = f + p.funding_reversion * (p.funding_mean - f) * dt + p.funding_vol * math.sqrt(dt) * z_funding[i]
        log_s[i], log_v[i], funding[i] = s, v, f
    return log_s, log_v, funding


class ReplayError(ValueError):
    """A market-history CSV is unusable; the message names the file, row and column."""


REPLAY_COLUMNS = ("timestamp_ms", "index_usd", "dvol", "funding_rate_8h")
PRICE_COLUMNS = ("index_usd", "btc_usd")  # the price column; btc_usd is the name the BTC file uses


@dataclass(frozen=True)
class ReplayData:
    """Validated history: times (UTC epoch ms), prices, vol index (percent) and funding per 8 h."""

    source: str
    times_ms: np.ndarray
    prices: np.ndarray
    vol_index_pct: np.ndarray
    funding_8h: np.ndarray
    gaps: tuple[tuple[datetime, datetime], ...]  # intervals longer than twice the usual step

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.times_ms[0] / 1000.0, UTC)

    def head(self, rows: int) -> ReplayData:
        """The first ``rows`` rows, with the gaps that fall inside them."""
        return self._rows(slice(0, rows))

    def between(self, start: datetime | None = None, end: datetime | None = None) -> ReplayData:
        """The rows at or after ``start`` and before ``end`` (UTC), with the gaps inside them."""
        lo = (
            0
            if start is None
            else int(np.searchsorted(self.times_ms, start.timestamp() * 1000.0, side="left"))
        )
        hi = (
            self.times_ms.size
            if end is None
            else int(np.searchsorted(self.times_ms, end.timestamp() * 1000.0))
        )
        if hi - lo < 2:
            raise ReplayError(f"{self.source}: fewer than two rows between {start} and {end}")
        return self._rows(slice(lo, hi))

    def _rows(self, rows: slice) -> ReplayData:
        times = self.times_ms[rows]
        first, last = times[0] / 1000.0, times[-1] / 1000.0
        return replace(
            self,
            times_ms=times,
            prices=self.prices[rows],
            vol_index_pct=self.vol_index_pct[rows],
            funding_8h=self.funding_8h[rows],
            gaps=tuple(g for g in self.gaps if first <= g[0].timestamp() and g[1].timestamp() <= last),
        )

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.times_ms[-1] / 1000.0, UTC)


def load_replay_csv(path: Path) -> ReplayData:
    """Read and check a CSV shaped like the files in ``../shared/data``.

    Required columns: ``timestamp_ms`` (bar end, UTC epoch milliseconds), ``index_usd`` (the index
    in USD; ``btc_usd`` is accepted in its place), ``dvol`` (the implied-volatility index, percent)
    and ``funding_rate_8h`` (read as the perpetual's premium over the index, from which the
    simulator derives Deribit's funding: controller.sim.funding).  Rows must be strictly
    increasing in time with finite, positive prices and vol; gaps (more than twice the median
    step) are reported, never filled.
    """
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            price = next((c for c in PRICE_COLUMNS if c in header), PRICE_COLUMNS[0])
            wanted = tuple(price if c == "index_usd" else c for c in REPLAY_COLUMNS)
            missing = [c for c in wanted if c not in header]
            if missing:
                raise ReplayError(
                    f"{path}: missing column(s) {', '.join(missing)} (have: {', '.join(header)})"
                )
            rows = list(reader)
    except OSError as exc:
        raise ReplayError(f"cannot read market history {path}: {exc.strerror}") from exc
    if len(rows) < 2:
        raise ReplayError(f"{path}: needs at least two rows of history, found {len(rows)}")
    columns = {c: np.empty(len(rows)) for c in wanted}
    for line, row in enumerate(rows, start=2):
        for column in wanted:
            raw = (row.get(column) or "").strip()
            try:
                value = float(raw)
            except ValueError:
                raise ReplayError(f"{path}:{line}: column {column} is not a number: {raw!r}") from None
            if not math.isfinite(value):
                raise ReplayError(
                    f"{path}:{line}: column {column} is {raw!r}; prices and rates must be finite"
                )
            columns[column][line - 2] = value
    times = columns["timestamp_ms"]
    steps = np.diff(times)
    if (steps <= 0).any():
        bad = int(np.flatnonzero(steps <= 0)[0]) + 3
        raise ReplayError(
            f"{path}:{bad}: timestamp_ms does not increase (rows must be sorted by time, no duplicates)"
        )
    for column in (price, "dvol"):
        nonpositive = np.flatnonzero(columns[column] <= 0)
        if nonpositive.size:
            raise ReplayError(f"{path}:{int(nonpositive[0]) + 2}: column {column} must be positive")
    usual = float(np.median(steps))
    gap_at = np.flatnonzero(steps > 2.0 * usual)
    gaps = tuple(
        (datetime.fromtimestamp(times[i] / 1000.0, UTC), datetime.fromtimestamp(times[i + 1] / 1000.0, UTC))
        for i in gap_at
    )
    return ReplayData(
        source=str(path),
        times_ms=times,
        prices=columns[price],
        vol_index_pct=columns["dvol"],
        funding_8h=columns["funding_rate_8h"],
        gaps=gaps,
    )


class ReplayPath:
    """Step-wise replay: the state at ``t`` is the last row at or before ``t``."""

    def __init__(self, data: ReplayData) -> None:
        self.data = data
        self.start = data.start
        self._last: tuple[datetime, MarketState] | None = None  # the engine asks for one time many times
        self._row: tuple[int, MarketState] | None = None
        self._times: dict[int, datetime] = {}  # row times as datetimes, for the rows in use

    def state_at(self, t: datetime) -> MarketState:
        if self._last is not None and self._last[0] == t:
            return self._last[1]
        i = max(0, int(np.searchsorted(self.data.times_ms, t.timestamp() * 1000.0, side="right")) - 1)
        state = self._row_state(i)
        self._last = (t, state)
        return state

    def _row_state(self, i: int) -> MarketState:
        """The state of row ``i``, built once while the engine keeps asking about the same row."""
        if self._row is not None and self._row[0] == i:
            return self._row[1]
        state = MarketState(
            time=self._time_of(i),
            index=float(self.data.prices[i]),
            atm_vol=float(self.data.vol_index_pct[i]) / 100.0,
            perp_premium=float(self.data.funding_8h[i]),
        )
        self._row = (i, state)
        return state

    def _time_of(self, i: int) -> datetime:
        cached = self._times.get(i)
        if cached is None:
            if len(self._times) > 64:
                self._times.clear()
            cached = self._times[i] = datetime.fromtimestamp(self.data.times_ms[i] / 1000.0, UTC)
        return cached

    def next_change_after(self, t: datetime) -> datetime | None:
        times = self.data.times_ms
        i = int(np.searchsorted(times, t.timestamp() * 1000.0, side="right"))
        return self._time_of(i) if i < times.size else None

    def exhausted(self, t: datetime) -> bool:
        return t > self.data.end
