"""The core steps of ``task: ranking`` (``RankingTask.steps_module``): the same names and artifacts as the tabular
ones where later steps read them (``task.json``, ``train/val/test.parquet``, ``split.json``, ``model``,
``metrics.json``), so drift, gate and register run unchanged.

ingest (shared) -> validate (interaction checks, positives) -> split (per user, never leaking the future) ->
preprocess (user and item tables) -> train (the family's adapter on :class:`RankingData`) -> evaluate
(full-catalogue metrics beside the most-popular and matrix-factorisation baselines, activity and genre slices).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError, DataError
from trainpipe._signals import deferred
from trainpipe.pipeline._artifacts import read_json, write_json, write_parquet
from trainpipe.pipeline._handoff import read_frame
from trainpipe.pipeline._step import Step, StepContext, refs
from trainpipe.pipeline._steps import (
    CORE_STEPS,
    DATA,
    SPLITS,
    TASK,
    _gate_metrics,
    checkpoint_dir,
    prune_checkpoint_sets,
    record_training,
)
from trainpipe.pipeline._steps_tuning import TUNE_STEP as TABULAR_TUNE
from trainpipe.pipeline._steps_tuning import _study_key
from trainpipe.tracking._lineage import family_libraries

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from trainpipe.config import LoadedConfig, PipelineConfig

INTERACTIONS = "interactions.parquet"
USERS, ITEMS = "users.parquet", "items.parquet"


def _check_cutoffs(cfg: PipelineConfig, n_items: int) -> None:
    """Every cut-off (``evaluation.k``, ``...@k`` in evaluation.metrics, gate.thresholds, the champion metric) fits
    the catalogue."""
    from trainpipe.evaluation import _ranking

    sources = {"evaluation.k": [f"recall@{k}" for k in cfg.evaluation.k or []],
               "evaluation.metrics": list(cfg.evaluation.metrics or []),
               "gate.thresholds": list(cfg.gate.thresholds),
               "gate.champion.metric": [cfg.gate.champion.metric] if cfg.gate.champion.metric else []}
    for key, names in sources.items():
        for name in names:
            _, k = _ranking.parse(name)
            if k is not None and k > n_items:
                shown = f"k = {k}" if key == "evaluation.k" else f"{name!r}"
                raise ConfigError(f"{key}: {shown} asks for the top {k} items, but the catalogue has only {n_items} "
                                f"items (column {cfg.data.item!r}), so every user would get all of them. Use a "
                                f"cut-off below {n_items}.")


def validate(ctx: StepContext) -> None:
    from trainpipe.data._interactions import prepare_interactions
    from trainpipe.tasks import TaskInfo

    cfg = ctx.config
    raw = read_frame(ctx.artifact(DATA))
    checked = _declared_checks(ctx, raw)  # the validation: section, on the ingested rows (exit 3 on a failure)
    frame, report = prepare_interactions(raw, cfg)
    _check_cutoffs(cfg, report.items)  # again after every run, cached or not: cutoffs_after_validate
    for note in report.notes:
        ctx.hooks.on_message(note)
    summary = report.to_dict()
    md = ["# Interaction checks", "", "| check | value |", "|---|---|",
          *(f"| {k} | {v} |" for k, v in summary.items() if k != "notes"), "", *(f"- {n}" for n in report.notes)]
    if checked is not None and checked.checks:
        md += ["", checked.to_markdown().replace("# Data validation", "## Declared checks", 1)]
    for out in (ctx.out_dir, ctx.run_dir):
        write_json(out / "validation_report.json", {**(checked.to_dict() if checked is not None else {}),
                                                    "passed": True, "interactions": summary})
        (out / "validation_report.md").write_text("\n".join(md) + "\n")
    write_parquet(frame, ctx.out_dir / INTERACTIONS)
    write_json(ctx.out_dir / TASK, TaskInfo("ranking", notes=tuple(report.notes)).to_dict())
    ctx.metrics.update({"positives": float(report.positives), "users": float(report.users),
                        "items": float(report.items), "duplicate_pairs": float(report.duplicates)})


def _declared_checks(ctx: StepContext, raw: pd.DataFrame) -> Any:
    """The ``validation:`` checks that apply to interactions (:func:`~trainpipe.data._validation.
    validate_interactions`); a failure writes the report and raises DataValidationError (exit 3)."""
    from trainpipe._exceptions import DataValidationError
    from trainpipe.data._validation import validate_interactions

    checked = validate_interactions(raw, ctx.config)
    if not checked.checks:
        return None
    ctx.metrics.update({"checks": float(len(checked.checks)), "failed_checks": float(len(checked.failures))})
    if not checked.passed:
        for out in (ctx.out_dir, ctx.run_dir):  # run_dir: kept though the step fails and is not cached
            write_json(out / "validation_report.json", checked.to_dict())
            (out / "validation_report.md").write_text(checked.to_markdown())
        raise DataValidationError(checked.summary(), checked)
    return checked


def cutoffs_after_validate(loaded: LoadedConfig, out_dir: Path) -> None:
    """The cut-offs (evaluation, gate) against the catalogue the validate step counted: on every run, since
    those keys are not in validate's cache key (changing a gate threshold must not re-run the data steps)."""
    report = out_dir / "validation_report.json"
    if report.is_file():
        _check_cutoffs(loaded.config, int(read_json(report)["interactions"]["items"]))


