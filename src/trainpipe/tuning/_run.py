"""Tune a pipeline's model on prepared folds: settings from the config, the study, the files it leaves.

TF-IDF settings (``features.text_options.*`` keys of the space) need a fold source that re-fits the
preprocessor (the tune step's ``TrainingRowFolds``; it says which columns go through TF-IDF in
``tfidf_columns``): each trial asks it for the folds of its own settings (``source(plan, text_options)``),
records the matrix width it was scored on (user attr ``n_features``), and ``best_params.json`` carries the chosen
trial's full settings under ``text_options``, which the train step refits the preprocessor with.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError, TuningFailed
from trainpipe.tuning._budget import infer_direction, objective_metric
from trainpipe.tuning._ensemble import ensemble_settings
from trainpipe.tuning._multi import family_config, family_stats, is_multi, lead_type, split_family, study_families
from trainpipe.tuning._objective import (
    BOOSTER_DEFAULT_ROUNDS,
    Fold,
    RoundCounter,
    deadline_reached,
    fit_and_score,
    metric_params,
    rounds_for_learning_rate,
)
from trainpipe.tuning._selection import (
    PLAN_ATTR,
    POST_STUDY_SECONDS,
    REFIT_SAFETY,
    FoldSource,
    SelectionPlan,
    auto_plan,
    choose_best,
    configured_plan,
    final_fit,
    refit_estimate,
)
from trainpipe.tuning._space import check_space, default_space, defaults_text_params, split_params, text_params
from trainpipe.tuning._space_checks import space_notes, text_keys
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
    families = tuple(study_families(config, task_name)) if is_multi(config) else ()
    return StudySettings(
        study_name=study_name or study_name_for(config), storage=parse_storage(tuning.storage), metric=metric,
        direction=infer_direction(metric, tuning.direction), n_trials=tuning.n_trials, sampler=tuning.sampler,
        pruner=pruner_for(config), seed=config.training.seed, timeout=tuning.timeout, max_cost=tuning.max_cost,
        prices=config.cost, on_gpu=on_gpu, max_resource=max_resource, fingerprint=fingerprint, defaults_trial=True,
        families=families,
    )


def pruner_for(config: PipelineConfig) -> str:
    """``tuning.pruner``; ``auto`` is Hyperband (successive halving across trials on the round count) for the
    families that train in rounds or epochs, and the median rule for the others (which report nothing)."""
    from trainpipe.models import family_for

    assert config.tuning is not None
    if config.tuning.pruner != "auto":
        return config.tuning.pruner
    if is_multi(config):  # a step is a round in one family and an epoch in another (see _multi)
        return "none"
    return "hyperband" if family_for(config.model.type).round_budget is not None else "median"


def rounds_of(config: PipelineConfig) -> int | None:
    """The per-trial budget of reported steps (rounds or epochs of the first fold, the one that reports)."""
    from trainpipe.models import family_for

    if config.tuning is None or is_multi(config):
        return None
    space = config.tuning.space
    if space is None:
        try:
            space = default_space(config.model.type)
        except ConfigError:
            space = {}
    if "n_estimators" in space or "training.epochs" in space:
        return None  # tuned budget: the pruners infer it from the trials
    if (config.model.type in BOOSTER_DEFAULT_ROUNDS and "n_estimators" not in config.model.params
            and "learning_rate" in space):
        return None  # the round cap follows the sampled learning rate (rounds_for_learning_rate)
    return family_for(config.model.type).rounds(config.model.params, config.training)


@dataclass
class _Probe:
    """The defaults fitted once on one 80/20 split of the training rows (``auto`` with a timeout)."""

    fold: Fold
    counter: RoundCounter
    refit_seconds: float  # the refit estimate it gives, safety factor included


def _plan_and_folds(config: PipelineConfig, task: TaskInfo, source: FoldSource, settings: StudySettings,
                    started: float, categorical_indices: Sequence[int], keep_oof: bool = False
                    ) -> tuple[SelectionPlan, list[Fold], _Probe | None]:
    """The selection plan (configured, or ``auto``'s rule), its folds, and the probe when one was fitted."""
    assert config.tuning is not None
    plan = configured_plan(config.tuning.selection, config.tuning.cv_folds, config.tuning.cv_repeats)
    if plan is not None:
        return plan, source(plan), None
    if settings.timeout is None:
        plan = auto_plan(source.n_rows, n_trials=settings.n_trials)
        return plan, source(plan), None
    probe_folds = source(SelectionPlan("repeated_holdout", 1))
    counter = RoundCounter(oof=[] if keep_oof else None)
    # a multi-family study times its first family's defaults (trial 0)
    fit_and_score(family_config(config, lead_type(config, task.task)), task, {}, probe_folds, settings.metric,
                  settings.direction, None, counter, categorical_indices)
    seconds = counter.fit_seconds[0]
    refit = seconds * source.refit_rows / max(counter.fit_rows[0], 1) * REFIT_SAFETY
    available = settings.timeout - (time.perf_counter() - started) - refit - POST_STUDY_SECONDS
    plan = auto_plan(source.n_rows, timeout=settings.timeout, probe_seconds=seconds, available=available,
                     n_trials=settings.n_trials)
    if plan.repeats > 1 and len(settings.families) > 1:
        # the repeats are bought with trials: price a trial at the mean of every family's defaults, not the lead
        # family's alone (300-tree ExtraTrees cost ~10x a LightGBM fit; priced at LightGBM's, a study planned for
        # 100 trials ran 12)
        seconds = _mean_family_seconds(config, task, settings, probe_folds, categorical_indices, seconds,
                                       cap=PROBE_SHARE * available)
        available = settings.timeout - (time.perf_counter() - started) - refit - POST_STUDY_SECONDS
        plan = auto_plan(source.n_rows, timeout=settings.timeout, probe_seconds=seconds, available=available,
                         n_trials=settings.n_trials)
    return plan, source(plan), _Probe(probe_folds[0], counter, refit)


PROBE_SHARE = 0.05  # each further family's timing fit stops after this share of the study's time (per round)


def _mean_family_seconds(config: PipelineConfig, task: TaskInfo, settings: StudySettings, probe_folds: list[Fold],
                         categorical_indices: Sequence[int], lead_seconds: float, cap: float) -> float:
    """The mean fit seconds of every family's defaults on the probe split (the lead family's timed already).
    A fit still running after ``cap`` seconds stops at its next round and counts as the time it took (at least
    ``cap``: enough to rule the repeats out); a family whose defaults fail on their own is left out (the study
    records why, as that family's failed defaults trial)."""
    lead = lead_type(config, task.task)
    costs = [lead_seconds]
    for family in settings.families:
        if family == lead:
            continue
        began = time.perf_counter()
        counter = RoundCounter(deadline=began + max(cap, 0.0))
        try:
            fit_and_score(family_config(config, family), task, {}, probe_folds, settings.metric, settings.direction,
                          None, counter, categorical_indices)
        except Exception:
            if not deadline_reached(counter):
                continue
        costs.append(counter.fit_seconds[0] if counter.fit_seconds else time.perf_counter() - began)
    return sum(costs) / len(costs)


def _same_split(a: Fold, b: Fold) -> bool:
    import numpy as np

    return a.X.shape == b.X.shape and bool(np.array_equal(a.y_val, b.y_val)) and bool(np.array_equal(a.y, b.y))


def tune_folds(config: PipelineConfig, task: TaskInfo, folds: Sequence[Fold] | FoldSource, out_dir: Path, *,
               tracker: Tracker | None = None, parent_run_id: str | None = None, study_name: str | None = None,
               on_gpu: bool = False, on_trial: Callable[[FrozenTrial, str], None] | None = None,
               categorical_indices: Sequence[int] = (), fingerprint: str = "",
               started: float | None = None) -> dict[str, Any]:
    """Run (or join) the study, write best_params.json, study_summary.json, trials.csv and plots into
    ``out_dir``; return the summary.

    ``folds``: fixed folds, or a :class:`FoldSource` that makes the folds of the selection plan (``tuning.selection``).
    ``started``: when the timeout started counting (the tune step's start; default now)."""
    started = time.perf_counter() if started is None else started
    tfidf: tuple[str, ...] = () if isinstance(folds, Sequence) else tuple(getattr(folds, "tfidf_columns", ()))
    space = check_space(config, task.task, tfidf)
    tunes_text = bool(text_keys(space))
    settings = settings_for(config, task.task, study_name=study_name, on_gpu=on_gpu, max_resource=rounds_of(config),
                            fingerprint=fingerprint)
    settings = replace(settings, defaults_params=defaults_text_params(config, space))
    probe: _Probe | None = None
    ensemble = ensemble_settings(config, tunes_text)  # None: the single best trial
    if isinstance(folds, Sequence):
        made = list(folds)
        plan = SelectionPlan("given", len(made), "folds given by the caller")
        n_all = int(made[0].X.shape[0] + made[0].X_val.shape[0]) if made else 0
    else:
        plan, made, probe = _plan_and_folds(config, task, folds, settings, started, categorical_indices,
                                            keep_oof=ensemble is not None)
        n_all = folds.refit_rows
    settings = replace(settings, plan=plan.to_dict())

    probe_refit = probe.refit_seconds if probe is not None else 0.0

    probe_family = lead_type(config, task.task) if settings.families else None
    assert config.tuning is not None
    oof: dict[int, list[Any]] = {}  # trial number -> its per-fold validation predictions (tuning.ensemble)

    def objective(trial: Any, params: dict[str, Any], counter: RoundCounter) -> float:
        if ensemble is None:
            return _objective(trial, params, counter)
        counter.oof = []
        value = _objective(trial, params, counter)
        oof[trial.number] = counter.oof
        return value

    def trial_folds(text: dict[str, Any]) -> list[Fold]:
        """The plan's folds preprocessed with the trial's TF-IDF settings (the config's: ``made``)."""
        if not text or isinstance(folds, Sequence):
            return made
        return folds(plan, text_options=text)  # type: ignore[call-arg]

    def _objective(trial: Any, params: dict[str, Any], counter: RoundCounter) -> float:
        text = text_params(params)
        family, params = split_family(params)
        scoped = config if family is None else family_config(config, family)
        mine = trial_folds(text)
        if tunes_text:
            trial.set_user_attr("n_features", int(mine[0].X.shape[1]))
        if (probe is not None and not params and not counter.prunable and family == probe_family
                and mine is made and _same_split(probe.fold, made[0])):
            # the defaults' trial: its first fold is the probe's split, fitted already with the same parameters
            done = probe.counter
            for name in ("fold_scores", "fit_seconds", "fit_rows", "fold_rounds", "best_rounds"):
                getattr(counter, name).extend(getattr(done, name))
            if counter.oof is not None and done.oof is not None:
                counter.oof.extend(done.oof)
            counter.trained += done.fold_rounds[0]
            counter.budget += done.fold_rounds[0]
            if len(made) > 1:
                fit_and_score(scoped, task, params, made[1:], settings.metric, settings.direction, trial, counter,
                              categorical_indices, first_fold=1)
            return float(sum(counter.fold_scores) / len(counter.fold_scores))
        return fit_and_score(scoped, task, params, mine, settings.metric, settings.direction, trial, counter,
                             categorical_indices)

    def trial_end(frozen: FrozenTrial) -> None:
        if tracker is not None:
            log_trial(tracker, parent_run_id, frozen, settings.study_name)
        if on_trial is not None:  # with the study's direction: "maximize" or "minimize"
            on_trial(frozen, settings.direction)

    def text_refit_estimate() -> float:
        """Seconds of train's preprocessor refit with tuned TF-IDF settings: the folds' fitting time per row."""
        return float(getattr(folds, "preprocess_seconds_per_row", 0.0)) * n_all if tunes_text else 0.0

    def reserve(study: Any) -> float:
        """Seconds kept for the refit of the configuration chosen so far (with an ensemble: of the best trials it
        may pick, at most ``size``), and the files written after."""
        trials = study.get_trials(deepcopy=False)
        chosen = choose_best(trials, settings.direction)
        seconds = refit_estimate(chosen, n_all, probe_refit / REFIT_SAFETY)
        if config.tuning is not None and config.tuning.final_model == "fold_average":
            seconds *= FOLD_AVERAGE_K
        seconds += text_refit_estimate()
        if ensemble is not None:
            from trainpipe.tuning._ensemble import ensemble_pool

            # the members are at most `size` of the pool: the best `size`, and the families' best that join it
            pool = ensemble_pool(trials, settings.direction, ensemble.candidates)
            likely = pool[:min(ensemble.size, ensemble.candidates)] + pool[ensemble.candidates:]
            seconds = max(seconds, sum(refit_estimate(t, n_all, 0.0) for t in likely))
        return seconds * REFIT_SAFETY + POST_STUDY_SECONDS

    if tracker is not None and parent_run_id is not None:
        tracker.set_tags(parent_run_id, {"optuna.role": "study", "optuna.study": settings.study_name,
                                         "optuna.storage": settings.storage.shown,
                                         "optuna.sampler": settings.sampler, "optuna.pruner": settings.pruner})
    study = open_study(settings, space)
    stored = study.user_attrs.get(PLAN_ATTR)
    if stored and not isinstance(folds, Sequence):  # a joined study: score as its creator decided
        theirs = SelectionPlan.from_dict(stored)
        if theirs.key != plan.key:
            plan, made = theirs, folds(theirs)
    run = run_study(settings, space, objective, trial_end, study=study, started=started, reserve=reserve)
    summary = summarize(study, run.stopped_by, run.ran)
    summary.update({"sampler": settings.sampler, "pruner": settings.pruner, "storage": settings.storage.shown,
                    "requested_trials": settings.n_trials, "notes": space_notes(config, space)})
    trials = study.get_trials(deepcopy=False)
    chosen = choose_best(trials, settings.direction)
    if chosen is None:
        raise TuningFailed(no_trial_completed(settings, summary, trials))
    summary.update(selection_summary(trials, chosen, plan, n_all))
    if settings.families:
        summary["families"] = family_stats(trials, settings.families)
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
    model_type, model_params, training_params = trial_model(config, task, settings.metric, chosen)
    members: list[dict[str, Any]] = []
    refit = refit_estimate(chosen, n_all, probe_refit / REFIT_SAFETY)
    if ensemble is not None:
        import numpy as np

        from trainpipe.tuning._ensemble import select_ensemble

        decision = select_ensemble(trials, oof, np.concatenate([f.y_val for f in made]), metric=settings.metric,
                                   task=task, direction=settings.direction, size=ensemble.size,
                                   candidates=ensemble.candidates, chosen=chosen, plan_kind=plan.kind)
        summary["ensemble"] = decision
        if decision["used"]:
            by_number = {t.number: t for t in trials}
            for number, weight in decision["members"].items():
                member = by_number[number]
                m_type, m_params, m_training = trial_model(config, task, settings.metric, member)
                members.append({"trial": number, "weight": weight, "model_type": m_type, "model_params": m_params,
                                "training": m_training, "final_fit": final_fit(member, n_all)})
            refit = sum(refit_estimate(by_number[n], n_all, 0.0) for n in decision["members"])
    if not members and config.tuning.final_model == "fold_average":
        members = fold_members(summary, chosen, model_type, model_params, training_params, plan)
        refit *= len(members)
    refit += text_refit_estimate()
    study_seconds = time.perf_counter() - started
    summary["budget"] = {"timeout": settings.timeout, "study_seconds": study_seconds,
                         "refit_estimate_seconds": refit,
                         "margin_estimate_seconds": None if settings.timeout is None
                         else settings.timeout - study_seconds - refit}
    summary["model_type"] = model_type
    chosen_text: dict[str, Any] = {}
    if tunes_text:
        from trainpipe.features._text import text_options

        chosen_text = {**text_options(config.features), **text_params(chosen.params)}
        summary["text_options"] = chosen_text
    write_json(out_dir / "best_params.json", {"model_type": model_type,
                                              "model_params": model_params, "training": training_params,
                                              "metric": settings.metric, "best_value": summary["best_value"],
                                              "best_trial": summary["best_trial"],
                                              "study_name": settings.study_name,
                                              "final_fit": summary["final_fit"], "budget": summary["budget"],
                                              **({"text_options": chosen_text} if chosen_text else {}),
                                              **({"ensemble": members} if members else {})})
    write_json(out_dir / "study_summary.json", summary)
    if tracker is not None and parent_run_id is not None:
        tracker.log_params(parent_run_id, {f"best.{k}": v for k, v in summary["best_params"].items()})
        for name in ("study_summary.json", "trials.csv", "best_params.json", *plots):
            tracker.log_artifact(parent_run_id, out_dir / name, "tuning")
    return summary


FOLD_AVERAGE_K = 5  # fold models of tuning.final_model: fold_average (k of the CV plan when it is one)


def fold_members(summary: dict[str, Any], chosen: FrozenTrial, model_type: str, model_params: dict[str, Any],
                 training_params: dict[str, Any], plan: SelectionPlan) -> list[dict[str, Any]]:
    """``tuning.final_model: fold_average``: k members of the chosen configuration, one per fold of train +
    validation (each early-stopped on its held-out fold), equal weights; none when the defaults were kept (the
    final model is then the untuned one) or the family does not refit on train + validation (torch)."""
    from trainpipe.models import family_for

    if summary["final_fit"].get("mode") == "untuned_defaults" or not family_for(model_type).refit_on_train_val:
        return []
    k = plan.k if plan.kind == "cv" and plan.k >= 2 else FOLD_AVERAGE_K
    summary["final_fit"] = {"mode": "fold_average", "k": k, "rows": summary["final_fit"].get("rows")}
    return [{"trial": chosen.number, "weight": 1.0 / k, "model_type": model_type, "model_params": model_params,
             "training": training_params, "final_fit": {"mode": "fold", "fold": i, "k": k}} for i in range(k)]


def trial_model(config: PipelineConfig, task: TaskInfo, metric: str, trial: FrozenTrial
                ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(model type, model params, training overrides) of a trial's model, as the train step builds it: its
    family's (multi-family study), with the metric param the trials were scored with (same early stopping)."""
    family, params = split_family(trial.params)
    scoped = config if family is None else family_config(config, family)
    model_params, training_params = split_params(params)
    model_params = {**rounds_for_learning_rate(scoped.model.type, scoped.model.params, model_params), **model_params}
    model_params = {**metric_params(scoped.model.type, metric, task.task, {**scoped.model.params, **model_params}),
                    **model_params}
    return scoped.model.type, model_params, training_params


def no_trial_completed(settings: StudySettings, summary: dict[str, Any], trials: Sequence[FrozenTrial]) -> str:
    """What a study without one completed trial says: the counts, the first distinct trial errors, what to change."""
    still = f", {summary['n_running']} still running in other workers" if summary["n_running"] else ""
    errors: list[str] = []
    for t in trials:
        error = str(t.user_attrs.get("error") or "").strip()
        if error and t.state.name != "PRUNED":
            line = f"trial {t.number}: {error.splitlines()[0][:200]}"
            if not any(line.split(": ", 1)[1] == e.split(": ", 1)[1] for e in errors):
                errors.append(line)
        if len(errors) == 3:
            break
    shown = f" First errors: {'; '.join(errors)}." if errors else ""
    budget = ""
    if summary.get("stopped_by") in ("timeout", "max_cost"):
        budget = f" The study stopped at its tuning.{summary['stopped_by']} before a trial finished: raise it."
    return (f"tuning: no trial of study {settings.study_name!r} completed ({summary['n_failed']} failed, "
            f"{summary['n_pruned']} pruned{still}).{shown} Fix tuning.space or model.params so that a trial can "
            f"train (the defaults' trial 0 uses model.params alone), or set tuning.pruner: none if every trial "
            f"was pruned.{budget}")


def selection_summary(trials: Sequence[FrozenTrial], chosen: FrozenTrial, plan: SelectionPlan,
                      n_all: int) -> dict[str, Any]:
    """The chosen trial (replacing Optuna's best-by-value), the estimate's spread, the defaults' score."""
    def estimate(t: FrozenTrial) -> dict[str, Any]:
        return {"trial": t.number, "mean": t.value, "std": t.user_attrs.get("score_std"),
                "fold_scores": t.user_attrs.get("fold_scores"), "rounds_trained": t.user_attrs.get("rounds_trained")}

    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    defaults = next((t for t in complete if t.user_attrs.get("trainpipe.defaults")), None)
    return {"best_value": float(chosen.value),  # type: ignore[arg-type]
            "best_trial": int(chosen.number), "best_params": dict(chosen.params),
            "best_std": chosen.user_attrs.get("score_std"), "best_estimate": estimate(chosen),
            "defaults_estimate": None if defaults is None else estimate(defaults),
            "selection": {**plan.to_dict(), "shown": plan.shown,
                          "rule": "best mean (ties within a tenth of a standard error: the fewest rounds); the "
                                  "defaults' trial unless beaten by more than the paired per-fold noise"},
            "final_fit": final_fit(chosen, n_all)}


__all__ = ["STUDY_ENV", "metrics_of", "settings_for", "study_name_for", "tune_folds"]
