"""A new SQLite tracking store is a copy of a migrated empty one (tracking/_new_store.py): the store MLflow then
opens holds what a store it created itself holds."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from trainpipe.tracking import MlflowTracker, _new_store


def _content(db: Path) -> list[str]:
    """The store's schema and rows, sorted, and each statement's lines sorted (MLflow's own creations order
    their DDL and a table's constraints differently from process to process), with millisecond timestamps
    masked."""
    con = sqlite3.connect(db)
    try:
        lines = (re.sub(r"\b1\d{12}\b", "T", line).split("\n") for line in con.iterdump())
        return sorted("\n".join(sorted(part.strip().rstrip(",") for part in parts)) for parts in lines)
    finally:
        con.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's template folder; MLflow's own store creation, whatever a test fixture makes of it."""
    folder = tmp_path / "pycache"
    monkeypatch.setattr(_new_store, "_cache_dir", lambda: str(folder))
    real = getattr(_new_store.unsynced_while_created, "__wrapped_real__", _new_store.unsynced_while_created)
    monkeypatch.setattr(_new_store, "unsynced_while_created", real)
    return folder


def test_a_store_from_the_template_equals_one_mlflow_created(tmp_path: Path, cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_new_store.TEMPLATE_ENV, "0")
    made = tmp_path / "a" / "mlflow.db"
    MlflowTracker(f"sqlite:///{made}", "exp", tmp_path / "a" / "mlartifacts")
    assert not cache.exists()  # switched off: MLflow migrated the store itself
    monkeypatch.delenv(_new_store.TEMPLATE_ENV)
    copied = tmp_path / "b" / "mlflow.db"
    tracker = MlflowTracker(f"sqlite:///{copied}", "exp", tmp_path / "a" / "mlartifacts")
    templates = list(cache.glob("mlflow-store-template-*.db"))
    assert len(templates) == 1
    assert _content(copied) == _content(made)  # Default experiment, exp, alembic version, workspace: all alike
    assert not any("INSERT" in line for line in _content(templates[0]) if "alembic_version" not in line
                   and "workspaces" not in line)  # the template names no folder: it holds no experiment
    run = tracker.start_run("r")
    tracker.log_metrics(run, {"m": 1.0})
    assert tracker.client.get_run(run).data.metrics == {"m": 1.0}


def test_only_new_files_get_a_copy_and_a_broken_template_is_rebuilt(tmp_path: Path, cache: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cache.mkdir()
    stale = cache / "mlflow-store-template-0000000000000000.db"
    stale.write_text("another MLflow's template")
    key = _new_store._template_key()
    (cache / f"mlflow-store-template-{key}.db").write_text("torn")  # not a SQLite file: made again
    assert _new_store.copy_migrated_template(uri)
    assert (tmp_path / "mlflow.db").read_bytes()[:16] == b"SQLite format 3\x00"
    assert not stale.exists()  # other versions' templates are removed when one is made
    before = (tmp_path / "mlflow.db").stat().st_mtime_ns
    assert not _new_store.copy_migrated_template(uri)  # an existing store is never replaced
    assert (tmp_path / "mlflow.db").stat().st_mtime_ns == before
    assert not _new_store.copy_migrated_template("postgresql://u@127.0.0.1:1/x")
    assert not list(tmp_path.glob("*.template")) and not list(cache.glob("*.building"))
    _new_store.discard_copied_store(uri)  # MLflow refused the copy: store and template go, made afresh next
    assert not (tmp_path / "mlflow.db").exists() and not list(cache.glob("mlflow-store-template-*.db"))


def test_without_a_writable_cache_mlflow_creates_the_store(tmp_path: Path, cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setattr(_new_store, "_cache_dir", lambda: str(blocked / "pycache"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert not _new_store.copy_migrated_template(uri)
    assert not (tmp_path / "mlflow.db").exists()
    tracker = MlflowTracker(uri, "exp", tmp_path / "mlartifacts")
    assert tracker.client.get_experiment(tracker.experiment_id).name == "exp"
