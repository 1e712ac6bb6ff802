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
    """A new embedded store, made as a run makes one (MlflowTracker: a copy of the migrated empty store, see
    tracking/_new_store.py), opened by the registry's writing client. ``client_for`` creating a store itself
    (MLflow's ~60 migrations with a sync each: 5-10 s a test on a busy disk) is covered by
    tests/test_registry_lock.py."""
    from trainpipe.tracking._new_store import copy_migrated_template

    uri = f"sqlite:///{root}/.trainpipe/mlflow.db"
    (root / ".trainpipe").mkdir(parents=True, exist_ok=True)
    assert copy_migrated_template(uri), "no migrated store template could be made (trainpipe/__pycache__)"
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


# -- 18.9: predict applies validation.columns (nullable, allowed); 18.7: predict on a read-only store --------

LOGREG = "sklearn.linear_model.LogisticRegression"


@pytest.fixture(scope="module")
def checked_store() -> Iterator[Path]:
    """A folder any user may enter, whose store holds ``checked@staging``, trained with ``colour`` allowed to
    be red/green/blue and ``x1`` not nullable (and a check on the label, which predict never sees)."""
    root = Path(tempfile.mkdtemp(prefix="trainpipe-checks-"))
    root.chmod(0o1777)
    make_frame(300).to_csv(root / "train.csv", index=False)
    write_pipeline(root, textwrap.dedent(f"""\
        name: checked
        data: {{source: train.csv, target: label}}
        model: {{type: {LOGREG}}}
        evaluation: {{plots: false, latency: false}}
        validation:
          columns:
            colour: {{allowed: [red, green, blue]}}
            x1: {{nullable: false}}
            label: {{allowed: ["yes", "no"]}}
    """), "checked.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "TRAINPIPE_PROFILE")}
    run = subprocess.run([sys.executable, "-m", "trainpipe.cli", "run", "checked.yaml"], cwd=root,
                         capture_output=True, text=True, timeout=600, env={**env, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    new = make_frame(20, seed=1).drop(columns=["label"])
    new.loc[2, "colour"] = "purple"  # data rows 3 and 8 (counted from 1): not an allowed colour
    new.loc[7, "colour"] = "Red"
    new.loc[[4, 7], "x1"] = None  # data rows 5 and 8: missing, and x1 is not nullable
    new.to_csv(root / "new.csv", index=False)
    try:
        yield root
    finally:
        for p in [root, *root.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_the_input_checks_travel_with_the_registered_model(checked_store: Path) -> None:
    import json

    stored = next((checked_store / ".trainpipe" / "runs").glob("*/steps/register/registered_model/artifacts/"
                                                               "input_checks.json"))
    assert json.loads(stored.read_text()) == {"format": 1, "columns": {
        "colour": {"allowed": ["red", "green", "blue"]}, "x1": {"nullable": False}}}


@pytest.mark.slow
def test_predict_refuses_rows_failing_the_checks_and_writes_nothing(checked_store: Path) -> None:
    proc = _cli(checked_store, "predict", "models:/checked@staging", "new.csv", "-o", "out-fail.csv")
    assert proc.returncode == 3, proc.stderr
    msg = _msg(proc)
    assert "DATA_FILE new.csv: 3 of 20 rows fail the model's input checks" in msg
    assert ("colour: isin: 2 row(s) fail, expected one of ['red', 'green', 'blue'] (rows 3, 8; values 'purple', "
            "'Red')") in msg
    assert "x1: not_nullable: 2 row(s) fail, expected no missing values (rows 5, 8" in msg
    assert "Nothing was written" in msg and "--on-invalid skip" in msg and "Traceback" not in proc.stderr
    assert not (checked_store / "out-fail.csv").exists()


@pytest.mark.slow
def test_predict_on_invalid_skip_and_keep(checked_store: Path) -> None:
    skip = _cli(checked_store, "predict", "models:/checked@staging", "new.csv", "-o", "out-skip.csv",
                "--on-invalid", "skip")
    assert skip.returncode == 0, skip.stderr
    assert "3 of 20 rows fail" in _msg(skip) and "those rows were 3 left out" in _msg(skip)
    keep = _cli(checked_store, "predict", "models:/checked@staging", "new.csv", "-o", "out-keep.csv",
                "--on-invalid", "keep")
    assert keep.returncode == 0, keep.stderr
    assert "scored anyway" in _msg(keep)
    skipped, kept = pd.read_csv(checked_store / "out-skip.csv"), pd.read_csv(checked_store / "out-keep.csv")
    assert len(skipped) == 17 and len(kept) == 20
    # the rows left out are exactly data rows 3, 5 and 8; the others are scored as they are with every row
    pd.testing.assert_frame_equal(skipped, kept.drop(index=[2, 4, 7]).reset_index(drop=True))
    bad = _cli(checked_store, "predict", "models:/checked@staging", "new.csv", "-o", "x.csv", "--on-invalid", "drop")
    assert bad.returncode == 2 and "--on-invalid: expected one of fail, skip, keep, got 'drop'" in _msg(bad)


@pytest.mark.slow
def test_predict_works_on_a_read_only_store(checked_store: Path) -> None:
    out_dir = checked_store / "scores"
    out_dir.mkdir()
    out_dir.chmod(0o1777)
    (checked_store / ".trainpipe" / "mlflow.db.trainpipe-lock").unlink(missing_ok=True)
    _read_only(checked_store / ".trainpipe")
    try:
        proc = _cli(checked_store, "predict", "models:/checked@staging", "new.csv", "-o", "scores/p.csv",
                    "--on-invalid", "keep")
        assert proc.returncode == 0, proc.stderr
        assert len(pd.read_csv(out_dir / "p.csv")) == 20
        assert not (checked_store / ".trainpipe" / "mlflow.db.trainpipe-lock").exists()
    finally:
        for p in [checked_store / ".trainpipe", *(checked_store / ".trainpipe").rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_check_rows_reports_rows_from_1_and_ignores_columns_the_file_lacks(tmp_path: Path) -> None:
    from trainpipe._exceptions import DataValidationError
    from trainpipe.registry._input_checks import apply_checks, check_rows, read_checks

    df = pd.DataFrame({"grade": [1.0, 2.0, None, 7.0], "city": ["a", None, "b", "a"]}, index=[10, 11, 12, 13])
    checks: dict[str, dict[str, Any]] = {"grade": {"allowed": [1, 2, 3]}, "city": {"nullable": False},
                                         "absent": {"nullable": False}}
    report = check_rows(df, checks)
    assert [(f.column, f.check, f.rows) for f in report.failures] == [("grade", "isin", [4]),
                                                                       ("city", "not_nullable", [2])]
    assert report.invalid == [1, 3]  # a missing grade is no 'allowed' failure: the run's check skips it too
    kept, _ = apply_checks(df, checks, "skip", "f.csv")
    assert list(kept.index) == [10, 12]
    with pytest.raises(DataValidationError, match=r"f\.csv: 2 of 4 rows fail") as info:
        apply_checks(df, checks, "fail", "f.csv")
    assert info.value.exit_code == 3
    (tmp_path / "input_checks.json").write_text("{not json")
    with pytest.raises(ConfigError, match="the model's stored input checks cannot be read"):
        read_checks(tmp_path / "input_checks.json")
