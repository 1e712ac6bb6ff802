"""The ``tune`` step: an Optuna study over ``tuning.space`` before ``train``; writes ``best_params.json``.

The objective is the validation split's score, or with ``tuning.cv_folds`` the mean over k folds of the
training split, with the preprocessor re-fitted on each fold's training part (no leakage).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import DataError
from trainpipe.pipeline._handoff import read_frame
from trainpipe.pipeline._step import Step, StepContext

if TYPE_CHECKING:
    from trainpipe.config import LoadedConfig
    from trainpipe.data import TaskInfo
    from trainpipe.tuning import Fold


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _holdout(ctx: StepContext) -> list[Fold]:
    import numpy as np

    from trainpipe.pipeline._steps import load_matrix
    from trainpipe.tuning import Fold

    pdir = ctx.input("preprocess")
    X_val = load_matrix(pdir / "X_val")
    if X_val is None or not (pdir / "y_val.npy").exists():
        raise DataError("tuning: the validation split is empty, so trials have nothing to be scored on. Set "
                        "data.split.val_size > 0, or tuning.cv_folds to score on folds of the training split.")
    return [Fold(load_matrix(pdir / "X_train"), np.load(pdir / "y_train.npy"), X_val, np.load(pdir / "y_val.npy"))]


def _cv_folds(ctx: StepContext, task: TaskInfo, k: int) -> list[Fold]:
    import pandas as pd
    from sklearn.model_selection import KFold, StratifiedKFold

    from trainpipe.features import FeatureSpec, build_preprocessor, prepare_frame
    from trainpipe.tuning import Fold

    cfg = ctx.config
    train = read_frame(ctx.input("split") / "train.parquet")
    feats = _read_json(ctx.input("preprocess") / "features.json")
    spec = FeatureSpec.from_dict(feats["spec"])
    features = cfg.features.model_copy(update={"categorical_encoding": feats.get("categorical_encoding",
                                                                                 cfg.features.categorical_encoding)})
    y_all = task.encode(train[cfg.data.target])
    if task.is_classification:
        smallest = int(pd.Series(y_all).value_counts().min())
        if smallest < k:
            raise DataError(f"tuning.cv_folds: {k} folds need at least {k} rows of every class in the training "
                            f"split; the rarest class has {smallest}. Lower tuning.cv_folds.")
        splitter: Any = StratifiedKFold(n_splits=k, shuffle=True, random_state=cfg.data.split.seed)
    else:
        splitter = KFold(n_splits=k, shuffle=True, random_state=cfg.data.split.seed)
    folds = []
    for fit_idx, val_idx in splitter.split(train, y_all):
        part, held = train.iloc[fit_idx], train.iloc[val_idx]
        pre = build_preprocessor(spec, features)
        X = pre.fit_transform(prepare_frame(part, spec))
        folds.append(Fold(X, y_all[fit_idx], pre.transform(prepare_frame(held, spec)), y_all[val_idx]))
    return folds


def _on_gpu(ctx: StepContext) -> bool:
    device = ctx.config.training.device
    if device == "cuda":
        return True
    if device == "auto" and ctx.config.model.type.startswith("torch"):
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


def tune(ctx: StepContext) -> None:
    from trainpipe.data import TaskInfo
    from trainpipe.tuning import metrics_of, tune_folds

    cfg = ctx.config
    tuning = cfg.tuning
    if tuning is None:  # steps_for adds this step only with a tuning section
        raise DataError("tuning: the tune step runs only for a pipeline with a tuning section.")
    task = TaskInfo.from_dict(_read_json(ctx.input("validate") / "task.json"))
    folds = _cv_folds(ctx, task, tuning.cv_folds) if tuning.cv_folds else _holdout(ctx)
    cat_idx = list(_read_json(ctx.input("preprocess") / "features.json").get("categorical_indices", []))
    done = 0

    def on_trial(frozen: Any) -> None:
        nonlocal done
        done += 1
        value = {} if frozen.value is None else {"value": float(frozen.value)}
        ctx.hooks.on_round("tune", done, tuning.n_trials, value)

    summary = tune_folds(cfg, task, folds, ctx.out_dir, tracker=ctx.tracker, parent_run_id=ctx.run_id,
                         on_gpu=_on_gpu(ctx), on_trial=on_trial, categorical_indices=cat_idx,
                         fingerprint=study_fingerprint(ctx))
    for note in summary.get("notes", []):  # e.g. a tuned key also fixed in model.params: the trial's value wins
        ctx.hooks.on_message(note)
    ctx.metrics.update(metrics_of(summary))
    ctx.params.update({"study_name": summary["study_name"], "sampler": summary["sampler"],
                       "pruner": summary["pruner"], "tuning_metric": summary["metric"]})
    ctx.hooks.on_message(
        f"study {summary['study_name']}: {summary['n_trials']} trials ({summary['n_complete']} complete, "
        f"{summary['n_pruned']} pruned, {summary['n_failed']} failed); best {summary['metric']} = "
        f"{summary['best_value']:.6g} at trial {summary['best_trial']}; "
        f"{summary['work_saved_fraction']:.0%} of the rounds saved"
    )


def _study_key(loaded: LoadedConfig) -> dict[str, str]:
    """The study name joins the cache key: another study (``--study``) is another result."""
    from trainpipe.tuning import study_name_for

    return {"study": study_name_for(loaded.config)}


TUNE_STEP = Step(
    "tune", tune, ("preprocess", "validate", "split"), ("tuning", "model", "training", "cost"),
    ("optuna", "scikit-learn", "xgboost", "xgboost-cpu", "lightgbm", "torch", "numpy"),
    external=_study_key, description="Optuna study over tuning.space; best parameters for train",
)
