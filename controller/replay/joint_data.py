"""Several market histories replayed together: one CSV per currency, aligned on their common times.

``levctl replay --data BTC.csv --data ETH.csv`` replays both currencies on the timestamps the two
files share, so every cycle sees one snapshot per currency from the same instant.  Each file is read
and checked by :func:`controller.sim.market.load_replay_csv`; its currency is named by the caller
(``ETH=path`` on the command line, :func:`parse_data_argument`) or taken from the file:
the price column ``btc_usd`` means BTC, otherwise the first word of the file's name (``eth_2h_….csv``
is ETH).  Rows at times not in every file are dropped (and counted); a time missing from one file
is a gap of the joint history, reported like any other (an interval longer than twice the usual
step).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

import numpy as np

from controller.sim.market import ReplayData, ReplayError, load_replay_csv

_NAME_WORD = re.compile(r"[A-Za-z]{2,10}")


class JointReplayError(ReplayError):
    """Histories that cannot be replayed together; the message names the file(s) and what is wrong."""


@dataclass(frozen=True)
class JointReplayData:
    """Per-currency histories restricted to the same times, in the order they were given."""

    times_ms: np.ndarray  # the common time axis, UTC epoch ms
    data: Mapping[str, ReplayData]  # each currency's rows at exactly these times
    dropped_rows: Mapping[str, int]  # rows of each file outside the common times
    gaps: tuple[tuple[datetime, datetime], ...]  # of the common axis

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(self.data)

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.times_ms[0] / 1000.0, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.times_ms[-1] / 1000.0, UTC)


def parse_data_argument(argument: str) -> tuple[str | None, Path]:
    """``"ETH=data/eth.csv"`` → ("ETH", path); a bare path → (None, path): the file names it."""
    name, sep, rest = argument.partition("=")
    if sep and _NAME_WORD.fullmatch(name):
        return name.upper(), Path(rest)
    return None, Path(argument)


def currency_of(path: Path) -> str:
    """The currency a replay CSV is for: BTC when its price column is ``btc_usd``, else the first
    word of its file name (letters only: ``eth_2h_dvol.csv`` → ETH)."""
    if "btc_usd" in _header(path):
        return "BTC"
    word = _NAME_WORD.match(path.stem)
    if word is None:
        raise JointReplayError(f"{path}: cannot tell its currency from the name; give it as CURRENCY=path")
    return word.group(0).upper()


def load_joint_replay(files: Sequence[tuple[str | None, Path]] | Sequence[Path]) -> JointReplayData:
    """Read every file (a path, or (currency or None, path)) and align them on their common times."""
    named: dict[str, ReplayData] = {}
    for item in files:
        currency, path = item if isinstance(item, tuple) else (None, item)
        if currency is None:
            currency = currency_of(path)
        elif currency != "BTC" and "btc_usd" in _header(path):
            raise JointReplayError(f"{path}: given as {currency} but its price column is btc_usd")
        if currency in named:
            first = named[currency].source
            raise JointReplayError(f"{path}: {currency} is already given by {first}; one file per currency")
        named[currency] = load_replay_csv(path)
    return align(named)


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), [])
    except OSError as exc:
        raise JointReplayError(f"cannot read market history {path}: {exc.strerror}") from exc


def align(histories: Mapping[str, ReplayData]) -> JointReplayData:
    """Every history restricted to the times all of them have (at least two)."""
    if not histories:
        raise JointReplayError("no market history given")
    common = reduce(np.intersect1d, (h.times_ms for h in histories.values()))
    if common.size < 2:
        spans = "; ".join(
            f"{h.source} {h.start:%Y-%m-%d %H:%M} → {h.end:%Y-%m-%d %H:%M}" for h in histories.values()
        )
        raise JointReplayError(f"the histories share {common.size} timestamp(s), need two: {spans}")
    gaps = _gaps(common)
    restricted = {}
    for currency, h in histories.items():
        rows = np.searchsorted(h.times_ms, common)
        restricted[currency] = replace(
            h,
            times_ms=h.times_ms[rows],
            prices=h.prices[rows],
            vol_index_pct=h.vol_index_pct[rows],
            funding_8h=h.funding_8h[rows],
            gaps=gaps,
        )
    dropped = {c: int(h.times_ms.size - common.size) for c, h in histories.items()}
    return JointReplayData(common, restricted, dropped, gaps)


def _gaps(times_ms: np.ndarray) -> tuple[tuple[datetime, datetime], ...]:
    """Intervals longer than twice the median step, as :func:`load_replay_csv` reports them."""
    steps = np.diff(times_ms)
    at = np.flatnonzero(steps > 2.0 * float(np.median(steps)))
    return tuple(
        (
            datetime.fromtimestamp(times_ms[i] / 1000.0, UTC),
            datetime.fromtimestamp(times_ms[i + 1] / 1000.0, UTC),
        )
        for i in at
    )