def split(ctx: StepContext) -> None:
    from trainpipe.data._interactions import TIME_COLUMN, cold_shares
    from trainpipe.data._split_ranking import check_no_future_leak, split_interactions

    cfg = ctx.config
    frame = read_frame(ctx.artifact(INTERACTIONS))
    user, item = str(cfg.data.user), str(cfg.data.item)
    has_time = TIME_COLUMN in frame.columns
    train, val, test, kind, notes = split_interactions(frame, user, cfg.data.split,
                                                       time_column=TIME_COLUMN if has_time else None,
                                                       min_interactions=cfg.data.min_user_interactions)
    leaked = check_no_future_leak(frame, user, TIME_COLUMN, train, test) if has_time and kind != "per_user_random" \
        else 0
    if leaked:  # a bug, never the data: refuse rather than report optimistic metrics
        raise DataError(f"data.split: {leaked} test interactions are older than the same user's training ones")
    parts = {name: frame.iloc[idx].reset_index(drop=True) for name, idx in zip(SPLITS, (train, val, test),
                                                                               strict=True)}
    seen = frame.iloc[sorted([*train, *val])]
    cold_users, cold_items = cold_shares(seen, parts["test"], user, item)
    if cold_items > 0:
        notes.append(f"ranking split: {cold_items:.1%} of the test items never occur in training (cold items: only "
                     "their side features place them)")
    if cold_users > 0:
        notes.append(f"ranking split: {cold_users:.1%} of the test users never occur in training")
    for note in notes:
        ctx.hooks.on_message(note)
    sizes = {}
    for name, part in parts.items():
        write_parquet(part, ctx.out_dir / f"{name}.parquet")
        sizes[name] = len(part)
    info = {"method": kind, "seed": cfg.data.split.seed, "sizes": sizes,
            "test_users": int(parts["test"][user].nunique()), "cold_test_users_share": cold_users,
            "cold_test_items_share": cold_items,
            "test_interactions_before_train": leaked, "notes": notes}
    write_json(ctx.out_dir / "split.json", info)
    ctx.metrics.update({f"{k}_rows": float(v) for k, v in sizes.items()})
    ctx.metrics.update({"cold_test_items_share": cold_items, "cold_test_users_share": cold_users})


def preprocess(ctx: StepContext) -> None:
    from trainpipe.data._interactions import entity_table

    cfg = ctx.config
    frames = [read_frame(ctx.artifact(f"{name}.parquet")) for name in SPLITS]
    import pandas as pd

    everything = pd.concat(frames, ignore_index=True)
    user, item = str(cfg.data.user), str(cfg.data.item)
    write_parquet(entity_table(everything, user, list(cfg.features.user)), ctx.out_dir / USERS)
    write_parquet(entity_table(everything, item, list(cfg.features.item)), ctx.out_dir / ITEMS)
    write_json(ctx.out_dir / "features.json", {"user": user, "item": item, "user_features": list(cfg.features.user),
                                               "item_features": list(cfg.features.item),
                                               "input_dtypes": {user: str(everything[user].dtype)}})
    ctx.metrics.update({"n_users": float(everything[user].nunique()), "n_items": float(everything[item].nunique())})


def _data(ctx: StepContext, frame: pd.DataFrame, seen: pd.DataFrame | None = None) -> Any:
    from trainpipe.data._interactions import RankingData

    cfg = ctx.config
    user, item = str(cfg.data.user), str(cfg.data.item)
    return RankingData(interactions=frame[[user, item]].reset_index(drop=True), user=user, item=item,
                       users=read_frame(ctx.artifact(USERS)), items=read_frame(ctx.artifact(ITEMS)),
                       user_features=list(cfg.features.user), item_features=list(cfg.features.item),
                       seen=None if seen is None else seen[[user, item]])


