"""levctl calibrate's library: walk-forward folds, the known answer, no peeking, resuming, Dask.

Every trial replays the real controller, so the histories are short (a few months at 4–6 h rows)
and the studies small; the answers are known by construction and checked against the controller's
own replays, never typed in.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.config import load_config
from controller.replay.calibrate import calibrate, run_trial
from controller.replay.evaluate import configured
from controller.replay.walkforward import CalibrationError, plan_folds, score
from controller.sim.market import load_replay_csv
from tests.controller.replay.histories import START, write_history

BASE = configured(  # the σ̂ of the known answers: the replayed index, so flat DVOL means L* = L_base
    load_config(None, embedded="replay-perpetual.toml"), {"risk.sigma_estimator": "implied"}, source="base"
)


def config_with(**calibrate: object):
    raw = {"stress": [], **calibrate}
    return configured(BASE, {f"calibrate.{k}": v for k, v in raw.items()}, source="test")


# ------------------------------------------------------------------ folds (no replay)


def test_expanding_folds_train_on_all_before_and_test_on_the_next_window(tmp_path: Path) -> None:
    data = load_replay_csv(write_history(tmp_path / "h.csv", days=360, step_h=12))
    folds, notes = plan_folds(data, config_with().file.calibrate, folds=3)
    assert [f.name for f in folds] == ["fold-1", "fold-2", "fold-3", "final"]
    tests = [f.test for f in folds[:-1]]
    for fold in folds[:-1]:
        assert fold.train.start == data.start  # expanding
        assert fold.train.end == fold.test.start  # the test window follows the training one
        assert fold.plan.replay_to == fold.train.end  # a trial never replays past its training window
        assert fold.test_plan.replay_to == fold.test.end
    assert all(a.end == b.start for a, b in itertools.pairwise(tests))  # they tile the rest
    assert tests[-1].end > data.end and folds[-1].train.start == data.start and folds[-1].test is None
    assert notes == []


def test_rolling_folds_keep_stress_windows_inside_the_evaluation(tmp_path: Path) -> None:
    data = load_replay_csv(write_history(tmp_path / "h.csv", days=400, step_h=12))
    stress = {"name": "crash", "start": START + timedelta(days=2), "end": START + timedelta(days=8)}
    away = {"name": "elsewhere", "start": datetime(2019, 1, 1), "end": datetime(2019, 2, 1)}
    cal = config_with(scheme="rolling", train_days=90, stress=[stress, away]).file.calibrate
    folds, notes = plan_folds(data, cal, folds=3)
    assert len(notes) == 1 and "elsewhere" in notes[0] and "outside the history" in notes[0]
    for fold in folds[:-1]:
        assert fold.train.end - fold.train.start == timedelta(days=90)
        assert fold.train.start > START + timedelta(days=8)  # the crash is before every training window
        crash = fold.plan.evaluation[1]
        assert (crash.start, crash.end) == (
            stress["start"].replace(tzinfo=UTC),
            stress["end"].replace(tzinfo=UTC),
        )
        assert fold.plan.replay_from == data.start <= crash.start  # replayed from before the crash on
        assert fold.plan.replay_to == fold.train.end


def test_score_adds_the_penalties_the_config_sets(tmp_path: Path) -> None:
    data = load_replay_csv(write_history(tmp_path / "h.csv", days=200, step_h=12))
    cal = config_with(trades_budget_per_year=10, trade_penalty=0.01, drawdown_limit=0.3, drawdown_penalty=2.0)
    (final,) = plan_folds(data, cal.file.calibrate, folds=0)[0]
    figures = {"tracking_error": 0.05, "trades_per_year": 14.0, "max_drawdown": 0.4}
    assert score(figures, final.plan, status="completed") == pytest.approx(0.05 + 0.04 + 0.2)
    assert (
        score({**figures, "trades_per_year": 3.0, "max_drawdown": 0.1}, final.plan, status="completed")
        == 0.05
    )
    assert score(figures, final.plan, status="liquidated") == pytest.approx(1.29)


@pytest.mark.parametrize(
    ("days", "folds", "calibrate", "message"),
    [
        (120, 5, {}, "5 folds is more than"),
        (120, 1, {"start": "2030-01-01T00:00:00Z"}, "an empty window"),
        (
            200,
            1,
            {"stress": [{"name": "gap", "start": "2023-01-01T00:00:00Z", "end": "2024-01-01T06:00:00Z"}]},
            None,
        ),
    ],
)
def test_windows_that_cannot_be_evaluated_are_refused(tmp_path, days, folds, calibrate, message) -> None:
    data = load_replay_csv(write_history(tmp_path / "h.csv", days=days, step_h=12))
    cal = config_with(**calibrate).file.calibrate
    if message is None:  # a stress window reaching into the history by less than a row
        message = "'gap'"
    from controller.replay.walkforward import calibration_span

    with pytest.raises(CalibrationError, match=message):
        plan_folds(calibration_span(data, cal), cal, folds=folds)


# ------------------------------------------------------------------ studies (replays)

BANDS = [0.02, 0.08, 0.2, 0.45]


@pytest.mark.slow
def test_the_study_finds_the_band_that_is_best_by_construction(tmp_path: Path) -> None:
    """Flat DVOL at σ_ref and a 60 % walk: L* = L_base throughout, so a wider band only lets the
    equity's volatility drift further from target, while a narrower one trades more.  With a budget
    of 20 trades a year at 0.01 per trade over it, the best band is the narrowest within budget."""
    data = load_replay_csv(write_history(tmp_path / "h.csv", days=120, vol=0.6, dvol_pct=60.0, seed=3))
    config = config_with(
        trades_budget_per_year=20.0,
        trade_penalty=0.01,
        space={"policy.band": {"choices": BANDS}},
        seed=11,
    )
    result = calibrate(config, data, db=tmp_path / "cal.db", trials=8, folds=0)
    (final,) = plan_folds(data, config.file.calibrate, folds=0)[0]
    raw = config.file.model_dump(mode="json")
    brute = {b: run_trial(raw, "brute", {"policy.band": b}, data, final.plan) for b in BANDS}
    objectives = {b: r["objective"] for b, r in brute.items()}
    tracking = [brute[b]["figures"]["tracking_error"] for b in BANDS]
    trades = [brute[b]["figures"]["trades_per_year"] for b in BANDS]
    assert tracking == sorted(tracking) and trades == sorted(trades, reverse=True)  # the construction
    within_budget = [b for b, t in zip(BANDS, trades, strict=True) if t <= 20.0]
    best = min(objectives, key=objectives.__getitem__)
    assert best == within_budget[0] == 0.08
    assert sorted(objectives.values())[1] - objectives[best] > 0.01  # clearly best
    assert result.best_params == {"policy.band": best}
    assert result.best_objective == pytest.approx(objectives[best])
    assert result.folds == [] and {t.study for t in result.trials} == {"final"}


def regime_history(path: Path, after: float) -> Path:
    """120 days of a 60 % walk, then 120 days at ``after``: the regime changes on day 120."""
    return write_history(path, days=240, step_h=6, vol=[(0, 0.6), (120, after)], dvol_pct=60.0, seed=5)


@pytest.mark.slow
def test_walk_forward_never_uses_data_after_a_folds_training_window(tmp_path: Path) -> None:
    config = config_with(space={"policy.band": {"low": 0.03, "high": 0.4}}, seed=3)
    results = {}
    for after in (1.2, 0.3):
        data = load_replay_csv(regime_history(tmp_path / f"h{after}.csv", after))
        results[after] = calibrate(config, data, db=tmp_path / f"{after}.db", trials=3, folds=1)
    calm, wild = results[0.3], results[1.2]
    (fold_calm,), (fold_wild,) = calm.folds, wild.folds
    assert fold_calm.fold.train.end == START + timedelta(days=120)  # trained up to the change, tested after
    # what fold 1 saw and chose is the same whatever came after its training window …
    assert fold_calm.params == fold_wild.params
    assert fold_calm.in_sample == fold_wild.in_sample
    fold_trials = [[(t.params, t.objective) for t in r.trials if t.study == "fold-1"] for r in (calm, wild)]
    assert fold_trials[0] == fold_trials[1] and len(fold_trials[0]) == 3
    # … while its test window, and the final study, did see the new regime
    assert fold_calm.out_of_sample["tracking_error"] != fold_wild.out_of_sample["tracking_error"]
    assert calm.best_objective != wild.best_objective


@pytest.mark.slow
def test_a_resumed_study_continues_its_trials(tmp_path: Path) -> None:
    data = load_replay_csv(write_history(tmp_path / "h.csv", days=90, seed=2))
    config = config_with(space={"policy.band": {"low": 0.05, "high": 0.4}}, seed=5)
    db = tmp_path / "cal.db"

    def stop_after_two(what: str, done: int, total: int, best: float | None) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        calibrate(config, data, db=db, trials=5, folds=0, progress=stop_after_two)
    seen: list[int] = []
    resumed = calibrate(config, data, db=db, trials=5, folds=0, progress=lambda w, d, t, b: seen.append(d))
    assert resumed.trials_run == 3  # only the rest of the five
    assert seen[0] == 2 and seen[-1] == 5
    numbers = [t.number for t in resumed.trials if t.state == "complete"]
    assert numbers == [0, 1, 2, 3, 4]
    again = calibrate(config, data, db=db, trials=5, folds=0)
    assert again.trials_run == 0 and again.best_params == resumed.best_params

    other = load_replay_csv(write_history(tmp_path / "other.csv", days=90, seed=9))
    with pytest.raises(CalibrationError, match="made for other data or settings"):
        calibrate(config, other, db=db, trials=5, folds=0)


def test_a_bad_combination_is_a_failed_trial_with_its_reason(tmp_path: Path) -> None:
    data = load_replay_csv(write_history(tmp_path / "h.csv", days=90, seed=2))
    (final,) = plan_folds(data, config_with().file.calibrate, folds=0)[0]
    raw = config_with().file.model_dump(mode="json")
    result = run_trial(raw, "t", {"policy.min_leverage": 2.5, "policy.max_leverage": 2.0}, data, final.plan)
    assert result.get("objective") is None and "min_leverage" in result["error"]


@pytest.mark.slow
def test_the_dask_path_gives_the_local_answer(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    data = load_replay_csv(write_history(tmp_path / "h.csv", days=90, seed=4))
    config = config_with(space={"policy.band": {"low": 0.05, "high": 0.4}}, seed=2)
    local = calibrate(config, data, db=tmp_path / "local.db", trials=3, folds=0)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = calibrate(
            config, data, db=tmp_path / "dask.db", trials=3, folds=0, dask_scheduler=cluster.scheduler_address
        )
    assert remote.engine == "dask" and local.engine == "local"
    assert [(t.params, t.objective) for t in remote.trials] == [(t.params, t.objective) for t in local.trials]


def test_window_figures_on_a_path_of_known_volatility() -> None:
    """Log returns of ±a every 4 hours: realised vol a / sqrt(4 h in years), in every window."""
    import numpy as np

    from controller.replay.evaluate import ControllerPath, window_figures

    step = 4 * 3600.0
    n = 6 * 200  # 200 days
    a = 0.01
    times = 1.7e9 + step * np.arange(n)
    equity = 1000.0 * np.exp(a * (np.arange(n) % 2))  # up, down, up, down …
    vol = a / np.sqrt(step / (365.0 * 86400.0))
    trades = times[0] + np.array([5.0, 15.0, 50.0, 150.0]) * 86400.0
    path = ControllerPath(times, equity, trades, target_vol=vol - 0.1, status="completed")
    day = 86400.0
    whole = (times[0], times[0] + 100 * day)
    stress = (times[0] + 10 * day, times[0] + 20 * day)  # inside the whole: counted once
    f = window_figures(path, [whole, stress])
    assert f["tracking_error"] == pytest.approx(0.1, rel=1e-6)
    assert f["vol_ratio"] == pytest.approx(vol / (vol - 0.1), rel=1e-6)
    assert f["vol_of_vol"] == pytest.approx(0.0, abs=1e-6)
    assert f["trades_per_year"] == pytest.approx(3 / (100 / 365.0))
    assert f["max_drawdown"] == pytest.approx(1 - np.exp(-a))
