"""The ``tune`` step: an Optuna study over ``tuning.space`` before ``train``; writes ``best_params.json``.

The objective is the mean score over the folds of the selection plan (``tuning.selection``, see
``trainpipe.tuning._selection``): k-fold CV or repeated 80/20 holdouts of the training split, with the
preprocessor re-fitted on each fold's training part (no leakage), or the validation split once.

Tuned TF-IDF settings (``features.text_options.*``): each trial's folds are preprocessed with its settings
(:class:`TrainingRowFolds`), and the train step refits the preprocessor with the chosen ones
(:func:`tuned_preprocessing`) and ships it in the model directory, which evaluate and register read: the
preprocess step's artifacts stay those of the config's settings, so its cache entry and lineage are unchanged.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError, DataError
from trainpipe.pipeline._artifacts import load_matrix
from trainpipe.pipeline._artifacts import read_json as _read_json
from trainpipe.pipeline._handoff import read_frame
from trainpipe.pipeline._step import Step, StepContext, refs
from trainpipe.tracking._lineage import family_libraries

if TYPE_CHECKING:
    from trainpipe.config import LoadedConfig
    from trainpipe.data import TaskInfo
    from trainpipe.tuning import Fold, SelectionPlan


def _holdout(ctx: StepContext) -> list[Fold]:
    import numpy as np

    from trainpipe.tuning import Fold

    X_val = load_matrix(ctx.artifact("X_val"))
    if X_val is None or not ctx.artifact("y_val.npy").exists():
        raise DataError(_NO_VALIDATION)
    return [Fold(load_matrix(ctx.artifact("X_train")), np.load(ctx.artifact("y_train.npy")), X_val,
                 np.load(ctx.artifact("y_val.npy")))]


_NO_VALIDATION = ("tuning: the validation split is empty, so trials have nothing to be scored on. Set "
                  "data.split.val_size > 0, or tuning.cv_folds to score on folds of the training split.")
TEXT_FOLD_CACHE = 3  # fold sets of TF-IDF settings other than the config's kept at once (sparse matrices each)


class TrainingRowFolds:
    """The folds of a selection plan, cut from the training split (made once per plan).

    With tuned TF-IDF settings (``features.text_options.*`` keys, see ``trainpipe.tuning._space``) a trial asks
    for the folds of its own settings: each fold's preprocessor is fitted with them on the fold's training part
    (the ``holdout`` plan: on the training split's raw rows, then transforms the validation split's raw rows),
    so no setting leaks the held-out rows. The config's settings keep their folds for the whole study; the fold
    sets of the last ``TEXT_FOLD_CACHE`` other settings are kept too (least recently used dropped first), so
    trials that share a setting (the default text space's sizes are a few choices) share the fitting."""

    def __init__(self, ctx: StepContext, task: TaskInfo, keep: int = TEXT_FOLD_CACHE) -> None:
        from collections import OrderedDict

        from trainpipe.features import FeatureSpec
        from trainpipe.features._text import text_options
        from trainpipe.tuning._space_checks import reads_raw_text

        self.ctx, self.task, self.keep = ctx, task, keep
        self.train = read_frame(ctx.artifact("train.parquet"))
        self.n_rows = len(self.train)
        y_val = ctx.artifact("y_val.npy")
        n_val = 0
        if y_val.exists():
            import numpy as np

            n_val = int(np.load(y_val, mmap_mode="r").shape[0])
        self.refit_rows = self.n_rows + n_val
        cfg = ctx.config
        feats = _read_json(ctx.artifact("features.json"))
        self.spec = FeatureSpec.from_dict(feats["spec"])
        self.features = cfg.features.model_copy(update={"categorical_encoding": feats.get(
            "categorical_encoding", cfg.features.categorical_encoding)})
        self.raw_text = reads_raw_text(cfg)  # as the preprocess step decided
        # the columns each fold's preprocessor runs through TF-IDF: what features.text_options.* keys can tune
        self.tfidf_columns: tuple[str, ...] = () if self.raw_text else tuple(self.spec.text)
        self.base_options = text_options(cfg.features)
        self._made: dict[tuple[str, int, int], list[Fold]] = {}
        self._tuned: OrderedDict[tuple[Any, ...], list[Fold]] = OrderedDict()
        self._fit_seconds, self._fit_rows = 0.0, 0  # preprocessors fitted for tuned settings: time, rows

    @property
    def preprocess_seconds_per_row(self) -> float:
        """Seconds per training row the preprocessors of tuned TF-IDF settings took to fit and transform (0 before
        any): the tune step's estimate of train's preprocessor refit (``tuning.timeout`` reserve)."""
        return self._fit_seconds / self._fit_rows if self._fit_rows else 0.0

    def __call__(self, plan: SelectionPlan, text_options: dict[str, Any] | None = None) -> list[Fold]:
        """The folds of ``plan``; ``text_options``: a trial's TF-IDF settings (None or the config's: the
        preprocess step's)."""
        options = {**self.base_options, **(text_options or {})}
        if options == self.base_options:
            key = plan.key
            if key not in self._made:
                self._made[key] = (_holdout(self.ctx) if plan.kind == "holdout" else self._cut(plan, self.features))
            return self._made[key]
        from trainpipe.config._schema import TextOptions

        settings = tuple(sorted(options.items()))
        tuned_key = (*plan.key, settings)
        if tuned_key in self._tuned:
            self._tuned.move_to_end(tuned_key)
            return self._tuned[tuned_key]
        features = self.features.model_copy(update={"text_options": TextOptions.model_validate(options)})
        started = time.perf_counter()
        folds = self._refit_holdout(features) if plan.kind == "holdout" else self._cut(plan, features)
        self._fit_seconds += time.perf_counter() - started
        self._fit_rows += sum(int(f.X.shape[0]) for f in folds)
        self._tuned[tuned_key] = folds
        while len(self._tuned) > self.keep:
            self._tuned.popitem(last=False)
        return folds

    def _refit_holdout(self, features: Any) -> list[Fold]:
        """The holdout fold with other TF-IDF settings: fitted on the training split's raw rows, the validation
        split's raw rows transformed (as the preprocess step does with the config's settings)."""
        from trainpipe.features import build_preprocessor, prepare_frame
        from trainpipe.tuning import Fold

        val = read_frame(self.ctx.artifact("val.parquet")) if self.ctx.has_input("val.parquet") else None
        if val is None or len(val) == 0:
            raise DataError(_NO_VALIDATION)
        target = self.ctx.config.data.target
        pre = build_preprocessor(self.spec, features, raw_text=self.raw_text)
        X = pre.fit_transform(prepare_frame(self.train, self.spec))
        return [Fold(X, self.task.encode(self.train[target]), pre.transform(prepare_frame(val, self.spec)),
                     self.task.encode(val[target]))]

    def _cut(self, plan: SelectionPlan, features: Any) -> list[Fold]:
        import pandas as pd
        from sklearn.model_selection import (
            KFold,
            RepeatedKFold,
            RepeatedStratifiedKFold,
            ShuffleSplit,
            StratifiedKFold,
            StratifiedShuffleSplit,
        )

        from trainpipe.features import build_preprocessor, prepare_frame
        from trainpipe.tuning import Fold

        cfg, task, train, k, spec = self.ctx.config, self.task, self.train, plan.k, self.spec
        y_all = task.encode(train[cfg.data.target])
        seed = cfg.data.split.seed
        cv = plan.kind == "cv"
        if task.is_classification:
            smallest = int(pd.Series(y_all).value_counts().min())
            need = k if cv else 2
            if smallest < need:
                key = "tuning.cv_folds" if cv else "tuning.selection"
                raise DataError(f"{key}: {plan.shown} needs at least {need} rows of every class in the training "
                                f"split; the rarest class has {smallest}. Lower tuning.cv_folds, or set "
                                "tuning.selection: holdout to score on the validation split.")
            splitter: Any = (StratifiedKFold(n_splits=k, shuffle=True, random_state=seed) if cv
                             else StratifiedShuffleSplit(n_splits=k, test_size=0.2, random_state=seed))
            if cv and plan.repeats > 1:
                splitter = RepeatedStratifiedKFold(n_splits=k, n_repeats=plan.repeats, random_state=seed)
        else:
            splitter = (KFold(n_splits=k, shuffle=True, random_state=seed) if cv
                        else ShuffleSplit(n_splits=k, test_size=0.2, random_state=seed))
            if cv and plan.repeats > 1:
                splitter = RepeatedKFold(n_splits=k, n_repeats=plan.repeats, random_state=seed)
        folds = []
        for fit_idx, val_idx in splitter.split(train, y_all):
            part, held = train.iloc[fit_idx], train.iloc[val_idx]
            # a family that reads raw text gets the strings, as from the preprocess step
            pre = build_preprocessor(spec, features, raw_text=self.raw_text)
            X = pre.fit_transform(prepare_frame(part, spec))
            folds.append(Fold(X, y_all[fit_idx], pre.transform(prepare_frame(held, spec)), y_all[val_idx]))
        return folds


def _family(ctx: StepContext, model_type: str | None = None) -> Any:
    """The family of ``model_type`` (default: the config's, or with ``model.type: auto`` its first family)."""
    from trainpipe.models import family_for
    from trainpipe.tuning._multi import lead_type

    return family_for(model_type or lead_type(ctx.config))


def _on_gpu(ctx: StepContext) -> bool:
    device = ctx.config.training.device
    if device == "cuda":
        return True
    if device == "auto" and _family(ctx).gpu:
        import torch

        return bool(torch.cuda.is_available())
    return False


def study_fingerprint(ctx: StepContext) -> str:
    """What a study answers: the data (content of the tune step's inputs), the model, the loop settings and
    the search. Not the storage URL, budgets or trial count, which may differ between workers."""
    import hashlib

    cfg = ctx.config
    assert cfg.tuning is not None
    what = {"inputs": dict(sorted(ctx.input_fingerprints.items())), "model": cfg.model.model_dump(mode="json"),
            "training": cfg.training.model_dump(mode="json"),
            "tuning": cfg.tuning.model_dump(mode="json", exclude={"storage", "timeout", "max_cost", "n_trials"})}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


class TrialProgress:
    """The tune step's ``on_trial``: the progress bar's trial count, the trial's value and the best so far in
    the study's direction (pruned and failed trials count, without a value)."""

    def __init__(self, ctx: StepContext, total: int) -> None:
        self.ctx, self.total, self.done = ctx, total, 0
        self.best: float | None = None

    def __call__(self, frozen: Any, direction: str) -> None:
        self.done += 1
        shown: dict[str, float] = {}
        if frozen.value is not None:
            value = float(frozen.value)
            better = self.best is None or (value > self.best if direction == "maximize" else value < self.best)
            self.best = value if better else self.best
            shown["value"] = value
        if self.best is not None:
            shown["best"] = self.best
        self.ctx.hooks.on_round("tune", self.done, self.total, shown)


def tune(ctx: StepContext) -> None:
    from trainpipe.data import TaskInfo
    from trainpipe.features._text import text_options
    from trainpipe.tuning import metrics_of, tune_folds

    cfg = ctx.config
    tuning = cfg.tuning
    if tuning is None:  # steps_for adds this step only with a tuning section
        raise ConfigError("tuning: trainpipe tune needs a tuning: section, and this pipeline has none. Add one, "
                          "e.g. tuning: {n_trials: 30, metric: roc_auc}.")
    started = time.perf_counter()  # tuning.timeout counts from here: folds, study and (in train) the refit
    task = TaskInfo.from_dict(_read_json(ctx.artifact("task.json")))
    folds = TrainingRowFolds(ctx, task)
    cat_idx = list(_read_json(ctx.artifact("features.json")).get("categorical_indices", []))
    summary = tune_folds(cfg, task, folds, ctx.out_dir, tracker=ctx.tracker, parent_run_id=ctx.run_id,
                         on_gpu=_on_gpu(ctx), on_trial=TrialProgress(ctx, tuning.n_trials), categorical_indices=cat_idx,
                         fingerprint=study_fingerprint(ctx), started=started)
    for note in summary.get("notes", []):  # e.g. a tuned key also fixed in model.params: the trial's value wins
        ctx.hooks.on_message(note)
    ctx.metrics.update(metrics_of(summary))
    ctx.params.update({"study_name": summary["study_name"], "sampler": summary["sampler"],
                       "pruner": summary["pruner"], "tuning_metric": summary["metric"],
                       "chosen_model_type": summary["model_type"]})
    decision = summary.get("ensemble")
    if decision is not None:
        if decision["used"]:
            ctx.hooks.on_message(
                f"ensemble: trials {decision['members']} (trial: weight), {summary['metric']} "
                f"{decision['score']:.6g} against the chosen trial's {decision['single_score']:.6g} on the "
                f"{decision['source']}")
        else:
            ctx.hooks.on_message(f"ensemble not used: {decision['why']}")
        if decision["source"].startswith("predictions on the validation split"):
            ctx.hooks.on_message(f"ensemble chosen on the {decision['source']}")
    for family, stats in (summary.get("families") or {}).items():
        best = "" if stats["best_value"] is None else f", best {stats['best_value']:.6g}"
        seconds = "" if stats["mean_trial_seconds"] is None else f", {stats['mean_trial_seconds']:.2f} s per trial"
        ctx.hooks.on_message(f"family {family}: {stats['trials']} trials ({stats['complete']} complete){best}"
                             f"{seconds}")
    ctx.hooks.on_message(
        f"study {summary['study_name']}: {summary['n_trials']} trials ({summary['n_complete']} complete, "
        f"{summary['n_pruned']} pruned, {summary['n_failed']} failed); best {summary['metric']} = "
        f"{summary['best_value']:.6g} at trial {summary['best_trial']}; "
        f"{summary['work_saved_fraction']:.0%} of the rounds saved"
    )
    ctx.hooks.on_message(selection_message(summary))
    chosen_text = summary.get("text_options")
    if chosen_text:
        same = chosen_text == text_options(cfg.features)
        ctx.hooks.on_message("TF-IDF settings of the chosen trial: " + ", ".join(
            f"{k}={v}" for k, v in sorted(chosen_text.items())) + (" (the config's)" if same else
                                                                   " (train refits the preprocessor with them)"))
    budget = summary["budget"]
    if budget["timeout"] is not None:
        ctx.hooks.on_message(
            f"tuning.timeout {budget['timeout']:g} s: study {budget['study_seconds']:.1f} s + refit estimate "
            f"{budget['refit_estimate_seconds']:.1f} s, margin {budget['margin_estimate_seconds']:+.1f} s")
    for key in ("study_seconds", "refit_estimate_seconds", "margin_estimate_seconds"):
        if budget.get(key) is not None:
            ctx.metrics[f"budget_{key}"] = float(budget[key])


def selection_message(summary: dict[str, Any]) -> str:
    """One line: how trials were scored, the chosen trial's mean and spread, and the defaults' trial."""
    chosen, defaults = summary["best_estimate"], summary.get("defaults_estimate")
    std = chosen.get("std")
    text = (f"selection: {summary['selection']['shown']}; chosen trial {chosen['trial']} "
            f"{summary['metric']} = {chosen['mean']:.6g}" + (f" ± {std:.3g}" if std is not None else ""))
    if defaults is not None:
        dstd = defaults.get("std")
        text += (f"; defaults (trial {defaults['trial']}) {defaults['mean']:.6g}"
                 + (f" ± {dstd:.3g}" if dstd is not None else ""))
    return text


def _study_key(loaded: LoadedConfig) -> dict[str, str]:
    """The study name joins the cache key: another study (``--study``) is another result."""
    from trainpipe.tuning import study_name_for

    return {"study": study_name_for(loaded.config)}


TUNE_STEP = Step(
    "tune", tune, refs("preprocess.X_train", "preprocess.y_train.npy", "preprocess.X_val", "preprocess.y_val.npy",
                       "preprocess.features.json", "validate.task.json", "split.train.parquet", "split.val.parquet"),
    ("tuning", "model", "training", "cost"),
    ("optuna", "scikit-learn", *family_libraries(), "numpy"),
    external=_study_key, description="Optuna study over tuning.space; best parameters for train",
    outputs=("best_params.json", "study_summary.json"), wants_gpu=True, artifact_dir="tuning",
    single_process=(
        "tuning: a study cannot run inside torchrun (every process would run its own trials). Run "
        "`trainpipe tune` first (several workers can share one study), then start torchrun with the best "
        "parameters (--set model.params.KEY=VALUE), without the tuning section."),
)
# what train reads when the graph has the tune step: the best parameters, and the raw training and validation
# rows to refit the preprocessor with tuned TF-IDF settings (see tuned_preprocessing)
TUNED_INPUT = refs("tune.best_params.json", "split.train.parquet", "split.val.parquet")


@dataclass
class TunedPreprocessing:
    """The preprocessor refitted with the study's chosen TF-IDF settings, and what it makes of the rows."""

    X: Any
    X_val: Any
    features: dict[str, Any]  # features.json with this preprocessor's feature names
    file: Path  # the fitted preprocessor (skops), copied into the model directory
    seconds: float


def tuned_preprocessing(ctx: StepContext, tuned: dict[str, Any]) -> TunedPreprocessing | None:
    """The train step after a study that tuned ``features.text_options.*``: the preprocessor fitted again with the
    chosen settings (``text_options`` in best_params.json) on the training split's raw rows, as the preprocess
    step fits it with the config's, and the training and validation rows transformed; None when the chosen
    settings are the config's (the preprocess step's preprocessor and matrices are used as they are).

    Fitted on the training rows only, also when the final model is then fitted on train + validation (as every
    other preprocessing step is, and as each trial's fold was): the trials chose these settings for a
    preprocessor that never saw the rows it was scored on. The model directory ships this preprocessor, so
    evaluate, register and the registered pyfunc (raw text in) use it; its time counts in refit.json."""
    chosen = tuned.get("text_options")
    if not chosen:
        return None
    from trainpipe.config._schema import TextOptions
    from trainpipe.features import FeatureSpec, build_preprocessor, feature_names, prepare_frame
    from trainpipe.features._text import compact_vocabularies, text_options
    from trainpipe.models import _skops_io

    cfg = ctx.config
    if dict(chosen) == text_options(cfg.features):
        return None
    started = time.perf_counter()
    feats = _read_json(ctx.artifact("features.json"))
    spec = FeatureSpec.from_dict(feats["spec"])
    encoding = str(feats.get("categorical_encoding", cfg.features.categorical_encoding))
    features = cfg.features.model_copy(update={"categorical_encoding": encoding,
                                               "text_options": TextOptions.model_validate(chosen)})
    train_rows = read_frame(ctx.artifact("train.parquet"))
    val_rows = read_frame(ctx.artifact("val.parquet"))
    pre = build_preprocessor(spec, features)
    X = pre.fit_transform(prepare_frame(train_rows, spec))
    X_val = pre.transform(prepare_frame(val_rows, spec)) if len(val_rows) else None
    compact_vocabularies(pre)
    file = ctx.out_dir / ".tuned_preprocessor.skops"  # copied into the model directory, then removed
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    _skops_io.dump(pre, file)
    names = feature_names(pre)
    cat_idx = [i for i, n in enumerate(names) if n.startswith("categorical__")] if encoding == "ordinal" else []
    shown = ", ".join(f"{k}={v}" for k, v in sorted(chosen.items()))
    ctx.params["tuned_text_options"] = shown  # the train run records what its preprocessor was fitted with
    ctx.hooks.on_message(f"preprocessor refitted with the study's TF-IDF settings ({shown}): {len(names)} features "
                         f"(the preprocess step's: {len(feats.get('feature_names', []))})")
    return TunedPreprocessing(X, X_val, {**feats, "feature_names": names, "categorical_indices": cat_idx,
                                         "text_options": dict(chosen)}, file, time.perf_counter() - started)


def refit_on_train_val(ctx: StepContext, tuned: dict[str, Any], model_cfg: Any, X: Any, y: Any, X_val: Any,
                       y_val: Any) -> tuple[Any, Any, Any, Any, Any, dict[str, Any] | None]:
    """The train step's final fit after a study: the chosen configuration on train + validation rows, with the
    boosting rounds scaled from the folds' early stopping (``final_fit`` in best_params.json), no early stopping.
    Torch models (whose validation split drives early stopping and checkpoints) keep training on train only."""
    import numpy as np
    import scipy.sparse as sp

    from trainpipe.tuning._multi import family_config

    plan = tuned.get("final_fit")
    model_type = str(tuned.get("model_type") or model_cfg.type)
    if plan and plan.get("mode") == "untuned_defaults":
        ctx.hooks.on_message("tuning found nothing better than the defaults beyond the noise of its estimate: the "
                             f"final model is the untuned {model_type} (training rows, early stopping on "
                             "validation)")
        # the config's own model section: not the study's, which adds e.g. eval_metric from tuning.metric and so
        # would early-stop on another metric than the untuned run does
        return family_config(ctx.config, model_type).model, X, y, X_val, y_val, dict(plan)
    if not plan or X_val is None or y_val is None or not _family(ctx, model_type).refit_on_train_val:
        return model_cfg, X, y, X_val, y_val, None
    if "n_estimators" in plan:
        model_cfg = model_cfg.model_copy(update={"params": {**model_cfg.params, "n_estimators": plan["n_estimators"]}})
    X_all = sp.vstack([X, X_val], format="csr") if sp.issparse(X) else np.concatenate([np.asarray(X),
                                                                                       np.asarray(X_val)])
    rounds = ""
    if "n_estimators" in plan:
        rounds = (f", {plan['n_estimators']} rounds (the folds' best {plan.get('fold_best_rounds')} "
                  f"x {plan.get('scale', 1):.3f})")
    ctx.hooks.on_message(f"final fit on train + validation ({X_all.shape[0]} rows){rounds}, no early stopping")
    return model_cfg, X_all, np.concatenate([y, y_val]), None, None, dict(plan)


def record_refit(ctx: StepContext, tuned: dict[str, Any], refit: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Write refit.json (the refit and the tuning budget it closes) and report the margin."""
    from trainpipe.tuning._tracking import write_json

    budget = dict(tuned.get("budget") or {})
    study = float(budget.get("study_seconds") or 0.0)
    timeout = budget.get("timeout")
    total = study + seconds
    record = {**refit, "refit_seconds": seconds, "study_seconds": study, "study_and_refit_seconds": total,
              "timeout": timeout, "margin_seconds": None if timeout is None else float(timeout) - total}
    write_json(ctx.out_dir / "refit.json", record)
    ctx.metrics.update({"refit_seconds": seconds, "study_and_refit_seconds": total})
    if timeout is not None:
        ctx.metrics["tuning_margin_seconds"] = float(timeout) - total
        ctx.hooks.on_message(f"tuning.timeout {float(timeout):g} s: study {study:.1f} s + refit {seconds:.1f} s = "
                             f"{total:.1f} s (margin {float(timeout) - total:+.1f} s)")
    return record


def _fold_of(ctx: StepContext, task: Any, X: Any, y: Any, X_val: Any, y_val: Any, fold: int, k: int
             ) -> tuple[Any, Any, Any, Any]:
    """Fold ``fold`` of ``k`` of train + validation rows: (fit rows, their labels, held-out rows, labels)."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.model_selection import KFold, StratifiedKFold

    if X_val is None or y_val is None:
        X_all, y_all = X, y
    else:
        X_all = sp.vstack([X, X_val], format="csr") if sp.issparse(X) else np.concatenate([np.asarray(X),
                                                                                           np.asarray(X_val)])
        y_all = np.concatenate([y, y_val])
    seed = ctx.config.data.split.seed
    splitter: Any = (StratifiedKFold(k, shuffle=True, random_state=seed) if task.is_classification
                     else KFold(k, shuffle=True, random_state=seed))
    fit, held = list(splitter.split(np.zeros(len(y_all)), y_all))[fold]
    return X_all[fit], y_all[fit], X_all[held], y_all[held]


def train_ensemble(ctx: StepContext, tuned: dict[str, Any], task: Any, X: Any, y: Any, X_val: Any,
                   y_val: Any, preprocessing: TunedPreprocessing | None = None) -> None:
    """The train step after a study whose ``tuning.ensemble`` beat the single best trial: each member's final
    fit (as for a single chosen trial: refit on train + validation with scaled rounds, or the untuned defaults),
    then one :class:`~trainpipe.models._ensemble.EnsembleAdapter` saved as the model directory. With
    ``tuning.final_model: fold_average`` the members are the chosen configuration fitted on each of k folds of
    train + validation rows, early-stopped on the held-out fold, with equal weights."""
    from trainpipe.features import FeatureSpec
    from trainpipe.models import ModelSpec, create_adapter
    from trainpipe.models._ensemble import TYPE, EnsembleAdapter
    from trainpipe.models._trained import PREPROCESSOR_FILE, save_model_dir
    from trainpipe.pipeline._artifacts import write_json
    from trainpipe.tuning._multi import family_config

    cfg = ctx.config
    feats = preprocessing.features if preprocessing is not None else _read_json(ctx.artifact("features.json"))
    members: list[tuple[str, Any]] = []
    weights: list[float] = []
    params: dict[str, Any] = {}
    started = time.perf_counter()
    for i, member in enumerate(tuned["ensemble"]):
        base = family_config(cfg, str(member["model_type"])).model
        model_cfg = base.model_copy(update={"params": {**base.params, **member.get("model_params", {})}})
        training_cfg = cfg.training.model_validate({**cfg.training.model_dump(), **member.get("training", {})})
        fit = member.get("final_fit") or {}
        if fit.get("mode") == "fold":  # tuning.final_model: fold_average
            Xm, ym, Xv, yv = _fold_of(ctx, task, X, y, X_val, y_val, int(fit["fold"]), int(fit["k"]))
            where = f", fold {int(fit['fold']) + 1} of {int(fit['k'])}"
        else:
            model_cfg, Xm, ym, Xv, yv, _ = refit_on_train_val(ctx, member, model_cfg, X, y, X_val, y_val)
            where = ""
        adapter = create_adapter(task, model_cfg, training_cfg,
                                 categorical_indices=list(feats.get("categorical_indices", [])))
        adapter.fit(Xm, ym, Xv, yv, None)
        members.append((model_cfg.type, adapter))
        weights.append(float(member["weight"]))
        params[f"ensemble.member.{i}"] = (f"{model_cfg.type} (trial {member['trial']}{where}), weight "
                                          f"{float(member['weight']):.3g}")
    ensemble = EnsembleAdapter(task, members, weights)
    ctx.hooks.on_message(f"ensemble of {len(members)} models: " + "; ".join(params.values()))
    spec = ModelSpec(model_type=TYPE, family=TYPE, task=task, features=FeatureSpec.from_dict(feats["spec"]),
                     feature_names=feats["feature_names"], input_dtypes=feats["input_dtypes"], params=params)
    save_model_dir(ctx.out_dir / "model", spec, ensemble,
                   preprocessing.file if preprocessing is not None else ctx.artifact(PREPROCESSOR_FILE))
    if preprocessing is not None:
        preprocessing.file.unlink(missing_ok=True)
    write_json(ctx.out_dir / "train.json", {"best_iteration": None, "n_iterations": None,
                                            "params": spec.to_dict()["params"], "history": {}, "notes": [],
                                            "ensemble": tuned["ensemble"]})
    mode = "fold_average" if (tuned.get("final_fit") or {}).get("mode") == "fold_average" else "ensemble"
    text_seconds = preprocessing.seconds if preprocessing is not None else 0.0
    record_refit(ctx, tuned, {"mode": mode, "members": len(members),
                              **({"preprocessor_refit_seconds": text_seconds} if preprocessing is not None else {})},
                 time.perf_counter() - started + text_seconds)
    ctx.metrics["ensemble_members"] = float(len(members))
