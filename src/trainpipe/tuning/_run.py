"""Tune a pipeline's model on prepared folds: settings from the config, the study, the files it leaves."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError, TrainpipeError
from trainpipe.tuning._budget import infer_direction, objective_metric
from trainpipe.tuning._objective import Fold, RoundCounter, fit_and_score, metric_params
from trainpipe.tuning._space import check_space, split_params
from trainpipe.tuning._space_checks import space_notes
from trainpipe.tuning._storage import parse_storage
from trainpipe.tuning._study import StudySettings, open_study, run_study
from trainpipe.tuning._tracking import (
    log_trial,
    metrics_of,
    param_importances,
    plot_history,
    plot_importances,
    summarize,
    write_json,
    write_trials_csv,
)

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from trainpipe.config import PipelineConfig
    from trainpipe.data import TaskInfo
    from trainpipe.tracking import Tracker

STUDY_ENV = "TRAINPIPE_STUDY"  # ``trainpipe tune --study NAME`` sets it for the tune step


def study_name_for(config: PipelineConfig) -> str:
    return os.environ.get(STUDY_ENV) or config.name


def settings_for(config: PipelineConfig, task_name: str, *, study_name: str | None = None, on_gpu: bool = False,
                 max_resource: int | None = None, fingerprint: str = "") -> StudySettings:
    tuning = config.tuning
    if tuning is None:
        raise ConfigError("tuning: this pipeline has no tuning section.")
    metric = objective_metric(tuning, task_name)
    return StudySettings(
        study_name=study_name or study_name_for(config), storage=parse_storage(tuning.storage), metric=metric,
        direction=infer_direction(metric, tuning.direction), n_trials=tuning.n_trials, sampler=tuning.sampler,
        pruner=tuning.pruner, seed=config.training.seed, timeout=tuning.timeout, max_cost=tuning.max_cost,
        prices=config.cost, on_gpu=on_gpu, max_resource=max_resource, fingerprint=fingerprint,
    )


def rounds_of(config: PipelineConfig) -> int | None:
    """The per-trial budget of reported steps (rounds or epochs, times the folds), for the pruners."""
    from trainpipe.models import family_of

    if config.tuning is None:
        return None
    space = config.tuning.space or {}
    if "n_estimators" in space or "training.epochs" in space:
        return None  # tuned budget: the pruners infer it from the trials
    folds = config.tuning.cv_folds or 1
    family = family_of(config.model.type)
    if family in ("xgboost", "lightgbm"):
        return int(config.model.params.get("n_estimators", 500)) * folds
    if family == "torch":
        return int(config.training.epochs) * folds
    return None


def tune_folds(config: PipelineConfig, task: TaskInfo, folds: Sequence[Fold], out_dir: Path, *,
               tracker: Tracker | None = None, parent_run_id: str | None = None, study_name: str | None = None,
               on_gpu: bool = False, on_trial: Callable[[FrozenTrial], None] | None = None,
               categorical_indices: Sequence[int] = (), fingerprint: str = "") -> dict[str, Any]:
    """Run (or join) the study, write best_params.json, study_summary.json, trials.csv and plots into
    ``out_dir``; return the summary."""
    space = check_space(config)
    settings = settings_for(config, task.task, study_name=study_name, on_gpu=on_gpu, max_resource=rounds_of(config),
                            fingerprint=fingerprint)

    def objective(trial: Any, params: dict[str, Any], counter: RoundCounter) -> float:
        return fit_and_score(config, task, params, folds, settings.metric, settings.direction, trial, counter,
                             categorical_indices)

    def trial_end(frozen: FrozenTrial) -> None:
        if tracker is not None:
            log_trial(tracker, parent_run_id, frozen, settings.study_name)
        if on_trial is not None:
            on_trial(frozen)

    if tracker is not None and parent_run_id is not None:
        tracker.set_tags(parent_run_id, {"optuna.role": "study", "optuna.study": settings.study_name,
                                         "optuna.storage": settings.storage.shown,
                                         "optuna.sampler": settings.sampler, "optuna.pruner": settings.pruner})
    study = open_study(settings, space)
    run = run_study(settings, space, objective, trial_end, study=study)
    summary = summarize(study, run.stopped_by, run.ran)
    summary.update({"sampler": settings.sampler, "pruner": settings.pruner, "storage": settings.storage.shown,
                    "requested_trials": settings.n_trials, "notes": space_notes(config, space)})
    if summary["best_trial"] is None:
        still = f", {summary['n_running']} still running in other workers" if summary["n_running"] else ""
        raise TrainpipeError(
            f"tuning: no trial of study {settings.study_name!r} completed ({summary['n_failed']} failed, "
            f"{summary['n_pruned']} pruned{still}). The trials' errors are in the tracking runs; check "
            "tuning.space and model.params."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_trials_csv(study, out_dir / "trials.csv")
    importances, why = param_importances(study)
    summary["param_importances"] = importances
    if why:
        summary["param_importances_note"] = why
    plots = []
    if plot_history(study, out_dir / "optimization_history.png"):
        plots.append("optimization_history.png")
    if plot_importances(importances, out_dir / "param_importances.png"):
        plots.append("param_importances.png")
    model_params, training_params = split_params(summary["best_params"])
    # the metric param the trials were scored with travels with the best params (same early stopping)
    model_params = {**metric_params(config.model.type, settings.metric, task.task,
                                    {**config.model.params, **model_params}), **model_params}
    write_json(out_dir / "best_params.json", {"model_params": model_params, "training": training_params,
                                              "metric": settings.metric, "best_value": summary["best_value"],
                                              "best_trial": summary["best_trial"],
                                              "study_name": settings.study_name})
    write_json(out_dir / "study_summary.json", summary)
    if tracker is not None and parent_run_id is not None:
        tracker.log_params(parent_run_id, {f"best.{k}": v for k, v in summary["best_params"].items()})
        for name in ("study_summary.json", "trials.csv", "best_params.json", *plots):
            tracker.log_artifact(parent_run_id, out_dir / name, "tuning")
    return summary


__all__ = ["STUDY_ENV", "metrics_of", "settings_for", "study_name_for", "tune_folds"]
