"""Issue 18: reading commands work on a read-only store (7); every MLflow filter string is quoted, and a failed
registration leaves no empty registered model (6); ``trainpipe predict`` applies the validation section's
``nullable`` and ``allowed`` checks (9).

The read-only tests make the store really unwritable: ``chmod -R a-w`` on ``.trainpipe``, and when the tests
run as root (for whom modes do not stop writes) the command runs as the unprivileged user ``nobody`` through
``setpriv``; a probe first proves that this user cannot write there.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import make_frame, write_pipeline
from trainpipe import ConfigError
from trainpipe.registry._filters import equals, filter_value, search_model_versions
from trainpipe.registry._registry import client_for, reader_for, register_version

ODD_NAMES = ["churn's model", "a%b", "a_b", "back\\slash", 'say "hi"', "both ' and \"", "x = 'y' OR name != 'z"]


def _store(root: Path) -> tuple[Any, str]:
    uri = f"sqlite:///{root}/.trainpipe/mlflow.db"
    return client_for(uri), uri


def _run(client: Any, name: str = "exp") -> str:
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(name)
    return str(client.create_run(exp_id).info.run_id)


# -- 18.6: filter strings ---------------------------------------------------------------------------------


def test_filter_values_are_quoted_so_the_name_is_read_back_exactly() -> None:
    assert filter_value("plain") == "'plain'"
    assert filter_value("churn's model") == '"churn\'s model"'
    assert filter_value("both ' and \"") is None  # MLflow's parser has no escape: callers filter themselves
    assert equals("name", "a%b") == "name = 'a%b'"


def test_register_version_takes_names_with_quotes_and_like_wildcards(tmp_path: Path) -> None:
    client, _ = _store(tmp_path)
    source = tmp_path / "model"
    source.mkdir()
    for similar in ("axb", "a%%b"):  # would match a%b / a_b if the names were LIKE patterns
        client.create_registered_model(similar)
        client.create_model_version(similar, str(source), tags={"trainpipe.registration": "complete"})
    for name in ODD_NAMES:
        run_id = _run(client)
        mv = register_version(client, name=name, run_id=run_id, source=str(source), alias="staging", tags={},
                              description="card", reason="test")
        assert str(mv.version) == "1" and mv.name == name
        # a retried register step finds the same version through the run-id filter: nothing new
        again = register_version(client, name=name, run_id=run_id, source=str(source), alias="staging", tags={},
                                 description="card", reason="retry")
        assert str(again.version) == "1"
        assert [v.name for v in search_model_versions(client, name)] == [name]
        assert str(client.get_model_version_by_alias(name, "staging").version) == "1"


def test_models_list_of_a_name_with_a_quote(tmp_path: Path) -> None:
    from trainpipe.registry._views import list_table, resolve_version

    client, _ = _store(tmp_path)
    (tmp_path / "m").mkdir()
    client.create_registered_model("churn's model")
    for _ in range(2):
        client.create_model_version("churn's model", str(tmp_path / "m"))
    assert list_table(client, "churn's model").row_count == 2
    assert str(resolve_version(client, "churn's model").version) == "2"


def test_a_failed_registration_leaves_no_empty_registered_model(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = _store(tmp_path)
    (tmp_path / "m").mkdir()
    client.create_registered_model("kept")  # existed before: a failure must not delete it

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("store went away")

    monkeypatch.setattr(client, "create_model_version", broken)
    for name in ("new model", "kept"):
        with pytest.raises(RuntimeError, match="store went away"):
            register_version(client, name=name, run_id=_run(client), source=str(tmp_path / "m"), alias="staging",
                             tags={}, description="", reason="test")
    assert [rm.name for rm in client.search_registered_models()] == ["kept"]


def test_runs_list_filter_by_a_pipeline_name_with_a_quote(tmp_path: Path) -> None:
    from trainpipe._runs import _pipeline_runs

    client, _ = _store(tmp_path)
    exp = client.create_experiment("e")
    for pipeline in ("churn's", "churns", "both ' \""):
        client.create_run(exp, tags={"trainpipe.kind": "pipeline", "trainpipe.pipeline": pipeline})
    for pipeline in ("churn's", "churns", "both ' \""):
        found = _pipeline_runs(client, pipeline, 10)
        assert [r.data.tags["trainpipe.pipeline"] for r in found] == [pipeline]


# -- 18.7: read-only store --------------------------------------------------------------------------------


def test_reader_needs_an_existing_store_and_creates_nothing(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/.trainpipe/mlflow.db"
    with pytest.raises(ConfigError, match=r"no tracking store at .*mlflow\.db\. Run a pipeline here first"):
        reader_for(uri)
    assert not (tmp_path / ".trainpipe").exists()
    (tmp_path / ".trainpipe").mkdir()
    (tmp_path / ".trainpipe" / "mlflow.db").write_bytes(b"")  # a run is creating it right now
    with pytest.raises(ConfigError, match="holds no MLflow registry tables"):
        reader_for(uri)
    assert (tmp_path / ".trainpipe" / "mlflow.db").read_bytes() == b""


def _as_user() -> list[str]:
    """The command prefix that runs as a user for whom file modes hold ([] when not root)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "TRAINPIPE_PROFILE")}
    env.update({"COLUMNS": "400", "NO_COLOR": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "HOME": str(cwd)})
    return subprocess.run([*_as_user(), sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def _msg(proc: subprocess.CompletedProcess[str]) -> str:
    return " ".join(proc.stderr.split())


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user may enter and write (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="trainpipe-ro-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:  # a-w parts must be writable again to be removed
            if p.is_dir() and not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(path, ignore_errors=True)


def _read_only(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    probe = subprocess.run([*_as_user(), sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')"],
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr, "the store is still writable"


@pytest.mark.slow
def test_models_list_show_history_work_on_a_read_only_store_and_promote_says_why_not(open_dir: Path) -> None:
    client, _ = _store(open_dir)
    (open_dir / "m").mkdir()
    client.create_registered_model("churn")
    for _ in range(2):
        client.create_model_version("churn", str(open_dir / "m"), tags={"trainpipe.registration": "complete"})
    (open_dir / ".trainpipe" / "mlflow.db.trainpipe-lock").unlink()  # as a store copied from elsewhere
    _read_only(open_dir / ".trainpipe")
    before = (open_dir / ".trainpipe" / "mlflow.db").read_bytes()

    for args in (("models", "list"), ("models", "list", "churn"), ("models", "show", "churn/1"),
                 ("models", "history", "churn")):
        proc = _cli(open_dir, *args)
        assert proc.returncode == 0, (args, proc.stderr)
    assert "churn" in _cli(open_dir, "models", "list").stdout
    refused = _cli(open_dir, "models", "promote", "churn", "2", "--to", "staging")
    assert refused.returncode == 2, refused.stderr
    assert (f"the store {open_dir}/.trainpipe/mlflow.db is not writable by this user: cannot open its lock file "
            f"{open_dir}/.trainpipe/mlflow.db.trainpipe-lock") in _msg(refused)
    assert "Make them writable" in _msg(refused) and "Traceback" not in refused.stderr
    assert sorted(p.name for p in (open_dir / ".trainpipe").iterdir()) == ["mlflow.db"]
    assert (open_dir / ".trainpipe" / "mlflow.db").read_bytes() == before


def test_models_list_without_a_store_is_exit_2(open_dir: Path) -> None:
    proc = _cli(open_dir, "models", "list")
    assert proc.returncode == 2 and "no tracking store at" in _msg(proc)
    assert not (open_dir / ".trainpipe").exists()
