"""Issue 19 items 7 and 8: what `runs list` says about a run (its kind, a tune run's best), `validate` keeping
no run, one number format, and a project folder that was copied or moved."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.conftest import make_frame, write_pipeline
from trainpipe._format import format_number, format_value
from trainpipe.cli import app

runner = CliRunner()
LOGREG = "sklearn.linear_model.LogisticRegression"


def _render(renderable: object) -> str:
    console = Console(width=250, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


# -- one number format ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "shown"), [
    (0.8465499999999999, "0.84655"), (0.84655, "0.84655"), (0.123456789, "0.123457"), (3.0, "3"), (-0.0, "0"),
    (12, "12"), (250000.0, "250000"), (1234567.0, "1.23457e+06"), (1.5e-07, "1.5e-07"), (-2.5, "-2.5"),
    (float("nan"), "nan"), (float("inf"), "inf"), (0.1 + 0.2, "0.3"),
])
def test_format_number_gives_up_to_six_significant_digits(value: float, shown: str) -> None:
    assert format_number(value) == shown


def test_format_value_leaves_what_is_not_a_number_as_it_is() -> None:
    assert format_value(None) == "None" and format_value("tpe") == "tpe" and format_value(True) == "True"
    assert format_value(0.8465499999999999) == "0.84655"


def test_the_metrics_table_and_the_tuning_progress_use_the_one_format() -> None:
    from trainpipe._cli_render import RichHooks, metrics_table

    text = _render(metrics_table({"test_roc_auc": 0.8465499999999999, "test_rows": 114.0}))
    assert "0.84655 " in text and "0.8465499" not in text and "0.8465 " not in text
    assert " 114 " in text
    hooks = RichHooks(Console(width=200, record=True, color_system=None))
    hooks.on_round("tune", 1, 10, {"value": 0.8465499999999999})
    info = hooks.progress.tasks[0].fields["info"]
    assert info == "value=0.84655"


# -- validate keeps no run -----------------------------------------------------------------------------


def test_validate_leaves_no_run_directory_and_keeps_the_latest_report(workdir: Path) -> None:
    make_frame(200).to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, f"name: val\ndata: {{source: data.csv, target: label}}\nmodel: {{type: {LOGREG}}}\n")
    for _ in range(2):  # the second one from the step cache
        result = runner.invoke(app, ["validate", "pipeline.yaml"])
        assert result.exit_code == 0, result.output
        report = workdir / ".trainpipe" / "validation" / "val" / "validation_report.md"
        assert f"Report: {report}" in result.stdout.replace("\n", "")
        assert "data checks passed" in result.stdout and "checks)" in result.stdout
        assert report.is_file() and json.loads(report.with_suffix(".json").read_text())["passed"] is True
        assert not (workdir / ".trainpipe" / "runs").exists(), list((workdir / ".trainpipe" / "runs").iterdir())
    assert list((workdir / ".trainpipe" / "cache" / "validate").glob("*/_manifest.json"))  # the cache is kept


def test_failed_validate_names_its_kept_report_and_leaves_no_run(workdir: Path) -> None:
    df = make_frame(200)
    df.loc[:4, "x1"] = -100.0
    df.to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, f"name: oneclass\ndata: {{source: data.csv, target: label}}\n"
                            f"model: {{type: {LOGREG}}}\nvalidation: {{columns: {{x1: {{min: -10}}}}}}\n")
    result = runner.invoke(app, ["validate", "pipeline.yaml"])
    assert result.exit_code == 3, result.output
    kept = workdir / ".trainpipe" / "validation" / "oneclass" / "validation_report.json"
    assert kept.is_file() and json.loads(kept.read_text())["passed"] is False
    assert str(kept.with_suffix(".md")) in result.stderr.replace("\n", "")
    assert "Traceback" not in result.output
    runs = workdir / ".trainpipe" / "runs"
    assert not runs.exists() or not list(runs.iterdir())


def test_validate_leaves_other_runs_alone(workdir: Path) -> None:
    make_frame(200).to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, f"name: val\ndata: {{source: data.csv, target: label}}\nmodel: {{type: {LOGREG}}}\n")
    other = workdir / ".trainpipe" / "runs" / "someone-elses"
    other.mkdir(parents=True)
    (other / "owner.json").write_text(json.dumps({"pid": 1, "host": "x"}))
    assert runner.invoke(app, ["validate", "pipeline.yaml"]).exit_code == 0
    assert [p.name for p in (workdir / ".trainpipe" / "runs").iterdir()] == ["someone-elses"]


# -- runs list: the kind of each run, a tune run's best ------------------------------------------------


def test_run_kind_of_runs_recorded_before_the_command_tag() -> None:
    from trainpipe._runs import run_kind

    assert run_kind({"trainpipe.command": "tune"}, {}) == "tune"
    assert run_kind({"trainpipe.reproduces": "abc"}, {"step_train_seconds": 1.0}) == "reproduce"
    assert run_kind({}, {"step_tune_seconds": 1.0}) == "tune"
    assert run_kind({}, {"step_tune_seconds": 1.0, "step_train_seconds": 1.0}) == "run"
    assert run_kind({"trainpipe.command": "run", "trainpipe.synced_from": "offline-1"}, {}) == "run, synced"


PIPELINE = f"""\
name: rr
data: {{source: data.csv, target: label}}
model: {{type: {LOGREG}}}
evaluation: {{latency: false, plots: false}}
tuning: {{n_trials: 3, metric: roc_auc, space: {{C: {{type: float, low: 0.01, high: 10, log: true}}}}}}
registry: {{model_name: rr, promote: staging}}
"""


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def _rows(listing: str) -> dict[str, str]:
    """run id -> its row in `runs list`."""
    return {line.split()[1]: line for line in listing.splitlines() if line.startswith("│ ") and len(line.split()) > 2}


def _runs(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as con:
        return [(str(a), str(b)) for a, b in con.execute("SELECT run_uuid, artifact_uri FROM runs")]


@pytest.mark.slow
def test_runs_list_kinds_and_a_copied_then_deleted_project(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    make_frame(300).to_csv(a / "data.csv", index=False)
    write_pipeline(a, PIPELINE)
    ran = _cli(a, "run", "pipeline.yaml")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(sorted((a / ".trainpipe" / "runs").glob("*/run.json"))[0].read_text())["run_id"]
    tuned = _cli(a, "tune", "pipeline.yaml")
    assert tuned.returncode == 0, tuned.stderr
    best = json.loads(next((a / ".trainpipe" / "runs").glob("*/steps/tune/study_summary.json")).read_text())
    printed = next(line for line in tuned.stdout.splitlines() if "best_value:" in line)
    assert printed.split(":")[1].strip() == format_number(best["best_value"])
    again = _cli(a, "reproduce", run_id)
    assert again.returncode == 0, again.stdout + again.stderr

    listing = _cli(a, "runs", "list")
    assert listing.returncode == 0, listing.stderr
    rows = list(_rows(listing.stdout).values())
    kinds = sorted(row.split("│")[3].strip() for row in rows)
    assert kinds == ["reproduce", "run", "tune"], listing.stdout
    tune_row = next(row for row in rows if row.split("│")[3].strip() == "tune")
    assert f"best roc_auc={format_number(best['best_value'])}" in tune_row, listing.stdout
    run_row = next(row for row in rows if row.split("│")[3].strip() == "run")
    assert "roc_auc=" in run_row and "manual" in run_row

    # the project is copied: runs in the copy write their artifacts into the copy
    shutil.copytree(a, b, symlinks=True)
    before_a = sorted(p.name for p in (a / ".trainpipe" / "mlartifacts" / "rr").iterdir())
    in_b = _cli(b, "run", "pipeline.yaml", "--no-cache", "--set", "registry.model_name=rr2")  # no champion
    assert in_b.returncode == 0, in_b.stderr
    message = " ".join(in_b.stderr.split())
    assert f"now keep their artifacts in {b / '.trainpipe' / 'mlartifacts'}" in message, in_b.stderr
    assert f"copied or moved from {a}" in message
    assert sorted(p.name for p in (a / ".trainpipe" / "mlartifacts" / "rr").iterdir()) == before_a
    assert all(f"/{b.name}/.trainpipe/mlartifacts/" in uri for _, uri in _runs(b / ".trainpipe" / "mlflow.db")
               if "/.trainpipe/" in uri)
    new_b = json.loads(max((b / ".trainpipe" / "runs").glob("*/run.json"),
                           key=lambda p: p.stat().st_mtime).read_text())["run_id"]
    assert (b / ".trainpipe" / "mlartifacts" / "rr" / new_b / "artifacts").is_dir()
    assert _runs(a / ".trainpipe" / "mlflow.db")[0][1].startswith((a / ".trainpipe").as_uri())  # A untouched

    # the original is deleted: the copy's registered model still loads and predicts from raw columns
    shutil.rmtree(a)
    code = ("import mlflow, pandas as pd; uri = 'sqlite:///.trainpipe/mlflow.db'; mlflow.set_tracking_uri(uri); "
            "mlflow.set_registry_uri(uri); df = pd.read_csv('data.csv').drop(columns=['label']).head(5); "
            "print([len(mlflow.pyfunc.load_model(f'models:/{n}@staging').predict(df)) for n in ('rr', 'rr2')])")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=b, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}, check=False)
    assert loaded.returncode == 0 and loaded.stdout.strip().endswith("[5, 5]"), loaded.stderr[-2000:]
    shown = _cli(b, "runs", "list")
    assert shown.returncode == 0 and "note:" not in shown.stderr, shown.stderr  # relocated once, for good


@pytest.mark.slow
def test_a_moved_project_without_its_artifacts_is_exit_2_and_runs_relocate_fixes_it(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    make_frame(300).to_csv(a / "data.csv", index=False)
    write_pipeline(a, PIPELINE.replace("tuning:", "# tuning:"))
    assert _cli(a, "run", "pipeline.yaml").returncode == 0
    shutil.copytree(a, b, symlinks=True, ignore=shutil.ignore_patterns("mlartifacts"))
    shutil.rmtree(a)  # moved without the artifacts: they are gone
    refused = _cli(b, "run", "pipeline.yaml")
    message = " ".join(refused.stderr.split())
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr and message.count("error:") == 1
    assert f"keeps this project's artifacts in {a / '.trainpipe' / 'mlartifacts'}, another folder" in message
    assert f"{b / '.trainpipe' / 'mlartifacts'} lacks" in message and f"The old folder {a}" in message
    assert "trainpipe runs relocate --allow-missing" in message
    assert not (a / ".trainpipe").exists()  # nothing written to the old place
    assert _cli(b, "runs", "relocate").returncode == 2
    fixed = _cli(b, "runs", "relocate", "--allow-missing")
    assert fixed.returncode == 0, fixed.stderr
    assert "missing" in fixed.stdout and "now keep their artifacts in" in " ".join(fixed.stdout.split())
    assert _cli(b, "runs", "relocate").stdout.startswith("nothing to do")
    # rr's version 1 lost its files for good (--allow-missing): a new model name, with no champion to read
    ran = _cli(b, "run", "pipeline.yaml", "--no-cache", "--set", "registry.model_name=rr2")
    assert ran.returncode == 0, ran.stderr
    assert not (a / ".trainpipe").exists()
    new = json.loads(max((b / ".trainpipe" / "runs").glob("*/run.json"), key=lambda p: p.stat().st_mtime)
                     .read_text())["run_id"]
    assert (b / ".trainpipe" / "mlartifacts" / "rr" / new / "artifacts").is_dir()
