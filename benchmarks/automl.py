"""trainpipe's tuned model against FLAML at the same time budget, on the same rows (issue 17).

For each table (real data shipped in installed packages: 3 binary, 2 multiclass, 1 regression), one after
the other on the same machine:

1. *default*: trainpipe without ``tuning:`` (XGBoost), model seeds 0..S-1 on the split of seed 0: the test
   score of seed 0, and the seed band (max - min over the seeds);
2. *tuned*: ``model.type: auto`` (LightGBM, XGBoost, ExtraTrees in one study) with
   ``tuning: {timeout: BUDGET, n_trials: 100000}`` on the same split; the wall time of the whole pipeline
   run (ingest .. train) against the budget; the chosen family;
3. *FLAML*: ``AutoML.fit(time_budget=BUDGET, metric=..., seed=0, n_jobs=1)`` in its own virtual environment
   (``.venv-flaml``, ``make .venv-flaml``), given trainpipe's train + validation rows (the rows trainpipe's
   final model is fitted on) and scored on the same test rows; the wall time of the fit.

Test metrics: roc_auc (binary, higher is better), log_loss (multiclass) and rmse (regression), lower is
better. *±90 % paired*: half-width of the 90 % interval of tuned - default over a paired bootstrap of the test
rows (the noise band of that comparison). Both tools run with one thread (``OMP_NUM_THREADS=1``,
``n_jobs=1``): the machine is shared and has 2 cores.

Usage::

    make .venv-flaml
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/automl.py [--budgets 60,300] [--tables a,b] [--seeds 3]
        [--label TEXT] [--no-write]

The full run (6 tables x 2 budgets x (trainpipe + FLAML), plus the defaults) takes about 1 h 20 min (5 tables:
1 h 5 min). With ``--rows FILE`` every finished row is appended to FILE and a rerun skips the rows already there
(``--render-only`` renders them without running).
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
from tuning_quality import METRIC, TABLES, _paired_band, _rd, _run, _score, _test_predictions

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
FLAML_PYTHON = ROOT / ".venv-flaml" / "bin" / "python"
ALL_TABLES: dict[str, tuple[Any, str, str]] = {
    **TABLES, "penguins": (lambda: _rd("modeldata", "penguins"), "species", "multiclass"),
}


def _run_tuned(workdir: Path, target: str, budget: float) -> tuple[Path, float]:
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner, steps_for
    from trainpipe.registry import InMemoryRegistry

    text = (f"name: tuned\ndata: {{source: d.csv, target: {target}, split: {{seed: 0}}}}\n"
            f"model: {{type: auto}}\ntraining: {{seed: 0}}\n"
            f"tuning: {{n_trials: 100000, timeout: {budget}}}\n")
    (workdir / "pipeline.yaml").write_text(text)
    started = time.perf_counter()
    loaded = load_config(workdir / "pipeline.yaml")
    steps = steps_for(loaded.config)
    steps = steps[: [s.name for s in steps].index("train") + 1]
    out = PipelineRunner(loaded, workdir=workdir, steps=steps, registry=InMemoryRegistry()).run().run_dir / "steps"
    return out, time.perf_counter() - started


def _run_flaml(steps: Path, target: str, task: str, budget: float, tmp: Path
               ) -> tuple[float, float, str, tuple[str, Any, Any, Any]]:
    """(test score, fit wall seconds, best estimator, test predictions as ``_test_predictions`` gives them) of
    FLAML on trainpipe's train + validation rows."""
    import numpy as np
    import pandas as pd

    from trainpipe.data import TaskInfo
    from trainpipe.pipeline._handoff import read_frame

    if not FLAML_PYTHON.exists():
        raise SystemExit(f"{FLAML_PYTHON} is missing: run `make .venv-flaml` first (FLAML in its own venv).")
    split = steps / "split"
    train = pd.concat([read_frame(split / "train.parquet"), read_frame(split / "val.parquet")], ignore_index=True)
    test = read_frame(split / "test.parquet")
    train.to_parquet(tmp / "flaml_train.parquet")
    test.to_parquet(tmp / "flaml_test.parquet")
    out = tmp / "flaml_pred.parquet"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([str(FLAML_PYTHON), str(Path(__file__).with_name("_flaml_run.py")), str(tmp / "flaml_train.parquet"),
                    str(tmp / "flaml_test.parquet"), target, task, METRIC[task], str(budget), str(out)],
                   check=True, env=env, timeout=budget * 3 + 120)
    info = json.loads(Path(str(out) + ".json").read_text())
    pred = pd.read_parquet(out)
    tinfo = TaskInfo.from_dict(json.loads((steps / "validate" / "task.json").read_text()))
    y = tinfo.encode(test[target])
    if task == "regression":
        preds: tuple[str, Any, Any, Any] = (task, np.asarray(test[target], dtype=float), None,
                                            pred["prediction"].to_numpy())
    else:
        proba = np.column_stack([pred[f"proba_{c}"].to_numpy() for c in tinfo.classes])
        preds = (task, y, proba, proba.argmax(axis=1))
    return _score(*preds), float(info["fit_seconds"]), str(info["best_estimator"]), preds


