"""The steps of the pipeline: ingest -> validate -> split -> preprocess -> [tune] -> train -> evaluate
-> gate -> register."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import DataError, DataValidationError
from trainpipe._signals import deferred
from trainpipe.pipeline._artifacts import load_matrix, write_parquet
from trainpipe.pipeline._artifacts import read_json as _read_json
from trainpipe.pipeline._artifacts import save_matrix as _save_matrix
from trainpipe.pipeline._artifacts import write_json as _write_json
from trainpipe.pipeline._handoff import background_writes, read_frame
from trainpipe.pipeline._step import Step, StepContext, refs
from trainpipe.tracking._lineage import family_libraries

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from trainpipe.config import LoadedConfig

DATA = "data.parquet"
TEST_DATA = "test_data.parquet"  # data.test_source as read: the test split, used as is
TASK = "task.json"
SPLITS = ("train", "val", "test")


def _data_fingerprint(loaded: LoadedConfig) -> dict[str, str]:
    from trainpipe.data import fingerprint_source, resolve_source

    source = resolve_source(loaded.config.data.source, loaded.base_dir)
    out = {"data_fingerprint": fingerprint_source(source)}
    if loaded.config.data.test_source:
        out["test_data_fingerprint"] = fingerprint_source(resolve_source(loaded.config.data.test_source,
                                                                         loaded.base_dir))
    return out


def ingest(ctx: StepContext) -> None:
    from trainpipe.data import fingerprint_frame, fingerprint_source, read_source, resolve_source

    cfg = ctx.config.data
    source = resolve_source(cfg.source, ctx.loaded.base_dir)
    notes: list[str] = []
    df = read_source(source, encoding=cfg.encoding, na_values=cfg.na_values, notes=notes)
    for note in notes:
        ctx.hooks.on_message(note)
    # a packaged dataset's fingerprint is of its content as shipped, before data.na_values (as reproduce reads it)
    fingerprint = (fingerprint_source(source) if source.kind == "file"
                   else fingerprint_frame(read_source(source) if cfg.na_values else df))
    missing = [c for c in cfg.drop_columns if c not in df.columns]
    if missing:
        raise DataError(f"data.drop_columns: {missing} are not columns of {cfg.source}. "
                        f"Columns: {list(df.columns)[:30]}")
    df = df.drop(columns=list(cfg.drop_columns))
    write_parquet(df, ctx.out_dir / DATA)
    if cfg.test_source:
        test = read_source(resolve_source(cfg.test_source, ctx.loaded.base_dir), encoding=cfg.encoding,
                           na_values=cfg.na_values)
        write_parquet(test.drop(columns=[c for c in cfg.drop_columns if c in test.columns]), ctx.out_dir / TEST_DATA)
    info = {"source": cfg.source, "kind": source.kind, "location": source.location, "rows": len(df),
            "columns": list(map(str, df.columns)), "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
            "fingerprint": fingerprint}
    from trainpipe.config._secrets import scrub_strings

    # data.source may hold an interpolated ${VAR}: the secret values the config used never reach the file
    _write_json(ctx.out_dir / "ingest.json", scrub_strings(info, ctx.loaded.secret_values))
    ctx.metrics.update({"rows": float(len(df)), "columns": float(df.shape[1])})
    ctx.params["data_fingerprint"] = fingerprint


def validate(ctx: StepContext) -> None:
    from trainpipe.data import infer_task, validate_frame

    df = read_frame(ctx.artifact(DATA))
    cfg = ctx.config
    target = cfg.data.target
    given_test = read_frame(ctx.artifact(TEST_DATA)) if ctx.artifact(TEST_DATA).exists() else None
    report = validate_frame(df, cfg, test=given_test, hasher=_shared_row_hashes(ctx.artifact(DATA), df))
    for note in report.notes:
        ctx.hooks.on_message(note)
    for out in (ctx.out_dir, ctx.run_dir):  # run_dir: kept even when the step fails and is not cached
        _write_json(out / "validation_report.json", report.to_dict())
        (out / "validation_report.md").write_text(report.to_markdown())
    ctx.metrics.update({"checks": float(len(report.checks)), "failed_checks": float(len(report.failures))})
    if not report.passed:
        raise DataValidationError(report.summary(), report)
    try:
        task = infer_task(df[target], cfg.task, cfg.data.positive_label, target)
    except DataError as exc:
        raise DataValidationError(f"data validation failed: {exc}") from exc
    for note in task.notes:
        ctx.hooks.on_message(note)
    _write_json(ctx.out_dir / TASK, task.to_dict())


def split(ctx: StepContext) -> None:
    from trainpipe.data import TaskInfo, split_indices
    from trainpipe.data._leakage import (
        comparison_columns,
        cross_split_duplicates_at,
        drop_duplicate_rows,
        leakage_notes,
    )

    df = read_frame(ctx.artifact(DATA))
    task = TaskInfo.from_dict(_read_json(ctx.artifact(TASK)))
    cfg = ctx.config.data
    columns, dropped = comparison_columns(df, ctx.config), 0  # rows are compared on features + target
    if cfg.deduplicate:
        df, dropped, note = drop_duplicate_rows(df, columns)
        ctx.hooks.on_message(note)
    given_test = read_frame(ctx.artifact(TEST_DATA)) if ctx.artifact(TEST_DATA).exists() else None
    if given_test is None:
        train, val, test = split_indices(df, cfg.target, cfg.split, stratify=task.is_classification)
    else:  # data.test_source: only train/validation are cut from the source; the test set is used as is
        import numpy as np

        train, val = _split_without_test(df, cfg, task.is_classification)
        test = np.arange(len(df), len(df) + len(given_test))
        df = _concat_frames(df, given_test)
    # the table as ingested (neither deduplicated nor joined with data.test_source): validate hashed its rows
    as_read = not dropped and given_test is None
    leak = cross_split_duplicates_at(df, (train, val, test), columns,
                                     _shared_row_hashes(ctx.artifact(DATA), df) if as_read else None)
    for note in leakage_notes(leak, cfg.deduplicate):
        ctx.hooks.on_message(note)
    sizes = {}
    with background_writes() as write:  # one split is written while the next is taken out of the frame
        for name, idx in zip(SPLITS, (train, val, test), strict=True):
            write(write_parquet, df.iloc[idx].reset_index(drop=True), ctx.out_dir / f"{name}.parquet")
            sizes[name] = len(idx)
    _write_json(ctx.out_dir / "split.json", {"method": cfg.split.method, "seed": cfg.split.seed, "sizes": sizes,
                                              "deduplicated_rows": dropped, "rows_equal_to_train": leak})
    ctx.metrics.update({f"{k}_rows": float(v) for k, v in sizes.items()})
    ctx.metrics["test_rows_equal_to_train_share"] = float(leak["test"]["share"])


def _shared_row_hashes(path: Path, df: pd.DataFrame) -> Any:
    """``columns -> row_hashes(df, columns)`` for ``df``, the frame ``read_frame(path)`` gave: kept with the
    file for this process, so validate (duplicate rows) and split (rows shared across the split) hash the
    ingested table once (0.045 s CPU on flights' 327k rows)."""
    from trainpipe.data._leakage import row_hashes
    from trainpipe.pipeline._handoff import derived

    return lambda columns: derived(path, ("row_hashes", *columns), lambda: row_hashes(df, columns))


def _split_without_test(df: pd.DataFrame, cfg: Any, stratify: bool) -> tuple[Any, Any]:
    """Train and validation positions of ``df`` (``data.split.val_size`` of it to validation), no test."""
    import numpy as np

    from trainpipe.data import split_indices

    if cfg.split.val_size == 0:
        return np.arange(len(df)), np.arange(0)
    cut = cfg.split.model_copy(update={"test_size": cfg.split.val_size, "val_size": 0.0})
    train, _, val = split_indices(df, cfg.target, cut, stratify=stratify)
    return train, val


def _concat_frames(df: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """The source rows, then the given test rows (only the source's columns)."""
    import pandas as pd

    return pd.concat([df, test[[c for c in df.columns if c in test.columns]]], ignore_index=True)


def preprocess(ctx: StepContext) -> None:
    import numpy as np

    from trainpipe.data import TaskInfo
    from trainpipe.features import build_preprocessor, feature_names, infer_feature_spec, prepare_frame
    from trainpipe.models import _skops_io

    cfg = ctx.config
    task = TaskInfo.from_dict(_read_json(ctx.artifact(TASK)))
    frames = {name: read_frame(ctx.artifact(f"{name}.parquet")) for name in SPLITS}
    spec = infer_feature_spec(frames["train"], cfg)
    for col, why in spec.dropped.items():
        ctx.hooks.on_message(f"column {col!r} is not used as a feature: {why}")
    for col in target_proxies(frames["train"], cfg.data.target, spec.columns, task.is_classification):
        ctx.hooks.on_message(f"feature {col!r} determines the target {cfg.data.target!r} exactly on the training "
                             "split: if it is a copy of the target or recorded after the outcome, the model "
                             "learns nothing usable (leakage); drop it with data.drop_columns")
    encoding = categorical_encoding(ctx.loaded)
    pre = build_preprocessor(spec, cfg.features.model_copy(update={"categorical_encoding": encoding}),
                             raw_text=reads_raw_text(ctx.loaded))
    # The matrices (X_train: 140 MB for 230k rows x 77 features) are written on a worker thread, without the
    # GIL, while this thread transforms the validation split and saves the preprocessor; all files are
    # complete when the block ends.
    with background_writes() as write:
        try:
            matrices = {"train": pre.fit_transform(prepare_frame(frames["train"], spec))}
        except ValueError as exc:
            if "empty vocabulary" not in str(exc):
                raise
            raise DataError(
                f"features.text {list(spec.text)}: no words of two or more letters in the training split. "
                "Move such columns to features.categorical."
            ) from exc
        for name in ("train", "val"):
            frame = frames[name]
            if len(frame) == 0:
                continue
            X = matrices[name] if name in matrices else pre.transform(prepare_frame(frame, spec))
            write(_save_matrix, X, ctx.out_dir / f"X_{name}")
            write(np.save, ctx.out_dir / f"y_{name}.npy", task.encode(frame[cfg.data.target]))
        from trainpipe.features._text import compact_vocabularies

        compact_vocabularies(pre)  # plain ints in TF-IDF vocabularies: 4x faster to write
        _skops_io.dump(pre, ctx.out_dir / "preprocessor.skops")
        names = feature_names(pre)
        dtypes = {c: str(frames["train"][c].dtype) for c in spec.columns}
        # Ordinal-coded categorical columns (0..k-1, -1 = unknown): models with embeddings use them as such.
        cat_idx = [i for i, n in enumerate(names) if n.startswith("categorical__")] if encoding == "ordinal" else []
        _write_json(ctx.out_dir / "features.json", {"spec": spec.to_dict(), "feature_names": names,
                                                     "input_dtypes": dtypes, "categorical_encoding": encoding,
                                                     "categorical_indices": cat_idx})
    ctx.metrics["n_features"] = float(len(names))


def categorical_encoding(loaded: LoadedConfig) -> str:
    """``features.categorical_encoding`` when the user set it, else what the model family prefers
    (embedding models want ordinal codes; trees and linear models get one-hot)."""
    from trainpipe.models import family_for

    fc = loaded.config.features
    if "categorical_encoding" in fc.model_fields_set:
        return fc.categorical_encoding
    from trainpipe.tuning._multi import lead_type

    preferred = family_for(lead_type(loaded.config)).preferred_categorical_encoding
    return str(preferred or fc.categorical_encoding)


def reads_raw_text(loaded: LoadedConfig) -> bool:
    """Whether the model family reads text columns itself (``input_kind: text``): they pass through raw."""
    from trainpipe.models import family_for
    from trainpipe.tuning._multi import lead_type

    return family_for(lead_type(loaded.config)).input_kind == "text"


def _preprocess_key(loaded: LoadedConfig) -> dict[str, str]:
    return {"categorical_encoding": categorical_encoding(loaded), "raw_text": str(reads_raw_text(loaded))}


PROXY_SAMPLE_ROWS = 1_000  # target_proxies looks at an evenly spaced sample of this many rows first


def target_proxies(train: pd.DataFrame, target: str, columns: Iterable[str], classification: bool) -> list[str]:
    """Feature columns that are the target under another name: for a class target, a column whose values
    each go with one class and that has no more distinct values than there are classes (a relabelled copy);
    for a number, a column equal to it.

    Each condition can only fail more often on more rows (a missing value, a value seen with two classes, one
    more distinct value than the target has classes, one pair of unequal numbers), so a column that fails on an
    evenly spaced sample fails on the whole split: only the columns that pass on the sample are checked on
    every row, and the result is the same as checking every column on every row."""
    y = train[target]
    n_classes = y.nunique() if classification else 0
    step = len(train) // PROXY_SAMPLE_ROWS
    sample = train.iloc[::step] if step >= 2 else None
    return [col for col in columns
            if (sample is None or _is_proxy(sample[col], sample[target], classification, n_classes))
            and _is_proxy(train[col], y, classification, n_classes)]


def _is_proxy(x: pd.Series, y: pd.Series, classification: bool, n_classes: int) -> bool:
    """``target_proxies``' test of one column on these rows (``n_classes``: the target's on the whole split)."""
    import numpy as np
    import pandas as pd

    if x.isna().any() or len(x) < 10:
        return False
    if classification:
        return x.nunique() <= n_classes and bool((y.groupby(x.astype(str)).nunique() <= 1).all())
    return (pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
            and bool(np.allclose(x.to_numpy(dtype=float), y.to_numpy(dtype=float), equal_nan=False)))


def train(ctx: StepContext) -> None:
    import numpy as np

    from trainpipe.data import TaskInfo
    from trainpipe.features import FeatureSpec
    from trainpipe.models import ModelSpec, configure_checkpoints, create_adapter, family_for
    from trainpipe.models._trained import PREPROCESSOR_FILE, save_model_dir

    cfg = ctx.config
    task = TaskInfo.from_dict(_read_json(ctx.artifact(TASK)))
    X, y = load_matrix(ctx.artifact("X_train")), np.load(ctx.artifact("y_train.npy"))
    X_val = load_matrix(ctx.artifact("X_val"))
    y_val = np.load(ctx.artifact("y_val.npy")) if ctx.artifact("y_val.npy").exists() else None
    if task.is_classification:
        present = set(np.unique(y).tolist())
        absent = [task.classes[i] for i in range(len(task.classes)) if i not in present]
        if absent:
            raise DataError(
                f"classes {absent} of target {cfg.data.target!r} have no rows in the training split "
                f"(split method {cfg.data.split.method!r}), so the model cannot learn them. Use "
                "data.split.method: stratified, or remove those rare classes."
            )
    model_cfg, training_cfg = cfg.model, cfg.training
    refit: dict[str, Any] | None = None
    preprocessing: Any = None  # the preprocessor refitted with tuned TF-IDF settings (_steps_tuning)
    if ctx.has_input("best_params.json"):
        tuned = _read_json(ctx.artifact("best_params.json"))
        from trainpipe.pipeline._steps_tuning import tuned_preprocessing

        preprocessing = tuned_preprocessing(ctx, tuned)
        if preprocessing is not None:
            X, X_val = preprocessing.X, preprocessing.X_val
        if tuned.get("ensemble"):  # tuning.ensemble beat the single best trial: one model of several
            from trainpipe.pipeline._steps_tuning import train_ensemble

            train_ensemble(ctx, tuned, task, X, y, X_val, y_val, preprocessing)
            return
        if tuned.get("model_type", model_cfg.type) != model_cfg.type:  # a multi-family study chose this family
            from trainpipe.tuning._multi import family_config

            model_cfg = family_config(cfg, str(tuned["model_type"])).model
        model_cfg = model_cfg.model_copy(update={"params": {**model_cfg.params, **tuned.get("model_params", {})}})
        training_cfg = training_cfg.model_validate({**training_cfg.model_dump(), **tuned.get("training", {})})
        ctx.hooks.on_message(f"training with the best parameters of the study (trial {tuned.get('best_trial')}, "
                             f"{tuned.get('metric')} = {tuned.get('best_value')})")
        from trainpipe.pipeline._steps_tuning import refit_on_train_val

        model_cfg, X, y, X_val, y_val, refit = refit_on_train_val(ctx, tuned, model_cfg, X, y, X_val, y_val)
    family = family_for(model_cfg.type)
    feats = preprocessing.features if preprocessing is not None else _read_json(ctx.artifact("features.json"))
    adapter = create_adapter(task, model_cfg, training_cfg,
                             categorical_indices=list(feats.get("categorical_indices", [])))
    checkpointing = ctx.state_dir is not None and configure_checkpoints(model_cfg.type, adapter,
                                                                        checkpoint_dir(ctx), ctx.resume)
    if ctx.resume and not checkpointing:
        ctx.hooks.on_message(f"--resume: model.type {model_cfg.type} keeps no checkpoints (its family does not "
                             "write them); it trains from the start")

    # Some libraries (XGBoost, LightGBM) call back into Python through ctypes while they build their data
    # matrices: an exception raised there by a signal handler is dropped by ctypes and the C++ side carries on
    # broken (up to an abort). For such a family signals wait, and stop the training between two rounds instead.
    with deferred() if family.defer_signals else contextlib.nullcontext() as held:

        def on_round(i: int, total: int, metrics: Any) -> None:
            if held is not None:
                held.raise_pending()
            ctx.hooks.on_round("train", i, total, metrics)

        fit_started = time.perf_counter()
        report = adapter.fit(X, y, X_val, y_val, on_round)
    if refit is not None:
        from trainpipe.pipeline._steps_tuning import record_refit

        text_seconds = preprocessing.seconds if preprocessing is not None else 0.0
        if preprocessing is not None:
            refit = {**refit, "preprocessor_refit_seconds": text_seconds}
        record_refit(ctx, tuned, refit, time.perf_counter() - fit_started + text_seconds)
    if checkpointing:
        from trainpipe.pipeline._rank import distributed_rank

        if distributed_rank() == 0:  # the rank that writes checkpoints
            prune_checkpoint_sets(checkpoint_dir(ctx))
    for note in report.notes:
        ctx.hooks.on_message(note)
    spec = ModelSpec(model_type=model_cfg.type, family=family.name, task=task,
                     features=FeatureSpec.from_dict(feats["spec"]), feature_names=feats["feature_names"],
                     input_dtypes=feats["input_dtypes"], best_iteration=report.best_iteration,
                     params=report.params)
    save_model_dir(ctx.out_dir / "model", spec, adapter,
                   preprocessing.file if preprocessing is not None else ctx.artifact(PREPROCESSOR_FILE))
    if preprocessing is not None:
        preprocessing.file.unlink(missing_ok=True)
    record_training(ctx, report, spec.to_dict()["params"])


def record_training(ctx: StepContext, report: Any, params: Any) -> None:
    """What every train step keeps of its fit: ``train.json`` (rounds, params, per-round history, notes), the
    curves for the tracker, and the best iteration, round count and best value of each curve as metrics."""
    _write_json(ctx.out_dir / "train.json", {"best_iteration": report.best_iteration,
                                              "n_iterations": report.n_iterations, "params": params,
                                              "history": report.history, "notes": report.notes})
    ctx.curves.update(report.history)
    if report.best_iteration is not None:
        ctx.metrics["best_iteration"] = float(report.best_iteration)
    if report.n_iterations is not None:
        ctx.metrics["n_iterations"] = float(report.n_iterations)
    ctx.metrics.update(best_of_history(report.history))


def best_of_history(history: dict[str, list[float]]) -> dict[str, float]:
    """``{NAME_best: value}`` for each per-round curve: the best value in the metric's own direction (the
    maximum of ``val_accuracy`` or ``val_auc``, the minimum of ``val_loss`` or ``val_rmse``)."""
    from trainpipe.evaluation._metrics import best_value

    out: dict[str, float] = {}
    for name, values in history.items():
        best = best_value(name, values)
        if best is not None:
            out[f"{name}_best"] = best
    return out


def checkpoint_dir(ctx: StepContext) -> Path:
    """Where a step keeps checkpoints that outlive a killed process: keyed by the step's cache key, so a
    re-run with the same inputs finds them (``--resume``) and a changed config starts afresh."""
    assert ctx.state_dir is not None
    return ctx.state_dir / "checkpoints" / ctx.config.name / ctx.step / ctx.key[:16]


KEEP_CHECKPOINT_SETS = 3


def prune_checkpoint_sets(current: Path, keep: int = KEEP_CHECKPOINT_SETS) -> list[Path]:
    """After a training finished: keep its checkpoint folder and the ``keep - 1`` most recently written
    others of the same step (older configs one may still ``--resume``), delete the rest. Without this every
    config ever trained leaves its full training state behind for good."""
    siblings = [p for p in current.parent.iterdir() if p.is_dir() and p != current] if current.parent.is_dir() else []

    def written(p: Path) -> float:
        try:
            return max((f.stat().st_mtime for f in p.iterdir()), default=p.stat().st_mtime)
        except OSError:
            return 0.0

    doomed = sorted(siblings, key=written, reverse=True)[max(0, keep - 1):]
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


def _gate_metrics(loaded: LoadedConfig) -> dict[str, Any]:
    """The evaluation also computes the metrics the gate reads: their names (not the thresholds) key it."""
    from trainpipe.evaluation._metrics import gate_metric_names

    gate = loaded.config.gate
    return {"gate_metrics": gate_metric_names(gate.thresholds, gate.champion.metric)}


def _plot_worker(loaded: LoadedConfig) -> Any:
    """The evaluate step's ``prepare``: a process that draws its plots (see evaluation/_plot_worker.py)."""
    from trainpipe.evaluation._plot_worker import start_plot_worker

    return start_plot_worker(loaded)


def evaluate(ctx: StepContext) -> None:
    from trainpipe.evaluation import evaluate_model
    from trainpipe.evaluation._metrics import gate_metric_names
    from trainpipe.models import TrainedModel

    model = TrainedModel.load(ctx.artifact("model"))
    test = read_frame(ctx.artifact("test.parquet"))
    gate = ctx.config.gate
    result = evaluate_model(model, test, ctx.config.data.target, ctx.config.evaluation, ctx.out_dir,
                            also=gate_metric_names(gate.thresholds, gate.champion.metric), plot_worker=ctx.prepared)
    ctx.metrics.update(result.flat_metrics())
    undefined = [name for name, value in result.metrics.items() if value is None]
    if undefined:
        probabilistic = {"roc_auc", "pr_auc", "log_loss", "brier"}
        no_proba = model.task.is_classification and len(test) > 0 and model.predict_proba(test.head(2)) is None
        for name in undefined:
            why = ("the model gives no class probabilities (e.g. LinearSVC, RidgeClassifier; wrap it in "
                   "sklearn.calibration.CalibratedClassifierCV for them)" if no_proba and name in probabilistic
                   else "it is undefined on this test split (e.g. a class or a label value missing from it)")
            ctx.hooks.on_message(f"evaluate: test {name} was not computed: {why}")


def check_task_fit_after_validate(loaded: LoadedConfig, out_dir: Path) -> None:
    """Keys that fit only some tasks against the task validate inferred: run on its output every time (cached
    or not), because its cache entry does not depend on the model, gate or tuning sections."""
    if loaded.config.task != "auto" or not (out_dir / TASK).is_file():
        return
    from trainpipe.pipeline._preflight import check_task_fit

    check_task_fit(loaded.config, str(_read_json(out_dir / TASK)["task"]))


_SK = ("scikit-learn", "pandas", "numpy")
# the libraries of every installed model family (ModelFamily.libraries): their versions key train and evaluate
_MODEL_LIBS = family_libraries()
_SPLIT_FILES = tuple(f"split.{name}.parquet" for name in SPLITS)
MATRICES = ("X_train", "y_train.npy", "X_val", "y_val.npy")
CORE_STEPS: tuple[Step, ...] = (
    Step("ingest", ingest, {}, ("data.source", "data.drop_columns", "data.na_values", "data.encoding",
                                "data.test_source"),
         ("pandas", "pyarrow"),
         external=_data_fingerprint, description="read the source, drop columns, fingerprint",
         outputs=(DATA, "ingest.json", TEST_DATA)),
    Step("validate", validate, refs(f"ingest.{DATA}", f"ingest.{TEST_DATA}"),
         ("data.target", "data.positive_label", "task", "validation",
                                                        "features", "evaluation.slices", "data.split"),
         ("pandera", "pandas"),
         description="data checks with pandera; infer the task",
         run_files=("validation_report.json", "validation_report.md"),
         outputs=(TASK, "validation_report.json", "validation_report.md"), after=check_task_fit_after_validate),
    Step("split", split, refs(f"ingest.{DATA}", f"ingest.{TEST_DATA}", f"validate.{TASK}"),
         ("data.target", "data.split", "data.deduplicate", "features.numeric", "features.categorical",
          "features.text"), _SK,
         description="seeded train/validation/test split",
         outputs=(*(f"{name}.parquet" for name in SPLITS), "split.json")),
    Step("preprocess", preprocess, refs(*_SPLIT_FILES, f"validate.{TASK}"),
         ("data.target", "data.split", "features", "data.na_values"),
         (*_SK, "skops"), external=_preprocess_key, description="fit the ColumnTransformer on train",
         outputs=(*MATRICES, "preprocessor.skops", "features.json"), artifact_dir="features"),
    Step("train", train, refs(*(f"preprocess.{m}" for m in MATRICES), "preprocess.features.json",
                              "preprocess.preprocessor.skops", f"validate.{TASK}"),
         ("model", "training"),
         (*_SK, *_MODEL_LIBS, "skops"), description="fit the model",
         outputs=("model", "train.json", "refit.json"), wants_gpu=True, artifact_dir="train"),
    Step("evaluate", evaluate, refs("train.model", "split.test.parquet"), ("data.target", "evaluation"),
         (*_SK, "matplotlib", *_MODEL_LIBS), external=_gate_metrics,
         description="test metrics, slices, plots, latency", outputs=("metrics.json",),
         rank0_only=True, headline_metrics=True, artifact_dir="evaluation", slice_tables=(("metrics.json", "slices"),),
         prepare=_plot_worker),
)