def train(ctx: StepContext) -> None:
    from trainpipe.features import FeatureSpec
    from trainpipe.models import ModelSpec, configure_checkpoints, create_adapter, family_for
    from trainpipe.models._trained import SPEC_FILE
    from trainpipe.tasks import TaskInfo

    cfg = ctx.config
    task = TaskInfo.from_dict(read_json(ctx.artifact(TASK)))
    family = family_for(cfg.model.type)
    if "ranking" not in family.tasks:
        raise ConfigError(f"model.type: {cfg.model.type!r} does not learn a ranking task (it learns "
                          f"{', '.join(family.tasks)}); use model.type: two_tower")
    model_cfg, training_cfg = cfg.model, cfg.training
    if ctx.has_input("best_params.json"):
        tuned = read_json(ctx.artifact("best_params.json"))
        model_cfg = model_cfg.model_copy(update={"params": {**model_cfg.params, **tuned.get("model_params", {})}})
        training_cfg = training_cfg.model_validate({**training_cfg.model_dump(), **tuned.get("training", {})})
        ctx.hooks.on_message(f"training with the best parameters of the study (trial {tuned.get('best_trial')}, "
                             f"{tuned.get('metric')} = {tuned.get('best_value')})")
    train_frame = read_frame(ctx.artifact("train.parquet"))
    val_frame = read_frame(ctx.artifact("val.parquet"))
    adapter = create_adapter(task, model_cfg, training_cfg)
    checkpointing = ctx.state_dir is not None and configure_checkpoints(cfg.model.type, adapter,
                                                                        checkpoint_dir(ctx), ctx.resume)
    with deferred() if family.defer_signals else contextlib.nullcontext() as held:

        def on_round(i: int, total: int, metrics: Any) -> None:
            if held is not None:
                held.raise_pending()
            ctx.hooks.on_round("train", i, total, metrics)

        import numpy as np

        report = adapter.fit(_data(ctx, train_frame), np.empty(0),
                             _data(ctx, val_frame, seen=train_frame) if len(val_frame) else None, None, on_round)
    if checkpointing:
        from trainpipe.pipeline._rank import distributed_rank

        if distributed_rank() == 0:
            prune_checkpoint_sets(checkpoint_dir(ctx))
    for note in report.notes:
        ctx.hooks.on_message(note)
    feats = read_json(ctx.artifact("features.json"))
    user = feats["user"]
    dtype = str(feats["input_dtypes"].get(user, "object"))
    numeric = dtype.lower().startswith(("int", "uint"))
    spec = ModelSpec(model_type=cfg.model.type, family=family.name, task=task,
                     features=FeatureSpec(numeric=(user,) if numeric else (), categorical=() if numeric else (user,)),
                     feature_names=[user], input_dtypes={user: dtype}, best_iteration=report.best_iteration,
                     params=report.params)
    model_dir = ctx.out_dir / "model"
    adapter.save(model_dir)
    (model_dir / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, default=str))
    record_training(ctx, report, spec.to_dict()["params"])


def evaluate(ctx: StepContext) -> None:
    from trainpipe.evaluation._ranking_eval import evaluate_ranking
    from trainpipe.models import TrainedModel

    cfg = ctx.config
    model = TrainedModel.load(ctx.artifact("model"))
    frames = {name: read_frame(ctx.artifact(f"{name}.parquet")) for name in SPLITS}
    started = time.perf_counter()
    result = evaluate_ranking(model, frames["train"], frames["val"], frames["test"], cfg,
                              items=read_frame(ctx.artifact(ITEMS)))
    write_json(ctx.out_dir / "metrics.json", result)
    (ctx.out_dir / "ranking_table.md").write_text(result["table_markdown"])
    (ctx.run_dir / "ranking_table.md").write_text(result["table_markdown"])
    ctx.metrics.update({f"test_{k}": float(v) for k, v in result["metrics"].items() if v is not None})
    for base, values in result["baselines"].items():
        ctx.metrics.update({f"baseline_{base}_{k}": float(v) for k, v in values.items() if v is not None})
    ctx.metrics.update(result.get("latency", {}))
    ctx.metrics["evaluate_seconds"] = time.perf_counter() - started
    ctx.hooks.on_message("ranking (test users, full catalogue):\n" + result["table_markdown"].strip())


