"""``levctl calibrate``: walk-forward calibration of the controller with Optuna (TPE), resumable.

Each fold (:mod:`.walkforward`) and the final study is an Optuna study in the calibration's own
SQLite file, named after it and stamped with a fingerprint of what it measures (the configuration
but its trial and fold counts, the history's rows, the fold's windows): the same command again
resumes each study where it stopped, and a file made for other data or settings is refused.

The study stays in this process (ask and tell); trials run on an engine (:mod:`.engines`): here,
on local processes, or on a Dask cluster.  A trial is :func:`run_trial`: the configuration with
the trial's parameters, the real controller replayed over the fold's history
(:func:`.evaluate.controller_path`), figures over its windows and :func:`.walkforward.score`.  A
combination the configuration refuses (min_leverage above max_leverage) is a failed trial with the
reason.  After the folds, each fold's best parameters are replayed on its test window: the
out-of-sample figures.  Optuna is imported here, and this module only by ``levctl calibrate``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from controller.config import Config, ConfigError, build_config, with_values
from controller.replay.engines import engine as make_engine
from controller.replay.evaluate import FIGURES, controller_path, window_figures
from controller.replay.walkforward import (
    CalibrationError,
    Fold,
    TrialPlan,
    calibration_span,
    plan_folds,
    score,
)
from controller.sim.market import ReplayData

# a parameter that only matters for some σ̂ estimators is sampled only when one of them is chosen
CONDITIONS = {
    "risk.realised_half_life_days": {"realised", "blend"},
    "risk.blend_weight": {"blend"},
    "risk.vrp_half_life_days": {"implied_vrp", "blend"},
}
ESTIMATOR = "risk.sigma_estimator"
INTERRUPTED = "interrupted"
Progress = Callable[[str, int, int, float | None], None]  # (what, trials done, trials in all, best)


@dataclass(frozen=True)
class TrialRecord:
    study: str
    number: int
    state: str  # complete | fail
    params: dict[str, Any]
    objective: float | None
    figures: dict[str, Any] | None
    seconds: float | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class FoldOutcome:
    fold: Fold
    params: dict[str, Any]
    objective: float
    in_sample: dict[str, Any]
    out_of_sample: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        assert self.fold.test is not None
        return {
            "train": self.fold.train.iso(),
            "test": self.fold.test.iso(),
            "params": self.params,
            "in_sample": {**{k: self.in_sample.get(k) for k in FIGURES}, "objective": self.objective},
            "out_of_sample": None
            if self.out_of_sample is None
            else {k: self.out_of_sample.get(k) for k in FIGURES},
        }


@dataclass
class Calibration:
    best_params: dict[str, Any]
    best_objective: float
    best_figures: dict[str, Any]
    folds: list[FoldOutcome]
    trials: list[TrialRecord]
    engine: str
    importance: dict[str, dict[str, float]] = field(default_factory=dict)  # study → parameter → share
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    trials_run: int = 0  # by this invocation (a resumed study ran only the rest)
    span: tuple[datetime, datetime] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "best": {"params": self.best_params, "objective": self.best_objective},
            "walk_forward": [f.as_dict() for f in self.folds],
            "trials": [t.as_dict() for t in self.trials],
            "engine": self.engine,
        }


def run_trial(
    raw: dict[str, Any], source: str, params: dict[str, Any], data: ReplayData, plan: TrialPlan
) -> dict:
    """One trial, anywhere: build the configuration, replay the controller, measure and score it."""
    started = time.perf_counter()
    try:
        config = build_config(with_values(raw, params), source=source)
    except ConfigError as exc:
        return {"error": str(exc).removeprefix(f"{source}: ")}
    path = controller_path(config, data.between(plan.replay_from, plan.replay_to))
    figures = window_figures(path, [w.seconds() for w in plan.evaluation])
    objective = score(figures, plan, status=path.status)
    return {
        "objective": objective,
        "figures": {**figures, "status": path.status},
        "seconds": time.perf_counter() - started,
        "error": None if objective is not None else "no 30-day volatility inside the evaluation",
    }


def calibrate(
    config: Config,
    data: ReplayData,
    *,
    db: Path,
    trials: int | None = None,
    folds: int | None = None,
    workers: int = 1,
    dask_scheduler: str | None = None,
    progress: Progress = lambda what, done, total, best: None,
) -> Calibration:
    """Calibrate ``config`` on ``data``: K walk-forward folds and a final study on all of it."""
    try:
        import optuna
    except ImportError:
        raise CalibrationError("levctl calibrate needs Optuna: pip install -e '.[calibrate]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cal = config.file.calibrate
    trials = cal.trials if trials is None else trials
    folds = cal.folds if folds is None else folds
    if trials < 1:
        raise CalibrationError(f"--trials must be at least 1, got {trials}")
    if folds < 0:
        raise CalibrationError(f"--folds must be 0 or more, got {folds}")
    span = calibration_span(data, cal)
    plan, notes = plan_folds(span, cal, folds=folds)
    db.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{db}.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise CalibrationError(f"{db} is in use by another levctl calibrate") from None
    started = time.perf_counter()
    runner = make_engine(workers=workers, dask_scheduler=dask_scheduler)
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
        session = _Session(config, span, storage, runner, trials, len(plan) * trials, progress)
        session.db = db
        studies = [session.study(fold, index) for index, fold in enumerate(plan)]
        for fold, study in zip(plan, studies, strict=True):
            session.optimise(fold, study)
        outcomes = session.out_of_sample(plan[:-1], studies[:-1])
        final = _best(studies[-1])
    finally:
        runner.close()
        lock.release()
    return Calibration(
        best_params=dict(final.params),
        best_objective=float(final.value),
        best_figures=dict(final.user_attrs.get("figures") or {}),
        folds=outcomes,
        trials=[_record(s.study_name, t) for s in studies for t in s.trials if t.state.is_finished()],
        engine=runner.name,
        importance={s.study_name: _importance(s) for s in studies},
        notes=notes,
        seconds=time.perf_counter() - started,
        trials_run=session.ran,
        span=(span.start, span.end),
    )


class _Session:
    def __init__(
        self,
        config: Config,
        data: ReplayData,
        storage: Any,
        runner: Any,
        trials: int,
        total: int,
        progress: Progress,
    ) -> None:
        import optuna

        self.optuna = optuna
        self.config, self.data, self.storage, self.runner = config, data, storage, runner
        self.trials, self.total, self.progress = trials, total, progress
        raw = config.file.model_dump(mode="json")
        self.raw = raw
        self.handle = runner.put(data)
        self.done = self.ran = 0
        self.db = Path()
        measured = {
            **raw,
            "calibrate": {k: v for k, v in raw["calibrate"].items() if k not in ("trials", "folds")},
        }
        self.base = hashlib.sha256(
            json.dumps(measured, sort_keys=True).encode()
            + data.times_ms.tobytes()
            + data.prices.tobytes()
            + data.vol_index_pct.tobytes()
            + data.funding_8h.tobytes()
        ).hexdigest()

    def study(self, fold: Fold, index: int) -> Any:
        """Create the fold's study, or load it (refused when it was made for something else)."""
        optuna = self.optuna
        fingerprint = hashlib.sha256(f"{self.base}|{fold.plan}|{fold.test}".encode()).hexdigest()[:16]
        seed = self.config.file.calibrate.seed + index
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=max(3, min(10, self.trials // 3)),
            constant_liar=self.runner.workers > 1,
        )
        study = optuna.create_study(
            study_name=fold.name,
            storage=self.storage,
            sampler=sampler,
            direction="minimize",
            load_if_exists=True,
        )
        stamped = study.user_attrs.get("fingerprint")
        if stamped is None:
            study.set_user_attr("fingerprint", fingerprint)
            study.set_user_attr("train", fold.train.iso())
        elif stamped != fingerprint:
            raise CalibrationError(
                f"the study {fold.name!r} in {self.db} was made for other "
                "data or settings; give another --db (or delete that file) to start afresh"
            )
        for t in study.trials:  # a trial left running by an interrupted calibration
            if t.state == optuna.trial.TrialState.RUNNING:
                self.storage.set_trial_user_attr(t._trial_id, "error", INTERRUPTED)
                self.storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        self.done += min(len(_finished(study)), self.trials)
        return study

    def optimise(self, fold: Fold, study: Any) -> None:
        remaining = max(self.trials - len(_finished(study)), 0)
        pending: dict[Any, Any] = {}
        label = (
            fold.name
            if fold.test is None
            else f"{fold.name} (train {fold.train.start:%Y-%m-%d} → {fold.train.end:%Y-%m-%d})"
        )
        self.progress(label, self.done, self.total, _best_value(study))
        space = self.config.file.calibrate.space
        source = f"{self.config.source} ({fold.name})"
        try:
            while remaining or pending:
                while remaining and len(pending) < self.runner.workers:
                    trial = study.ask()
                    params = suggest(trial, space)
                    future = self.runner.submit(run_trial, self.raw, source, params, self.handle, fold.plan)
                    pending[future] = trial
                    remaining -= 1
                for future in self.runner.first_done(pending):
                    trial = pending.pop(future)
                    self._tell(study, trial, future)
                    self.done += 1
                    self.ran += 1
                    self.progress(label, self.done, self.total, _best_value(study))
        except BaseException:
            for trial in pending.values():
                trial.set_user_attr("error", INTERRUPTED)
                study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
            raise
        if _best_value(study) is None:
            errors = [t.user_attrs.get("error") for t in study.trials if t.user_attrs.get("error")]
            raise CalibrationError(
                f"no trial of {fold.name} completed" + (f"; the first failed: {errors[0]}" if errors else "")
            )

    def _tell(self, study: Any, trial: Any, future: Any) -> None:
        fail = self.optuna.trial.TrialState.FAIL
        try:
            result = future.result()
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        for key in ("figures", "seconds", "error"):
            if result.get(key) is not None:
                trial.set_user_attr(key, result[key])
        if result.get("objective") is None:
            study.tell(trial, state=fail)
        else:
            study.tell(trial, float(result["objective"]))

    def out_of_sample(self, folds: list[Fold], studies: list[Any]) -> list[FoldOutcome]:
        """Each fold's best parameters, replayed on its test window (all folds at once)."""
        best = [_best(s) for s in studies]
        self.progress("out of sample", self.done, self.total, None)
        futures = [
            self.runner.submit(
                run_trial,
                self.raw,
                f"{self.config.source} ({f.name}, test)",
                dict(b.params),
                self.handle,
                f.test_plan,
            )
            for f, b in zip(folds, best, strict=True)
        ]
        outcomes = []
        for fold, trial, future in zip(folds, best, futures, strict=True):
            result = future.result()
            outcomes.append(
                FoldOutcome(
                    fold=fold,
                    params=dict(trial.params),
                    objective=float(trial.value),
                    in_sample=dict(trial.user_attrs.get("figures") or {}),
                    out_of_sample=result.get("figures"),
                )
            )
        return outcomes


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """The trial's parameters from the search space (the σ̂ estimator first: others depend on it)."""
    params: dict[str, Any] = {}
    for name in sorted(space, key=lambda n: n != ESTIMATOR):
        spec = space[name]
        if name in CONDITIONS and ESTIMATOR in params and params[ESTIMATOR] not in CONDITIONS[name]:
            continue
        if spec.choices is not None:
            params[name] = trial.suggest_categorical(name, list(spec.choices))
        else:
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log, step=spec.step)
    return params


def _finished(study: Any) -> list[Any]:
    return [t for t in study.trials if t.state.is_finished() and t.user_attrs.get("error") != INTERRUPTED]


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:
        raise CalibrationError(f"no trial of {study.study_name} completed") from None


def _best_value(study: Any) -> float | None:
    values = [t.value for t in study.trials if t.value is not None]
    return min(values) if values else None


def _record(name: str, t: Any) -> TrialRecord:
    return TrialRecord(
        study=name,
        number=t.number,
        state=t.state.name.lower(),
        params=dict(t.params),
        objective=t.value,
        figures=t.user_attrs.get("figures"),
        seconds=t.user_attrs.get("seconds"),
        error=t.user_attrs.get("error"),
    )


def _importance(study: Any) -> dict[str, float]:
    """PED-ANOVA importance (Optuna's, no scikit-learn needed) of the parameters every completed
    trial has: how much each one separates the best tenth of the trials from the rest."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 5:
        return {}
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        return {
            k: float(v)
            for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()
        }
    except (RuntimeError, ValueError):
        return {}
