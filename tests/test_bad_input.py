"""Hostile inputs through the real CLI: each must end with the documented exit code and one clear message.

Every test runs ``python -m trainpipe.cli`` in a subprocess inside an empty temporary directory and checks
the contract of DESIGN.md:

- exit code 2 for bad config or bad input, 3 for failed data validation;
- stderr holds exactly one ``error:`` message that names the file, key or column at fault, and that
  text is printed once (not repeated, with a Python class name, in the step progress lines);
- no ``Traceback`` anywhere (tracebacks are for ``--debug`` only);
- nothing partial is left as if complete: no ``.tmp-*`` folder under ``.trainpipe/cache``, no sealed cache
  entry and no run-directory artifacts for the failing step, and every run directory that was created has
  a ``run.json`` whose status is ``failed``. Config errors are caught before any run directory exists.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import make_frame, write_pipeline

LOGREG = "sklearn.linear_model.LogisticRegression"
MINIMAL = f"""\
name: t
data: {{source: data.csv, target: label}}
model: {{type: {LOGREG}}}
"""


# -- helpers ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    @property
    def message(self) -> str:
        """stderr with whitespace collapsed, so a message wrapped by the console still matches."""
        return " ".join(self.stderr.split())


def run_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Outcome:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MLFLOW_TRACKING_URI", "TRAINPIPE_PROFILE") and not k.startswith("TP_TEST_")}
    # A wide console keeps each message on one line; no colour codes in the captured text.
    environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"})
    # No plot worker process: these runs fail before evaluate (or, once, draw in-process), and a worker started
    # with the run is waited for while it still imports matplotlib (~2 s a case). tests/test_plot_worker.py
    # covers the worker, a run that uses it and its fallback.
    environ.setdefault("TRAINPIPE_PLOT_WORKER", "0")
    environ.update(env or {})
    if os.environ.get("TP_BAD_INPUT_SUBPROCESS") != "1":
        return _run_in_process(cwd, args, environ)
    proc = subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300, check=False)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, cwd)


def _run_in_process(cwd: Path, args: tuple[str, ...], environ: dict[str, str]) -> Outcome:
    """The same command through typer's test runner in this process: no interpreter start and library imports
    per case (what made this file take minutes). ``TP_BAD_INPUT_SUBPROCESS=1`` runs each case in a real
    ``python -m trainpipe.cli`` subprocess instead, as a user would; tests/test_startup.py and the slow
    end-to-end tests cover the console script itself."""
    from typer.testing import CliRunner

    from trainpipe import cli

    unset = {k: None for k in os.environ if k not in environ}
    previous = os.getcwd()
    widths = (cli.out.width, cli.err.width)
    cli.out.width = cli.err.width = int(environ["COLUMNS"])  # the consoles took their width at import
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli.app, list(args), env={**environ, **unset}, catch_exceptions=False)
    finally:
        os.chdir(previous)
        cli.out.width, cli.err.width = widths
    return Outcome(result.exit_code, result.stdout, result.stderr, cwd)


def _report(out: Outcome) -> str:
    return f"exit code {out.returncode}\n--- stderr ---\n{out.stderr}\n--- stdout ---\n{out.stdout}"


def assert_clean_failure(out: Outcome, code: int, *patterns: str, failing_step: str | None = None,
                         config_error: bool = False, report_column: str | None = None) -> None:
    """The contract every hostile input must meet; ``patterns`` are searched in stderr (case-insensitive).

    ``failing_step``: the step that must have left nothing sealed; ``config_error``: no run directory may
    exist; ``report_column``: exit 3 must leave a failed validation report naming that column.
    """
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, _report(out)
    assert out.returncode == code, _report(out)
    assert "unexpected error" not in out.stderr, _report(out)
    errors = re.findall(r"^error:", out.stderr, re.MULTILINE)
    assert len(errors) == 1, f"expected exactly one 'error:' message\n{_report(out)}"
    for pattern in patterns:
        assert re.search(pattern, out.message, re.IGNORECASE | re.DOTALL), (
            f"stderr does not match {pattern!r}\n{_report(out)}")

    state = out.cwd / ".trainpipe"
    cache = state / "cache"
    leftovers = sorted(str(p.relative_to(cache)) for p in cache.rglob(".tmp-*")) if cache.is_dir() else []
    assert not leftovers, f"temporary cache folders left behind: {leftovers}"
    if failing_step is not None and (cache / failing_step).is_dir():
        sealed = sorted(p.parent.name for p in (cache / failing_step).glob("*/_manifest.json"))
        assert not sealed, f"a sealed cache entry exists for the failing step {failing_step!r}: {sealed}"

    runs = sorted(p for p in (state / "runs").glob("*") if p.is_dir()) if (state / "runs").is_dir() else []
    if config_error:
        assert not runs, f"a config error must be caught before a run directory is made: {runs}"
    for run_dir in runs:
        run_file = run_dir / "run.json"
        assert run_file.is_file(), f"{run_dir} has no run.json"
        record = json.loads(run_file.read_text())
        assert record["status"] == "failed", f"{run_file}: status {record['status']!r}, expected 'failed'"
        assert record.get("error"), f"{run_file}: a failed run should record its error"
        if failing_step is not None:
            partial = run_dir / "steps" / failing_step
            assert not partial.exists() or not any(partial.iterdir()), (
                f"{partial} holds artifacts of the failing step: {sorted(os.listdir(partial))}")
            statuses = {s["name"]: s["status"] for s in record.get("steps", [])}
            assert statuses.get(failing_step) in (None, "failed"), (
                f"{run_file}: step {failing_step!r} recorded as {statuses.get(failing_step)!r}")
        assert not list(run_dir.rglob("*.tmp")), f"temporary files left in {run_dir}"
    if report_column is not None:
        assert_validation_report(out, report_column)

    # Last, so that a failure here means every other part of the contract held: the message is said once
    # (the step progress line must not repeat it, prefixed with the exception's class name).
    match = re.search(r"^error:(.*)$", out.stderr, re.MULTILINE)
    head = " ".join(match.group(1).split()) if match else ""
    assert head, f"the error line is empty\n{_report(out)}"
    assert out.message.count(head) == 1, f"the error message is printed more than once\n{_report(out)}"


def assert_validation_report(out: Outcome, column: str) -> None:
    """Exit 3 means the report was written: the run's validation_report.json fails and names the column
    (``trainpipe validate`` keeps no run: its report is in .trainpipe/validation/NAME/)."""
    runs = [*(out.cwd / ".trainpipe" / "runs").glob("*/validation_report.json"),
            *(out.cwd / ".trainpipe" / "validation").glob("*/validation_report.json")]
    assert len(runs) == 1, f"expected one validation report, found {runs}"
    report = json.loads(runs[0].read_text())
    assert report["passed"] is False
    assert any(c["column"] == column and not c["passed"] for c in report["checks"]), report


def write_csv(directory: Path, df: pd.DataFrame, name: str = "data.csv") -> Path:
    path = directory / name
    df.to_csv(path, index=False)
    return path


def frame(n: int = 150) -> pd.DataFrame:
    return make_frame(n, seed=3)


# -- the data file ------------------------------------------------------------------------------------


def test_missing_data_file(tmp_path: Path) -> None:
    write_pipeline(tmp_path, MINIMAL.replace("data.csv", "nowhere/missing.csv"))
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"data\.source", r"missing\.csv", r"does not exist|not found",
                         failing_step="ingest")


def test_csv_truncated_inside_a_quoted_field(tmp_path: Path) -> None:
    text = frame().to_csv(index=False, quoting=csv.QUOTE_ALL)
    lines = text.splitlines(keepends=True)
    cut = lines[80]
    # stop right after the opening quote of the third field and two characters of it
    pos = [m.start() for m in re.finditer('"', cut)][4] + 3
    (tmp_path / "data.csv").write_text("".join(lines[:80]) + cut[:pos])
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"data\.csv", r"cannot be read|truncated|malformed|EOF",
                         failing_step="ingest")


def test_binary_garbage_with_csv_suffix(tmp_path: Path) -> None:
    garbage = b"\x89PNG\r\n\x1a\n\x00\x00" + random.Random(0).randbytes(4096)
    (tmp_path / "data.csv").write_bytes(garbage)
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"data\.csv", r"cannot be read as CSV|not a CSV|not in that format",
                         failing_step="ingest")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_bytes(b"")
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"data\.csv", r"empty", failing_step="ingest")


def test_header_only_csv(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text(",".join(frame().columns) + "\n")
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"data\.csv", r"empty|no rows|0 rows", failing_step="ingest")


def test_corrupt_parquet(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    frame().to_parquet(good, index=False)
    blob = good.read_bytes()
    (tmp_path / "data.parquet").write_bytes(blob[: len(blob) // 2])  # footer and magic bytes gone
    write_pipeline(tmp_path, MINIMAL.replace("data.csv", "data.parquet"))
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"data\.parquet", r"cannot be read as Parquet|corrupt|not a parquet",
                         failing_step="ingest")


# -- the target column --------------------------------------------------------------------------------


def test_missing_target_column_with_close_name(tmp_path: Path) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL.replace("target: label", "target: lable"))
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"data\.target: 'lable' is not a column", r"did you mean 'label'",
                         failing_step="validate")


def test_missing_target_column_far_from_any_name(tmp_path: Path) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL.replace("target: label", "target: churned"))
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"'churned' is not a column", r"columns are: x1, x2", failing_step="validate")
    assert "did you mean" not in out.message.lower()


def test_target_with_missing_values(tmp_path: Path) -> None:
    df = frame()
    df.loc[[3, 17, 40], "label"] = None
    write_csv(tmp_path, df)
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 3, r"\blabel\b", r"3 missing|missing labels|not.?null", failing_step="validate",
                         report_column="label")


def test_target_with_a_single_class(tmp_path: Path) -> None:
    df = frame()
    df["label"] = "yes"
    write_csv(tmp_path, df)
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 3, r"\blabel\b", r"single class|1 class(es)?\b", failing_step="validate",
                         report_column="label")


# -- wrong dtypes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "dtype"), [("count", "int"), ("x1", "float")])
def test_declared_dtype_column_holding_strings(tmp_path: Path, column: str, dtype: str) -> None:
    df = frame()
    df[column] = df[column].astype(object)
    df.loc[[5, 9], column] = ["many", "few"]
    write_csv(tmp_path, df)
    write_pipeline(tmp_path, MINIMAL + f"validation:\n  columns:\n    {column}: {{dtype: {dtype}}}\n")
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    # The message must lead to the two bad cells: their count and values, not every row of the column.
    assert_clean_failure(out, 3, rf"\b{column}\b", rf"\b{dtype}\b", r"\b2 (failing )?rows\b", r"'(many|few)'",
                         failing_step="validate", report_column=column)


def test_features_numeric_column_holding_strings(tmp_path: Path) -> None:
    # A column declared in features.numeric that holds text is data that does not match the config: it
    # is a data check (like a declared feature column that is missing, which validate already reports),
    # so it should fail in validate with exit 3, before split/preprocess do any work.
    df = frame()
    df["x1"] = df["x1"].astype(object)
    df.loc[[2, 11], "x1"] = ["low", "high"]
    write_csv(tmp_path, df)
    write_pipeline(tmp_path, MINIMAL + "features: {numeric: [x1, x2], categorical: [colour]}\n")
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 3, r"\bx1\b", r"numeric", r"'(low|high)'", failing_step="validate",
                         report_column="x1")
    for later in ("split", "preprocess", "train"):
        assert not list((tmp_path / ".trainpipe" / "cache" / later).glob("*/_manifest.json")), later


# -- the model ----------------------------------------------------------------------------------------


def test_unknown_model_type_with_typo_hint(tmp_path: Path) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL.replace(LOGREG, "xgbost"))
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"model\.type", r"'xgbost'", r"did you mean 'xgboost'", config_error=True)


@pytest.mark.parametrize(
    ("model", "params", "patterns"),
    [
        pytest.param("xgboost", "{n_estimators: 5, max_dept: 3}",
                     (r"model\.params\.max_dept", r"unknown", r"did you mean 'max_depth'"),
                     id="xgboost-typo"),
        pytest.param(LOGREG, "{Cc: 1.0}", (r"model\.params\.Cc", r"unknown", r"did you mean 'C'"),
                     id="sklearn-typo"),
    ],
)
def test_model_params_unknown_name(tmp_path: Path, model: str, params: str,
                                   patterns: tuple[str, ...]) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL.replace(f"{{type: {LOGREG}}}", f"{{type: {model}, params: {params}}}"))
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, *patterns, config_error=True)


@pytest.mark.parametrize(
    ("model", "params", "patterns"),
    [
        pytest.param("xgboost", "{n_estimators: 5, max_depth: six}",
                     (r"model\.params\.max_depth", r"integer", r"'six'"), id="xgboost-max_depth-six"),
        pytest.param(LOGREG, "{C: high}", (r"model\.params", r"\bC\b", r"float", r"'high'"),
                     id="sklearn-C-high"),
    ],
)
def test_model_params_wrong_value_type(tmp_path: Path, model: str, params: str,
                                       patterns: tuple[str, ...]) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL.replace(f"{{type: {LOGREG}}}", f"{{type: {model}, params: {params}}}"))
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, *patterns, config_error=True)


# -- metrics, gate thresholds and the model against the task ------------------------------------------
# A config whose metrics, gate or model cannot work for the task is a config error (exit 2) caught before
# any data is read when the config says so, and right after the task is inferred otherwise: never after
# training, and never as a gate refusal (exit 4).

RIDGE = "sklearn.linear_model.Ridge"


@pytest.mark.parametrize(
    ("extra", "patterns"),
    [
        pytest.param("task: multiclass\nevaluation: {metrics: [rmse, r2]}\n",
                     (r"evaluation\.metrics", r"'rmse' and 'r2' do not fit a multiclass task",
                      r"use multiclass metrics"), id="metrics-explicit-task"),
        pytest.param('gate: {thresholds: {rmse: "<= 0.001", recall: ">= 0.999"}}\n',
                     (r"gate\.thresholds\.recall", r"gate\.thresholds\.rmse", r"no task fits both"),
                     id="gate-rmse-and-recall"),
        pytest.param("evaluation: {metrics: [accuracy]}\ngate: {thresholds: {mae: \"<= 3\"}}\n",
                     (r"gate\.thresholds\.mae: 'mae' needs a regression task, but", r"no task fits both"),
                     id="gate-vs-metrics"),
        pytest.param(f"model: {{type: {RIDGE}}}\nevaluation: {{metrics: [accuracy]}}\n",
                     (r"evaluation\.metrics: 'accuracy' needs a binary or multiclass task",
                      r"model\.type: sklearn\.linear_model\.Ridge \(a regressor\)"), id="regressor-vs-metric"),
        pytest.param("evaluation: {latency: false}\ngate: {thresholds: {latency_p95_ms: \"<= 20\"}}\n",
                     (r"gate\.thresholds\.latency_p95_ms", r"evaluation\.latency is false"), id="latency-off"),
    ],
)
@pytest.mark.parametrize("command", ["run", "validate"])
def test_metrics_that_cannot_be_computed_are_a_config_error(tmp_path: Path, extra: str,
                                                            patterns: tuple[str, ...], command: str) -> None:
    write_csv(tmp_path, frame())
    text = MINIMAL.replace(f"model: {{type: {LOGREG}}}\n", "") if extra.startswith("model:") else MINIMAL
    write_pipeline(tmp_path, text + extra)
    out = run_cli(tmp_path, command, "pipeline.yaml")
    assert_clean_failure(out, 2, *patterns, config_error=True)


XGB = "{type: xgboost, params: {n_estimators: 5}}"
DATA = "{source: data.csv, target: label}"


@pytest.mark.parametrize(
    ("model", "data", "extra", "label", "patterns"),
    [
        pytest.param(XGB, DATA, "evaluation: {metrics: [rmse, r2]}\n", "multiclass",
                     (r"evaluation\.metrics", r"do not fit a multiclass task \(inferred from target 'label'\)"),
                     id="metrics"),
        pytest.param(XGB, DATA, 'gate: {thresholds: {r2: ">= 0.5"}}\n', "binary",
                     (r"gate\.thresholds\.r2", r"does not fit a binary task \(inferred"), id="gate",
                     marks=pytest.mark.slow),  # the same check as "metrics" (~3 s each: make test-fast < 2 min)
        pytest.param(f"{{type: {RIDGE}}}", DATA, "", "multiclass",
                     (r"model\.type", r"Ridge \(a regressor\) does not fit a multiclass task", r"pick a classifier"),
                     id="regressor", marks=pytest.mark.slow),
        pytest.param(XGB, "{source: data.csv, target: label, positive_label: mid}", "", "multiclass",
                     (r"data\.positive_label", r"'mid' does not fit a multiclass task"), id="positive-label",
                     marks=pytest.mark.slow),
    ],
)
def test_config_that_does_not_fit_the_inferred_task_fails_in_validate(
        tmp_path: Path, model: str, data: str, extra: str, label: str, patterns: tuple[str, ...]) -> None:
    write_csv(tmp_path, make_frame(150, seed=3, task=label))
    write_pipeline(tmp_path, f"name: t\ndata: {data}\nmodel: {model}\n{extra}")
    out = run_cli(tmp_path, "validate", "pipeline.yaml")
    # the data checks passed and their entry is kept: the mistake is in the model/gate/tuning sections
    assert_clean_failure(out, 2, *patterns)
    assert "config OK" not in out.stdout
    # the same mistake after a good run, with the validate step cached: still caught before training
    write_pipeline(tmp_path, f"name: t\ndata: {DATA}\nmodel: {XGB}\n", "good.yaml")
    assert run_cli(tmp_path, "validate", "good.yaml").returncode == 0
    again = run_cli(tmp_path, "run", "pipeline.yaml")
    assert again.returncode == 2 and "Traceback" not in again.stderr, _report(again)
    assert all(re.search(p, again.stderr, re.IGNORECASE | re.DOTALL) for p in patterns), _report(again)
    assert re.search(r"cached\s+validate|failed\s+validate", again.stderr), _report(again)
    assert not re.search(r"ran\s+train", again.stderr + again.stdout), _report(again)


def test_gate_metrics_are_computed_even_when_evaluation_metrics_leaves_them_out(tmp_path: Path) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL + "evaluation: {metrics: [accuracy], latency: false, plots: false}\n"
                             'gate: {thresholds: {roc_auc: ">= 0.0", balanced_accuracy: ">= 0.0"}}\n'
                             "registry: {promote: none}\n")
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert out.returncode == 0, _report(out)
    [metrics] = list((tmp_path / ".trainpipe" / "runs").glob("*/steps/evaluate/metrics.json"))
    computed = json.loads(metrics.read_text())["metrics"]
    assert list(computed) == ["accuracy", "roc_auc", "balanced_accuracy"]
    assert all(isinstance(v, float) for v in computed.values()), computed


# -- the pipeline file --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "patterns"),
    [
        pytest.param(f"name: t\ndata: {{source: data.csv, target: label}}\nmodle: {{type: {LOGREG}}}\n",
                     (r"\bmodle\b", r"unknown key", r"did you mean 'model'"), id="modle"),
        pytest.param(f"name: t\ndata: {{source: data.csv, targt: label}}\nmodel: {{type: {LOGREG}}}\n",
                     (r"data\.targt", r"unknown key", r"did you mean 'target'"), id="data.targt"),
    ],
)
def test_misspelled_config_key(tmp_path: Path, text: str, patterns: tuple[str, ...]) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, text)
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"pipeline\.yaml", *patterns, config_error=True)


def test_invalid_yaml_tab_indentation(tmp_path: Path) -> None:
    write_csv(tmp_path, frame())
    text = f"name: t\ndata:\n  source: data.csv\n\ttarget: label\nmodel: {{type: {LOGREG}}}\n"
    write_pipeline(tmp_path, text)
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"pipeline\.yaml", r"invalid YAML", r"line 4\b", r"tab|\\t",
                         config_error=True)


def test_invalid_yaml_unclosed_bracket(tmp_path: Path) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, f"name: t\ndata: {{source: data.csv, target: label\nmodel: {{type: {LOGREG}}}\n")
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    # The bracket opened on line 2; the message must point there (where the fix goes).
    assert_clean_failure(out, 2, r"pipeline\.yaml", r"invalid YAML", r"line 2\b", config_error=True)


def test_unknown_set_path(tmp_path: Path) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "run", "pipeline.yaml", "--set", "model.parms.C=0.5")
    # The key came from the command line, not from pipeline.yaml: the message must say so.
    assert_clean_failure(out, 2, r"model\.parms", r"unknown key", r"did you mean 'params'", r"--set",
                         config_error=True)


def test_missing_environment_variable(tmp_path: Path) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL.replace("source: data.csv", 'source: "${TP_TEST_DATA_DIR}/data.csv"'))
    out = run_cli(tmp_path, "run", "pipeline.yaml")
    assert_clean_failure(out, 2, r"data\.source", r"TP_TEST_DATA_DIR", r"not set", config_error=True)


@pytest.mark.parametrize("name", ["sub/x", "../prod"])
def test_profile_that_is_not_a_plain_name(tmp_path: Path, name: str) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "validate", "pipeline.yaml", "--profile", name)
    assert_clean_failure(out, 2, r"a profile is a plain name", config_error=True)


@pytest.mark.parametrize("how", ["option", "env"])
def test_profile_file_missing(tmp_path: Path, how: str) -> None:
    write_csv(tmp_path, frame())
    write_pipeline(tmp_path, MINIMAL)
    if how == "option":
        out = run_cli(tmp_path, "run", "pipeline.yaml", "--profile", "prod")
    else:
        out = run_cli(tmp_path, "run", "pipeline.yaml", env={"TRAINPIPE_PROFILE": "prod"})
    assert_clean_failure(out, 2, r"'prod'", r"pipeline\.prod\.yaml", r"does not exist|not found",
                         config_error=True)


def test_pipeline_file_missing(tmp_path: Path) -> None:
    out = run_cli(tmp_path, "run", "pipline.yaml")
    assert_clean_failure(out, 2, r"pipline\.yaml", r"not found|does not exist", config_error=True)


# -- the validate command meets the same inputs -------------------------------------------------------


def test_validate_command_missing_data_file(tmp_path: Path) -> None:
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "validate", "pipeline.yaml")
    assert_clean_failure(out, 2, r"data\.source", r"data\.csv", r"does not exist|not found",
                         failing_step="ingest")


def test_validate_command_single_class(tmp_path: Path) -> None:
    df = frame()
    df["label"] = "no"
    write_csv(tmp_path, df)
    write_pipeline(tmp_path, MINIMAL)
    out = run_cli(tmp_path, "validate", "pipeline.yaml")
    assert_clean_failure(out, 3, r"\blabel\b", r"single class|1 class(es)?\b", failing_step="validate",
                         report_column="label")


@pytest.mark.parametrize(("args", "message"), [
    (("predict", "models:/churn@production", "missing.csv", "-o", "out.csv"),
     "DATA_FILE missing.csv: no such file"),
    (("predict", "models:/churn@production", "data.json", "-o", "out.csv"),
     "DATA_FILE data.json: expected a .csv, .tsv or .parquet file"),
    (("predict", "models:/churn@production", "missing.csv", "-o", "out.txt"),
     "-o out.txt: expected a .csv or .parquet file name"),
    (("models", "list"), "no tracking store at"),
    (("models", "rollback", "churn", "--reason", "x"), "no tracking store at"),
    (("reproduce", "abc123"), "no tracking store at"),
])
def test_registry_commands_with_bad_input(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    out = run_cli(tmp_path, *args)
    assert out.returncode == 2, _report(out)
    assert message in out.message and "Traceback" not in out.stderr
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / ".trainpipe" / "mlflow.db").exists()