def bench_table(name: str, budget: float, seeds: int) -> dict[str, Any]:
    loader, target, task = ALL_TABLES[name]
    frame = loader()
    row: dict[str, Any] = {"table": name, "task": task, "metric": METRIC[task], "rows": len(frame),
                           "budget": budget}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        defaults = []
        for seed in range(seeds):
            wd = tmp / f"default{seed}"
            wd.mkdir()
            frame.to_csv(wd / "d.csv", index=False)
            done = _run(wd, f"d{seed}", target, seed, "")
            pred = _test_predictions(done, target)
            defaults.append(_score(*pred))
            if seed == 0:
                default_pred, default_steps = pred, done
        wd = tmp / "tuned"
        wd.mkdir()
        frame.to_csv(wd / "d.csv", index=False)
        steps, wall = _run_tuned(wd, target, budget)
        tuned_pred = _test_predictions(steps, target)
        summary = json.loads((steps / "tune" / "study_summary.json").read_text())
        refit = json.loads((steps / "train" / "refit.json").read_text())
        row.update({"default": defaults[0], "seed_band": max(defaults) - min(defaults), "tuned": _score(*tuned_pred),
                    "paired_band": _paired_band(default_pred, tuned_pred), "tuned_wall": wall,
                    "study_refit": refit["study_and_refit_seconds"],
                    "trials": summary["n_trials"], "chosen": summary.get("model_type"),
                    "families": {f: s["trials"] for f, s in (summary.get("families") or {}).items()}})
        ensemble = summary.get("ensemble") or {}
        if ensemble.get("used"):  # model.type auto's default ensemble beat the single best trial out of fold
            row["chosen"] = f"ensemble of {len(ensemble['members'])} (best single: {row['chosen']})"
        row["flaml"], row["flaml_wall"], row["flaml_best"], flaml_pred = _run_flaml(default_steps, target, task,
                                                                                   budget, tmp)
        row["flaml_band"] = _paired_band(flaml_pred, tuned_pred)
    return row


def _fmt(v: Any, nd: int = 4) -> str:
    return "" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def _better(task: str, a: float, b: float, band: float = 0.0) -> bool:
    """Whether score ``a`` is at least ``b`` (``band``: allowing ``a`` to trail by that much)."""
    return a >= b - band if task == "binary" else a <= b + band


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _counts(rows: list[dict[str, Any]]) -> list[str]:
    """Per budget: how many tables meet each target, strictly and within the paired noise band."""
    out = []
    for budget in sorted({r["budget"] for r in rows}):
        mine = [r for r in rows if r["budget"] == budget]
        n = len(mine)
        d = sum(_better(r["task"], r["tuned"], r["default"]) for r in mine)
        dn = sum(_better(r["task"], r["tuned"], r["default"], r["paired_band"]) for r in mine)
        f = sum(_better(r["task"], r["tuned"], r["flaml"]) for r in mine)
        fn = sum(_better(r["task"], r["tuned"], r["flaml"], r.get("flaml_band", 0.0)) for r in mine)
        w = sum(r["tuned_wall"] <= 1.1 * r["budget"] for r in mine)
        out.append(f"- **{budget:g} s:** tuned >= default on {d} of {n} ({dn} of {n} within the ±90 % paired band); "
                   f"tuned >= FLAML on {f} of {n} ({fn} of {n} within the band); trainpipe wall <= budget + 10 % on "
                   f"{w} of {n}.")
    return out


