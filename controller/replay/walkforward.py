"""Walk-forward folds over a history, what each trial of a fold replays and measures, and its score.

The history (``[calibrate] start``/``end``, default all of it) is cut into K + 1 windows of equal
length.  Fold k (1 … K) is tested on window k + 1 and trained on what comes before it: all of it
(``expanding``) or the last ``train_days`` (``rolling``, default one window).  The ``final`` study
trains on the whole span: its best parameters are the calibration's answer; the folds say how well
that way of choosing held up on data it had not seen.

A trial of a fold replays the controller from the start of the history it may use — never past the
end of its training window — and is scored on its training window and on every stress window
that ends before that (clipped there): stress is always inside the evaluation, whatever the
scheme.  ``rolling`` replays begin 30 days before the first window they are scored on, so the
controller is warm and each point's 30-day volatility is defined; that lead-in is past data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.config import CalibrateConfig
from controller.replay.metrics import WINDOW_DAYS
from controller.sim.market import ReplayData

MIN_WINDOW_DAYS = 2 * WINDOW_DAYS  # one fold's window: a 30-day volatility needs room to move
LEAD_IN = timedelta(days=WINDOW_DAYS)
FAILED_RUN_PENALTY = 1.0  # a run that was liquidated or halted: 100 vol points on top


class CalibrationError(ValueError):
    """A calibration cannot run as asked; the message says why, in one line."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime  # exclusive

    def seconds(self) -> tuple[float, float]:
        return (self.start.timestamp(), self.end.timestamp())

    def iso(self) -> list[str]:
        return [self.start.isoformat(), self.end.isoformat()]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of one study replays, and the windows it is scored on."""

    replay_from: datetime
    replay_to: datetime  # exclusive
    evaluation: tuple[Window, ...]  # the training window and the stress windows before its end
    trades_budget_per_year: float
    trade_penalty: float
    drawdown_limit: float
    drawdown_penalty: float


@dataclass(frozen=True)
class Fold:
    name: str  # "fold-1" … or "final"
    train: Window
    test: Window | None  # None: the final study
    plan: TrialPlan
    stress: tuple[tuple[str, Window], ...]  # the stress windows in the evaluation (clipped)
    test_plan: TrialPlan | None = None  # the out-of-sample replay of the fold's best parameters


def calibration_span(data: ReplayData, cal: CalibrateConfig) -> ReplayData:
    """The rows calibrated on: ``[calibrate] start``/``end``, or the whole history."""
    if cal.start is None and cal.end is None:
        return data
    lo = f"{cal.start:%Y-%m-%d %H:%M}" if cal.start else "its start"
    hi = f"{cal.end:%Y-%m-%d %H:%M}" if cal.end else "its end"
    start, end = (None if t is None else _utc(t) for t in (cal.start, cal.end))
    try:
        return data.between(start, end)
    except ValueError:
        raise CalibrationError(
            f"calibrate.start/end: the window {lo} → {hi} holds fewer than two rows of {data.source} "
            f"(it runs {data.start:%Y-%m-%d} → {data.end:%Y-%m-%d}): an empty window"
        ) from None


def plan_folds(data: ReplayData, cal: CalibrateConfig, *, folds: int) -> tuple[list[Fold], list[str]]:
    """The K walk-forward folds and the final study over ``data`` (already the calibration span).

    Returns the folds (the final study last) and notes for the user (stress windows outside)."""
    t0 = data.start
    t1 = _hour(data.end) + timedelta(hours=1)  # exclusive: the last row inside
    days = (t1 - t0).total_seconds() / 86400.0
    segment = timedelta(hours=((t1 - t0) / (folds + 1)) // timedelta(hours=1))
    most = max(int(days // MIN_WINDOW_DAYS) - 1, 0)
    if folds and segment < timedelta(days=MIN_WINDOW_DAYS):
        raise CalibrationError(
            f"{folds} folds is more than {data.source} can hold: {days:.0f} days make {folds + 1} windows "
            f"of {segment.total_seconds() / 86400:.0f} days, and a fold needs {MIN_WINDOW_DAYS:.0f} "
            f"(at most {most} folds here; 0 runs one study on all of it)"
        )
    if not folds and days < MIN_WINDOW_DAYS:
        raise CalibrationError(
            f"{data.source} spans {days:.0f} days; a calibration needs at least {MIN_WINDOW_DAYS:.0f}"
        )
    train_len = timedelta(days=cal.train_days) if cal.train_days else segment
    if cal.scheme == "rolling" and train_len < timedelta(days=MIN_WINDOW_DAYS):
        raise CalibrationError(
            f"calibrate.train_days: a rolling training window of {train_len.total_seconds() / 86400:.0f} "
            f"days is too short (at least {MIN_WINDOW_DAYS:.0f})"
        )
    stress, notes = _stress_windows(data, cal, t0, t1)
    out = []
    for k in range(1, folds + 1):
        test = Window(t0 + k * segment, t0 + (k + 1) * segment if k < folds else t1)
        start = t0 if cal.scheme == "expanding" else max(t0, test.start - train_len)
        train = Window(start, test.start)
        _check_rows(data, train, f"fold {k}'s training window")
        _check_rows(data, test, f"fold {k}'s test window")
        inside = _clipped(stress, train.end)
        plan = _plan(cal, data, train, inside)
        test_plan = _plan(cal, data, test, (), replay_from=plan.replay_from)
        out.append(Fold(f"fold-{k}", train, test, plan, inside, test_plan))
    whole = Window(t0, t1)
    out.append(Fold("final", whole, None, _plan(cal, data, whole, stress), stress))
    return out, notes


def score(figures: dict[str, Any], plan: TrialPlan, *, status: str) -> float | None:
    """The objective: tracking error + the penalties for trades over budget and drawdown over the limit."""
    te = figures.get("tracking_error")
    if te is None:
        return None
    trades = figures.get("trades_per_year") or 0.0
    drawdown = figures.get("max_drawdown") or 0.0
    return (
        te
        + plan.trade_penalty * max(0.0, trades - plan.trades_budget_per_year)
        + plan.drawdown_penalty * max(0.0, drawdown - plan.drawdown_limit)
        + (FAILED_RUN_PENALTY if status != "completed" else 0.0)
    )


def _plan(
    cal: CalibrateConfig,
    data: ReplayData,
    window: Window,
    stress: tuple[tuple[str, Window], ...],
    *,
    replay_from: datetime | None = None,
) -> TrialPlan:
    evaluation = (window, *(w for _, w in stress))
    if replay_from is None:
        replay_from = max(data.start, min(w.start for w in evaluation) - LEAD_IN)
        if min(w.start for w in evaluation) == data.start:
            replay_from = data.start
    return TrialPlan(
        replay_from=replay_from,
        replay_to=window.end,
        evaluation=evaluation,
        trades_budget_per_year=cal.trades_budget_per_year,
        trade_penalty=cal.trade_penalty,
        drawdown_limit=cal.drawdown_limit,
        drawdown_penalty=cal.drawdown_penalty,
    )


def _stress_windows(
    data: ReplayData, cal: CalibrateConfig, t0: datetime, t1: datetime
) -> tuple[tuple[tuple[str, Window], ...], list[str]]:
    inside, notes = [], []
    for s in cal.stress:
        start, end = _utc(s.start), _utc(s.end)
        if end <= t0 or start >= t1:
            notes.append(
                f"stress window {s.name!r} ({start:%Y-%m-%d} → {end:%Y-%m-%d}) lies outside the history "
                f"({t0:%Y-%m-%d} → {t1:%Y-%m-%d}): not evaluated"
            )
            continue
        window = Window(max(start, t0), min(end, t1))
        _check_rows(data, window, f"calibrate.stress {s.name!r}")
        inside.append((s.name, window))
    return tuple(inside), notes


def _clipped(stress: tuple[tuple[str, Window], ...], end: datetime) -> tuple[tuple[str, Window], ...]:
    return tuple((name, Window(w.start, min(w.end, end))) for name, w in stress if w.start < end)


def _check_rows(data: ReplayData, window: Window, what: str) -> None:
    a, b = window.start.timestamp() * 1000.0, window.end.timestamp() * 1000.0
    rows = int(((data.times_ms >= a) & (data.times_ms < b)).sum())
    if rows < 2:
        raise CalibrationError(
            f"{what} ({window}) holds {rows} row(s) of {data.source}: an empty window (a gap in the history?)"
        )


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
