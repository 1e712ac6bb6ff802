"""One trial: fit the model with the trial's parameters on each fold, pruning through ``on_round``.

Every model adapter calls ``on_round(iteration, total, {metric: value})`` after each boosting round or
epoch with its validation metrics. The reporter turns the library's own validation loss into an
intermediate value oriented like the study (negated when the study maximizes and the value is a loss),
reports it, and raises ``optuna.TrialPruned`` when the pruner says so; the exception propagates out of
the library's training loop, so the remaining rounds are never trained. One mechanism for every family,
no per-library integration callbacks. With k folds only the first fold reports (steps are its rounds): the
pruner compares trials on one learning curve (successive halving on the round count), and a trial pruned
there never fits its other folds. Every fold checks the study's deadline after each round (and between
folds), so ``tuning.timeout`` cuts a trial within one round rather than after it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import TrainpipeError

if TYPE_CHECKING:
    import numpy as np
    import optuna

    from trainpipe.config import PipelineConfig
    from trainpipe.data import TaskInfo

class TrialFailed(TrainpipeError):
    """The trial produced no usable value (NaN score, metric not computable)."""


@dataclass
class Fold:
    """One train/validation pair of preprocessed matrices (the holdout split is a single fold)."""

    X: Any
    y: np.ndarray
    X_val: Any
    y_val: np.ndarray


@dataclass
class RoundCounter:
    """Rounds (boosting rounds or epochs) trained in a trial versus the full budget of the trial."""

    trained: int = 0
    budget: int = 0
    curve: list[float] = field(default_factory=list)
    deadline: float | None = None  # time.perf_counter() after which the trial stops (tuning.timeout)
    prunable: bool = True  # the defaults' trial is never pruned: it is the reference every trial must beat
    fold_scores: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    fit_rows: list[int] = field(default_factory=list)
    fold_rounds: list[int] = field(default_factory=list)  # rounds trained per fold
    best_rounds: list[int | None] = field(default_factory=list)  # early stopping's best round count per fold
    # each fold's validation predictions (class probabilities, or values), for tuning.ensemble; None: not kept
    oof: list[Any] | None = None


def deadline_reached(counter: RoundCounter) -> bool:
    return counter.deadline is not None and time.perf_counter() >= counter.deadline


def stop_at_deadline(counter: RoundCounter, where: str) -> None:
    """Raise ``TrialPruned`` once the study's time is up (the trial is recorded as pruned, not failed)."""
    import optuna

    if deadline_reached(counter):
        raise optuna.TrialPruned(f"stopped by tuning.timeout {where}")


def pick_round_metric(metrics: Mapping[str, float]) -> tuple[str, bool] | None:
    """(key, higher_is_better) of the value to report: a validation metric, the first one listed."""
    if not metrics:
        return None
    from trainpipe.evaluation._metrics import metric_direction

    keys = list(metrics)
    val_keys = [k for k in keys if "val" in k.lower()]
    key = (val_keys or keys)[0]
    return key, metric_direction(key) == "maximize"  # whole words: "mape" is not "map"


class PruningReporter:
    """The ``on_round`` callback of one fold of one trial."""

    def __init__(self, trial: optuna.Trial, direction: str, counter: RoundCounter, fold_index: int = 0) -> None:
        self.trial = trial
        self.maximize = direction == "maximize"
        self.counter = counter
        self.fold_index = fold_index
        self._seen_total = 0
        self._last = 0

    def __call__(self, iteration: int, total: int, metrics: Mapping[str, float]) -> None:
        import optuna

        if total > self._seen_total:
            self.counter.budget += total - self._seen_total
            self._seen_total = total
        self.counter.trained += max(0, iteration - self._last)
        self._last = max(self._last, iteration)
        stop_at_deadline(self.counter, f"after {iteration} of {total} rounds")
        if self.fold_index > 0:  # the pruner compares trials on the first fold's curve only
            return
        picked = pick_round_metric(metrics)
        if picked is None:
            return
        key, higher = picked
        value = float(metrics[key])
        if not math.isfinite(value):
            return
        oriented = value if higher == self.maximize else -value
        self.counter.curve.append(oriented)
        self.trial.report(oriented, iteration)
        if self.counter.prunable and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at {key}={value:.6g} after {iteration} of {total} rounds")

    def finish(self) -> None:
        """A fold that never called back (or stopped early) still counts its full budget once."""
        if self._seen_total == 0:
            self.counter.budget += 1
            self.counter.trained += 1


