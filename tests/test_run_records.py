"""The run's last records: a store that refuses them fails the command clearly and never leaves the MLflow
run RUNNING; SQLite's "readonly database" is named as the store problem it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import make_frame, write_pipeline
from trainpipe._exceptions import StoreError
from trainpipe.config import load_config
from trainpipe.pipeline import PipelineRunner
from trainpipe.tracking import InMemoryTracker


class ReadOnlyArtifacts(InMemoryTracker):
    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        raise PermissionError(13, "Permission denied", "/store/mlartifacts/x")


def test_records_that_cannot_be_written_end_the_mlflow_run_failed(workdir: Path) -> None:
    make_frame(300).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: ro\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression}\n"
                                   "evaluation: {latency: false, plots: false}\n")
    tracker = ReadOnlyArtifacts()
    with pytest.raises(StoreError, match=r"could not be written to the MLflow store .*PermissionError"):
        PipelineRunner(load_config(path), workdir=workdir, tracker=tracker).run()
    parents = [r for r in tracker.runs.values() if r.parent_id is None]
    assert len(parents) == 1 and parents[0].status == "FAILED"
    assert all(r.status != "RUNNING" for r in tracker.runs.values())


def test_a_readonly_sqlite_store_is_named_as_such() -> None:
    from trainpipe.cli import _store_problem

    try:
        try:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("(raised as a result of Query-invoked autoflush)") from inner
    except RuntimeError as outer:
        assert _store_problem(outer) == "attempt to write a readonly database"
    assert _store_problem(ValueError("x")) == ""