def tune(ctx: StepContext) -> None:
    """An Optuna study over the family's space (or tuning.space): each trial trains on the training split and is
    scored on the validation users (their held-out items ranked over the whole catalogue, training items
    excluded), pruned per epoch on the validation NDCG the engine reports; best_params.json for train."""
    from trainpipe.tasks import TaskInfo
    from trainpipe.tasks._ranking import relevant_sets
    from trainpipe.tuning import Fold, metrics_of, tune_folds

    cfg = ctx.config
    if cfg.tuning is None:
        raise ConfigError("tuning: trainpipe tune needs a tuning: section, and this pipeline has none. Add one, "
                          "e.g. tuning: {n_trials: 20, metric: ndcg@10}.")
    if cfg.tuning.selection in ("cv", "repeated_holdout") or cfg.tuning.cv_folds is not None:
        raise ConfigError(f"tuning.selection: a ranking study scores each trial on the validation users (their "
                          f"held-out interactions, data.split.val_size); {cfg.tuning.selection!r} and "
                          "tuning.cv_folds do not apply. Set tuning.selection: holdout (or auto) and remove cv_folds.")
    started = time.perf_counter()
    task = TaskInfo.from_dict(read_json(ctx.artifact(TASK)))
    train_frame, val_frame = read_frame(ctx.artifact("train.parquet")), read_frame(ctx.artifact("val.parquet"))
    if not len(val_frame):
        raise DataError("tuning: the validation split is empty, so trials have nothing to be scored on. Set "
                        "data.split.val_size > 0.")
    _, relevant = relevant_sets(val_frame, str(cfg.data.user), str(cfg.data.item))
    fold = Fold(_data(ctx, train_frame), relevant, _data(ctx, val_frame, seen=train_frame), relevant)
    from trainpipe.pipeline._steps_tuning import TrialProgress, study_fingerprint

    progress = TrialProgress(ctx, cfg.tuning.n_trials if cfg.tuning else 0)
    summary = tune_folds(cfg, task, [fold], ctx.out_dir, tracker=ctx.tracker, parent_run_id=ctx.run_id,
                         on_trial=progress, fingerprint=study_fingerprint(ctx), started=started)
    ctx.metrics.update(metrics_of(summary))
    ctx.params.update({"study_name": summary["study_name"], "tuning_metric": summary["metric"]})
    ctx.hooks.on_message(
        f"study {summary['study_name']}: {summary['n_trials']} trials ({summary['n_complete']} complete, "
        f"{summary['n_pruned']} pruned, {summary['n_failed']} failed); best {summary['metric']} = "
        f"{summary['best_value']:.6g} at trial {summary['best_trial']} (validation users, full catalogue)")


_INGEST = next(s for s in CORE_STEPS if s.name == "ingest")  # the tabular ingest step, as it is
_SK = ("pandas", "numpy")
_MODEL_LIBS = family_libraries()
_SPLIT_FILES = tuple(f"split.{name}.parquet" for name in SPLITS)
STEPS: tuple[Step, ...] = (
    _INGEST,
    Step("validate", validate, refs(f"ingest.{DATA}"),
         ("task", "data.user", "data.item", "data.label", "data.implicit_threshold", "data.timestamp",
          "data.min_user_interactions", "features.user", "features.item", "validation.min_rows",
          "validation.max_missing_fraction", "validation.max_duplicate_fraction", "validation.columns"),
         ("pandas", "pandera"),
         description="interaction checks (ids, label, timestamps, duplicates, validation: checks); the positives",
         run_files=("validation_report.json", "validation_report.md"),
         outputs=(TASK, INTERACTIONS, "validation_report.json", "validation_report.md"),
         after=cutoffs_after_validate),
    Step("split", split, refs(f"validate.{INTERACTIONS}", f"validate.{TASK}"),
         ("data.user", "data.item", "data.split", "data.min_user_interactions"), _SK,
         description="per-user split (temporal, leave-last-out or random); never leaks the future",
         outputs=(*(f"{name}.parquet" for name in SPLITS), "split.json")),
    Step("preprocess", preprocess, refs(*_SPLIT_FILES),
         ("data.user", "data.item", "features.user", "features.item"), _SK,
         description="the user and item tables (ids and side features)",
         outputs=(USERS, ITEMS, "features.json"), artifact_dir="features"),
    Step("train", train, refs("split.train.parquet", "split.val.parquet", f"preprocess.{USERS}",
                              f"preprocess.{ITEMS}", "preprocess.features.json", f"validate.{TASK}"),
         ("model", "training"), (*_SK, *_MODEL_LIBS), description="fit the ranking model",
         outputs=("model", "train.json"), wants_gpu=True, artifact_dir="train"),
    Step("evaluate", evaluate, refs("train.model", *_SPLIT_FILES, f"preprocess.{ITEMS}"),
         ("evaluation", "data.item", "features.item", "data.split.seed"),
         (*_SK, "scikit-learn", "implicit", *_MODEL_LIBS), external=_gate_metrics,
         description="full-catalogue metrics beside most-popular and ALS baselines; slices",
         outputs=("metrics.json", "ranking_table.md"), rank0_only=True, headline_metrics=True,
         artifact_dir="evaluation", slice_tables=(("metrics.json", "slices"),)),
)

TUNE_STEP = Step(
    "tune", tune, refs("split.train.parquet", "split.val.parquet", f"preprocess.{USERS}", f"preprocess.{ITEMS}",
                       f"validate.{TASK}"),
    ("tuning", "model", "training", "cost"), ("optuna", *_SK, *_MODEL_LIBS),
    external=_study_key, description="Optuna study: trials scored on the validation users, pruned per epoch on "
                                     "validation NDCG",
    outputs=("best_params.json", "study_summary.json"), wants_gpu=True, artifact_dir="tuning",
    single_process=TABULAR_TUNE.single_process)
