"""Limit breaches as episodes: when each began, how long it lasted, and whether it still stands.

Every cycle records its advice (``cycles.advice``, a JSON list of sentences such as "vega +2,600 USD
per vol point exceeds the limit 2,000: reduce …").  A sentence's numbers change from cycle to cycle,
so a breach is named by its metric (:func:`breach_key`: "vega", "worst scenario loss"), and a run of
consecutive cycles carrying that metric is one episode.  A failed cycle computed no advice: it
neither starts nor ends one.  Breaches are a currency's (the row's ``currency``; none in logs older than
schema 5): a run of several currencies writes a row per currency each cycle, and one currency's clean
row ends none of another's episodes.
The log view, the report, the live page and the notifier all read breaches through :class:`BreachTracker`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# words of the policy's guard reasons (a hold, REDUCING or a halt names its guard in these words)
GUARD_WORDS = (
    "stale",
    "from the future",
    "jump",
    "unavailable",
    "disagree",
    "cooldown",
    "kill switch",
    "drawdown",
    "margin ratio",
)
_EXCEEDS = re.compile(r"^(?P<metric>.*?)\s[+\-−]?[\d,]+(?:\.\d+)?\s.*?\bexceeds the limit\b")
_PARENTHESES = re.compile(r"\s*\([^)]*\)")


def breach_key(text: str) -> str:
    """The metric a breach sentence is about: "worst scenario loss (PM −16 %) −9,000 USD exceeds
    the limit 6,000: …" → "worst scenario loss"."""
    match = _EXCEEDS.match(text)
    metric = match.group("metric") if match else text.split(":", 1)[0]
    return _PARENTHESES.sub("", metric).strip()


def advice_texts(raw: str | None) -> list[str] | None:
    """The advice column as sentences (None: the cycle computed none — it failed)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return [raw]
    return [str(x) for x in value] if isinstance(value, list) else [str(value)]


@dataclass
class Episode:
    key: str
    run_id: int
    first_n: int
    first_ts: str
    last_n: int
    last_ts: str
    cycles: int
    texts: list[str]  # the latest cycle's sentences about it
    ongoing: bool = True
    currency: str | None = None  # the rows' currency (None: a log older than schema 5)

    def as_dict(self) -> dict[str, Any]:
        return {
            "breach": self.key,
            "currency": self.currency,
            "run": self.run_id,
            "from_cycle": self.first_n,
            "from": self.first_ts,
            "to_cycle": self.last_n,
            "to": self.last_ts,
            "cycles": self.cycles,
            "ongoing": self.ongoing,
            "advice": " | ".join(self.texts),
        }


@dataclass
class BreachTracker:
    """Feed cycles in log order; it keeps every episode and says which began and ended at each."""

    episodes: list[Episode] = field(default_factory=list)
    _open: dict[tuple[int, str | None, str], Episode] = field(default_factory=dict)

    def observe(
        self, run_id: int, n: int, ts: str, texts: list[str] | None, *, currency: str | None = None
    ) -> tuple[list[Episode], list[Episode]]:
        """One cycle (of one currency, in a portfolio run): the episodes it starts and the ones it ends
        (texts None: a failed cycle)."""
        self._close_other_runs(run_id)
        if texts is None:
            return [], []
        by_key: dict[str, list[str]] = {}
        for text in texts:
            by_key.setdefault(breach_key(text), []).append(text)
        started: list[Episode] = []
        ended: list[Episode] = []
        for (run, of, key), episode in list(self._open.items()):
            if run == run_id and of == currency and key not in by_key:
                episode.ongoing = False
                ended.append(self._open.pop((run, of, key)))
        for key, sentences in by_key.items():
            found = self._open.get((run_id, currency, key))
            if found is None:
                episode = Episode(key, run_id, n, ts, n, ts, 0, sentences, currency=currency)
                self._open[(run_id, currency, key)] = episode
                self.episodes.append(episode)
                started.append(episode)
            else:
                episode = found
            episode.last_n, episode.last_ts, episode.texts = n, ts, sentences
            episode.cycles += 1
        return started, ended

    def _close_other_runs(self, run_id: int) -> None:
        for opened in [k for k in self._open if k[0] != run_id]:
            self._open.pop(opened).ongoing = False

    def feed(self, rows: Iterable[tuple[Any, ...]]) -> BreachTracker:
        """Rows of (run_id, n, ts, advice JSON[, currency]) in log order.  A gap in a run's (or a
        currency's) cycle numbers stands for cycles left out because they had no advice: it ends its
        open episodes."""
        last: dict[tuple[int, str | None], int] = {}
        for run_id, n, ts, raw, *rest in rows:
            currency = rest[0] if rest else None
            seen = last.get((run_id, currency))
            if seen is not None and n > seen + 1:
                self.observe(run_id, seen + 1, ts, [], currency=currency)
            last[(run_id, currency)] = n
            self.observe(run_id, n, ts, advice_texts(raw), currency=currency)
        return self

    def finish_runs(self, finished: set[int]) -> None:
        """Episodes of runs that have ended do not stand any more."""
        for opened in [k for k in self._open if k[0] in finished]:
            self._open.pop(opened).ongoing = False

    @property
    def current(self) -> list[Episode]:
        return list(self._open.values())