def render(rows: list[dict[str, Any]], seeds: int, wall: float | None, label: str, load_before: str) -> str:
    """``wall`` None: the rows were run earlier (``--render-only``), and the label says when and how loaded."""
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = ["## AutoML comparison (automl.py)", ""]
    if label:
        lines += [f"**{label}**", ""]
    when = (f"`uptime` before: {load_before}; after: {load}. Wall {wall:.0f} s." if wall is not None else
            "rendered from the rows file of earlier runs (--render-only): their times and loads are in the label.")
    lines += [
        f"`benchmarks/automl.py`, {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}, {platform.machine()} "
        f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {when}", "",
        "Same split (seed 0) for every column. *default*: trainpipe, no tuning (XGBoost, model seed 0); *seed "
        f"band*: max - min of the default's test score over {seeds} model seeds; *tuned*: `model.type: auto` + "
        "`tuning.timeout: BUDGET` (no other setting: auto's default ensemble included); *±90 % paired*: half-width "
        "of the 90 % interval of tuned - default over a paired bootstrap of the test rows; *FLAML*: "
        "`AutoML.fit(time_budget=BUDGET)` on the same train + validation rows, same test rows; *±90 % vs FLAML*: the "
        "same band for tuned - FLAML; *within band*: tuned trails by no more than the band. Wall: trainpipe's whole "
        "run (ingest .. train) and FLAML's fit, against the budget; *tune+refit*: trainpipe's own accounting of "
        "what `tuning.timeout` covers (the tune step from its start, and the final refit; `refit.json`). roc_auc: "
        "higher is better; log_loss, rmse: lower.",
        "",
        *_counts(rows),
        "",
        "| table | task | metric | budget s | default | seed band | tuned | ±90 % paired | FLAML | ±90 % vs FLAML | "
        "tuned >= default (within band) | tuned >= FLAML (within band) | trainpipe wall s (/budget) | tune+refit s | "
        "FLAML wall s (/budget) | trials | chosen | FLAML best |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["task"]
        band_f, band_d = r.get("flaml_band", 0.0), r["paired_band"]
        lines.append(
            f"| {r['table']} | {t} | {r['metric']} | {r['budget']:g} | {_fmt(r['default'])} | {_fmt(r['seed_band'])} | "
            f"{_fmt(r['tuned'])} | {_fmt(r['paired_band'])} | {_fmt(r['flaml'])} | {_fmt(band_f)} | "
            f"{_yes(_better(t, r['tuned'], r['default']))} ({_yes(_better(t, r['tuned'], r['default'], band_d))}) | "
            f"{_yes(_better(t, r['tuned'], r['flaml']))} ({_yes(_better(t, r['tuned'], r['flaml'], band_f))}) | "
            f"{r['tuned_wall']:.1f} ({r['tuned_wall'] / r['budget']:.2f}) | {r['study_refit']:.1f} | "
            f"{r['flaml_wall']:.1f} ({r['flaml_wall'] / r['budget']:.2f}) | {r['trials']} | {r['chosen']} | "
            f"{r['flaml_best']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="60,300")
    ap.add_argument("--budget", type=float, help="one budget (overrides --budgets)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tables", default=",".join(ALL_TABLES))
    ap.add_argument("--label", default="", help="a line printed above the table (e.g. 'partial run, busy machine')")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--rows", type=Path, help="a JSON-lines file: each finished row is appended to it, and rows "
                    "already in it (same table and budget) are not run again (resume after an interruption)")
    ap.add_argument("--render-only", action="store_true", help="render the rows of --rows without running anything")
    args = ap.parse_args()
    budgets = [args.budget] if args.budget else [float(b) for b in args.budgets.split(",")]
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    started = time.perf_counter()
    done: list[dict[str, Any]] = []
    if args.rows is not None and args.rows.exists():
        done = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
    rows = []
    for budget in budgets:
        for name in args.tables.split(","):
            kept = [r for r in done if r["table"] == name and float(r["budget"]) == budget]
            if kept or args.render_only:
                rows.extend(kept[-1:])
                continue
            rows.append(bench_table(name, budget, args.seeds))
            print(json.dumps(rows[-1], default=str), file=sys.stderr, flush=True)
            if args.rows is not None:
                with args.rows.open("a") as fh:
                    fh.write(json.dumps(rows[-1], default=str) + "\n")
    text = render(rows, args.seeds, None if args.render_only else time.perf_counter() - started, args.label,
                  load_before)
    print(text)
    if not args.no_write:
        replace_section("## AutoML comparison (automl.py)", text)


if __name__ == "__main__":
    main()
