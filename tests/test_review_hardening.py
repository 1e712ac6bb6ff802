"""Hardening from a review of this stop's security work: paths and names that come from the tracking store,
the registry or a copied run folder are never followed outside the project, and secrets by more names."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from trainpipe import ConfigError


def test_reproduce_reads_the_config_only_from_this_project_not_from_the_run_dir_tag(tmp_path: Path) -> None:
    from trainpipe.pipeline._reproduce import _recorded_config

    elsewhere = tmp_path / "shared" / "evil"
    elsewhere.mkdir(parents=True)
    (elsewhere / "config.yaml").write_text("name: x\n")  # a tag in the store points here
    with pytest.raises(ConfigError, match="not in this project"):
        _recorded_config("abc123", {"trainpipe.run_dir": str(elsewhere)}, tmp_path / "project")
    with pytest.raises(ConfigError, match="expected the MLflow run id"):
        _recorded_config("../evil", {}, tmp_path / "project")


def test_sync_uploads_only_files_inside_the_project_state_folder(tmp_path: Path) -> None:
    from trainpipe.tracking._sync import _inside

    state = tmp_path / ".trainpipe"
    (state / "runs" / "r1").mkdir(parents=True)
    inside = state / "runs" / "r1" / "report.md"
    inside.write_text("ok")
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = x")
    assert _inside(inside, state)
    assert not _inside(secret, state)
    assert not _inside(state / "runs" / ".." / ".." / "credentials", state)


def test_the_tracking_journal_is_private_and_scrubbed(tmp_path: Path) -> None:
    from trainpipe.tracking._journal import JOURNAL, append

    append(tmp_path, [{"op": "set_tags", "run": "r", "tags": {"err": "http://u:hunter22@host/x failed"}}])
    mode = stat.S_IMODE(os.stat(tmp_path / JOURNAL).st_mode)
    assert mode == 0o600
    text = (tmp_path / JOURNAL).read_text()
    assert "hunter22" not in text and json.loads(text)["tags"]["err"].startswith("http://u:***@")


@pytest.mark.parametrize(("name", "secret"), [
    ("DB_PASS", True), ("SMTP_PWD", True), ("GCP_CREDENTIALS", True), ("BASIC_AUTH", True), ("SENTRY_DSN", True),
    ("API_KEY", True), ("password", True),
    ("PWD", False), ("OLDPWD", False), ("GIT_AUTHOR_NAME", False), ("compass", False), ("HOME", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    from trainpipe.config import is_secret_name

    assert is_secret_name(name) is secret


def test_an_mlmodel_artifact_path_cannot_point_outside_the_model_folder(tmp_path: Path) -> None:
    from trainpipe.registry._registry import pyfunc_artifact

    folder = tmp_path / "model"
    (folder / "artifacts" / "model_dir").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    for path, found in (("artifacts/model_dir", True), ("../outside", False), (str(tmp_path / "outside"), False)):
        (folder / "MLmodel").write_text(
            f"flavors:\n  python_function:\n    artifacts:\n      model_dir: {{path: {json.dumps(path)}}}\n")
        assert (pyfunc_artifact(folder, "model_dir") is not None) is found, path


def test_a_version_string_from_the_server_never_becomes_a_path(tmp_path: Path) -> None:
    from trainpipe.registry._registry import download_version

    with pytest.raises(ValueError, match="expected a version number"):
        download_version(None, "sqlite:///x.db", "m", "../../etc", tmp_path)  # type: ignore[arg-type]