def metric_params(model_type: str, metric: str, task: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Model params that make the library's per-round validation metric follow ``tuning.metric`` (the family's
    ``metric_params``: XGBoost's ``eval_metric``, LightGBM's ``metric``), so that the value the pruner sees and
    early stopping measure what the study optimizes. Empty when the user chose one."""
    from trainpipe.models import family_for

    family = family_for(model_type)
    return dict(family.metric_params(metric, task, params)) if family.metric_params is not None else {}


# (n_estimators, learning_rate) of the boosters' adapters when model.params leave them unset
BOOSTER_DEFAULT_ROUNDS = {"xgboost": (500, 0.1), "lightgbm": (500, 0.05)}
MAX_ROUNDS_SCALE = 10


def rounds_for_learning_rate(model_type: str, base: Mapping[str, Any], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """``{"n_estimators": n}`` for a booster trial that samples ``learning_rate`` below the default while neither
    ``model.params`` (``base``) nor the space sets ``n_estimators``: the round cap scaled by ``default_lr / lr``
    (at most x10), so that early stopping, not the cap, ends a slow-learning trial. With the fixed cap of 500
    rounds, credit_data's best trials (learning rate 0.02-0.03, depth 3) stopped at the cap on most folds, and
    the search drifted toward the largest rate the cap allowed. A rate at or above the default keeps the cap.
    Empty otherwise."""
    import math

    defaults = BOOSTER_DEFAULT_ROUNDS.get(model_type)
    if defaults is None or "n_estimators" in base or "n_estimators" in sampled or "learning_rate" not in sampled:
        return {}
    rounds, rate = defaults
    lr = float(sampled["learning_rate"])
    if not lr > 0 or lr >= rate:
        return {}
    return {"n_estimators": min(rounds * MAX_ROUNDS_SCALE, math.ceil(rounds * rate / lr))}


def trial_configs(config: PipelineConfig, params: Mapping[str, Any], extra: Mapping[str, Any] | None = None
                  ) -> tuple[Any, Any]:
    """The model and training sections with a trial's parameters (and ``extra`` model params) merged in; a
    booster's round cap follows a sampled learning rate (:func:`rounds_for_learning_rate`)."""
    from trainpipe.config import TrainingConfig
    from trainpipe.tuning._space import split_params

    model_params, training_params = split_params(params)
    model_params = {**rounds_for_learning_rate(config.model.type, config.model.params, model_params), **model_params}
    merged = {**config.model.params, **(extra or {}), **model_params}
    model = config.model.model_copy(update={"params": merged})
    training = TrainingConfig.model_validate({**config.training.model_dump(), **training_params})
    return model, training


def fit_and_score(config: PipelineConfig, task: TaskInfo, params: Mapping[str, Any], folds: Sequence[Fold],
                  metric: str, direction: str, trial: optuna.Trial | None, counter: RoundCounter,
                  categorical_indices: Sequence[int] = (), first_fold: int = 0) -> float:
    """Mean validation score over the folds; raises TrialPruned (pruned) or TrialFailed. ``first_fold``: the
    index of ``folds[0]`` in the plan (folds before it were fitted already; only fold 0 reports)."""
    import numpy as np

    from trainpipe.evaluation._metrics import compute_metrics
    from trainpipe.models import create_adapter

    extra = metric_params(config.model.type, metric, task.task, {**config.model.params, **params})
    model, training = trial_configs(config, params, extra)
    scores = []
    for index, fold in enumerate(folds, start=first_fold):
        if index:
            stop_at_deadline(counter, f"after {index} of {len(folds)} folds")
        # embedding models get the ordinal-coded columns, as in the train step
        adapter = create_adapter(task, model, training, categorical_indices=categorical_indices)
        reporter = PruningReporter(trial, direction, counter, index) if trial is not None else None
        before, started = counter.trained, time.perf_counter()
        report = adapter.fit(fold.X, fold.y, fold.X_val, fold.y_val, reporter)
        if reporter is not None:
            reporter.finish()
        counter.fit_seconds.append(time.perf_counter() - started)
        counter.fit_rows.append(int(fold.X.shape[0]))
        counter.fold_rounds.append(counter.trained - before if reporter is not None else int(report.n_iterations or 1))
        best = getattr(report, "best_iteration", None)
        counter.best_rounds.append(None if best is None else int(best) + 1)
        proba = adapter.predict_proba(fold.X_val)
        pred = np.asarray(adapter.predict(fold.X_val))
        if counter.oof is not None:
            counter.oof.append(None if task.is_classification and proba is None
                               else np.asarray(proba if task.is_classification else pred, dtype=np.float32))
        value = compute_metrics([metric], task.task, fold.y_val, pred, proba, len(task.classes))[metric]
        if value is None or not math.isfinite(value):
            raise TrialFailed(f"{metric} could not be computed on fold {index} (got {value}); "
                              "the model produced no usable predictions with these parameters")
        scores.append(float(value))
        counter.fold_scores.append(float(value))
    return float(np.mean(scores))
