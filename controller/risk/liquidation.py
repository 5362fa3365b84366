"""The liquidation search: the price move at which equity (coin) first falls to the maintenance margin.

A pure root search on a revaluation that is passed in (:meth:`controller.risk.scenarios.Revaluation`
supplies ``gap(1 + m) = equity_coin(m) − margin`` for many moves in one pricing pass).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

DEFAULT_MAX_UP, DEFAULT_MAX_DOWN = 9.0, -0.99  # the search's range of moves
ROOT_TOLERANCE = 1e-7  # of a move: the search interpolates once its bracket is this narrow
MAX_ROOT_STEPS = 100


@lru_cache(maxsize=16)
def scan(max_up: float, max_down: float) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The liquidation scan: 20 geometric steps each way, and with 0 in front, as one array."""
    sides = (np.geomspace(1e-4, max_up, 20), -np.geomspace(1e-4, -max_down, 20))
    return sides, np.concatenate([[0.0], *sides])


def first_crossing(
    gap: Callable[[np.ndarray], np.ndarray], *, sides: tuple[np.ndarray, np.ndarray], scanned: np.ndarray
) -> float | None:
    """The first move (by size) where ``gap`` crosses zero, from ``scanned = gap`` at 0 and at the
    moves of ``sides`` (0 when it is already <= 0, None when no scanned move reaches it).

    The scan (0 and 20 geometric steps each way) finds the first scanned move that breaches on
    each side; a side whose bracket lies wholly beyond the other's is dropped, and the bracketed
    secant with Illinois' halving converges superlinearly on what is left (both sides at once,
    one revaluation per step, when they overlap).  The secant runs in ``x = m / (1 + m)``, in
    which the futures' part of equity is exactly linear: a hedged option book needs a step or two.
    """
    if scanned[0] <= 0:
        return 0.0
    brackets = []
    for points, values in zip(sides, np.split(scanned[1:], 2), strict=True):
        breached = np.flatnonzero(values <= 0)
        if breached.size:
            i = int(breached[0])
            safe, g_safe = (0.0, scanned[0]) if i == 0 else (points[i - 1], values[i - 1])
            brackets.append(_Bracket(_x(float(safe)), _x(float(points[i])), float(g_safe), float(values[i])))
    if not brackets:
        return None
    nearest = min(abs(_move(b.breach)) for b in brackets)  # a root no farther than this exists
    brackets = [b for b in brackets if abs(_move(b.safe)) < nearest or abs(_move(b.breach)) == nearest]
    for _ in range(MAX_ROOT_STEPS):
        live = [b for b in brackets if abs(_move(b.breach) - _move(b.safe)) > ROOT_TOLERANCE]
        if not live:
            break
        trials = [x for b in live for x in b.trials()]
        f = 1.0 / (1.0 - np.array(trials))  # 1 + m with m = x / (1 − x)
        values = gap(f).tolist()
        for i, bracket in enumerate(live):
            bracket.narrow(trials[3 * i : 3 * i + 3], values[3 * i : 3 * i + 3])
    return min((_move(b.root()) for b in brackets), key=abs)


def _x(move: float) -> float:
    """The search's variable ``x = m / (1 + m)``: equity in coin is linear in it for futures."""
    return move / (1.0 + move)


def _move(x: float) -> float:
    return x / (1.0 - x)


class _Bracket:
    """A root of ``g`` between ``safe`` (``g > 0``) and ``breach`` (``g <= 0``), narrowed by Illinois' rule:
    the secant through the ends, with the weight of an end that stays put twice in a row halved."""

    __slots__ = ("breach", "g_breach", "g_safe", "last", "safe", "w_breach", "w_safe")

    def __init__(self, safe: float, breach: float, g_safe: float, g_breach: float) -> None:
        self.safe, self.breach, self.g_safe, self.g_breach = safe, breach, g_safe, g_breach
        self.w_safe = self.w_breach = 1.0
        self.last = 0  # +1: the last step moved only the safe end, −1: only the breached end

    def trials(self) -> tuple[float, float, float]:
        """The secant point (kept a tolerance inside the bracket) and a probe a little way either
        side of it, priced in one pass: when the secant lands within tolerance of the root, one
        of the probes falls across it and the bracket closes at once."""
        a, b = self.g_safe * self.w_safe, self.g_breach * self.w_breach
        trial = self.safe - a * (self.breach - self.safe) / (b - a)
        low, high = min(self.safe, self.breach), max(self.safe, self.breach)
        if not low < trial < high:
            trial = 0.5 * (low + high)
        step = 0.4 * ROOT_TOLERANCE * (1.0 - trial) ** 2  # in x: about 0.4 tolerance of a move
        trial = min(max(trial, low + step), high - step)
        return trial - step, trial, trial + step

    def narrow(self, points: list[float], values: list[float]) -> None:
        """Keep the first crossing: walk the points inside from the safe end to the first breach."""
        toward = 1.0 if self.breach > self.safe else -1.0
        inside = sorted(
            ((x, g) for x, g in zip(points, values, strict=True) if (x - self.safe) * (x - self.breach) < 0),
            key=lambda point: toward * point[0],
        )
        safe, g_safe, breach, g_breach = self.safe, self.g_safe, self.breach, self.g_breach
        for x, g in inside:
            if g > 0:
                safe, g_safe = x, g
            else:
                breach, g_breach = x, g
                break
        moved_safe, moved_breach = safe != self.safe, breach != self.breach
        if moved_safe and not moved_breach:
            self.w_safe, self.w_breach = 1.0, self.w_breach * (0.5 if self.last > 0 else 1.0)
            self.last = 1
        elif moved_breach and not moved_safe:
            self.w_safe, self.w_breach = self.w_safe * (0.5 if self.last < 0 else 1.0), 1.0
            self.last = -1
        else:
            self.w_safe = self.w_breach = 1.0
            self.last = 0
        self.safe, self.g_safe, self.breach, self.g_breach = safe, g_safe, breach, g_breach
        if g_breach == 0.0:  # an exact root closes the bracket
            self.safe = breach

    def root(self) -> float:
        """Linear interpolation on the true end values: an error of order the bracket's square."""
        span = self.g_safe - self.g_breach
        weight = self.g_safe / span if span > 0 else 0.5
        return self.safe + (self.breach - self.safe) * weight
