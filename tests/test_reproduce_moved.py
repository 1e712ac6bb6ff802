"""``trainpipe reproduce`` (and ``trainpipe step``, ``runs sync``) in a copied or moved project read the
project's own files: the run's recorded source folder (``source_dir.txt``, an absolute path) is followed into
the folder the run directory now lives in, never back into the original project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_frame, write_pipeline
from trainpipe import ConfigError
from trainpipe.tracking._relocate import recorded_source_dir


def _fake_run(project: Path, source: Path, run_id: str = "r1") -> Path:
    run_dir = project / ".trainpipe" / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "run_dir": str(run_dir)}))
    (run_dir / "source_dir.txt").write_text(str(source))
    source.mkdir(parents=True, exist_ok=True)
    return run_dir


def test_a_copied_project_uses_its_own_source_folder_even_while_the_original_exists(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    run = _fake_run(a, a / "conf")
    assert recorded_source_dir(run) == a / "conf"  # not moved: as recorded
    shutil.copytree(a, b)
    assert recorded_source_dir(b / ".trainpipe" / "runs" / "r1") == b / "conf"
    shutil.rmtree(a)
    assert recorded_source_dir(b / ".trainpipe" / "runs" / "r1") == b / "conf"


def test_a_source_folder_outside_the_project_is_used_as_recorded(tmp_path: Path) -> None:
    a, b, shared = tmp_path / "A", tmp_path / "B", tmp_path / "shared" / "pipelines"
    _fake_run(a, shared)
    shutil.move(a, b)
    assert recorded_source_dir(b / ".trainpipe" / "runs" / "r1") == shared


def test_a_recorded_source_folder_that_is_nowhere_is_a_config_error_saying_what_to_do(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    _fake_run(a, a / "conf")
    shutil.move(a, b)
    shutil.rmtree(b / "conf")
    with pytest.raises(ConfigError, match=rf"run r1: the folder of its pipeline file, {a / 'conf'}, recorded in "
                                          rf".*source_dir.txt, does not exist \(the project was moved or copied.*"
                                          r"Run from the project folder that holds the run's pipeline file"):
        recorded_source_dir(b / ".trainpipe" / "runs" / "r1")


PIPELINE = """\
name: moved
data: {source: data.csv, target: label}
model: {type: sklearn.linear_model.LogisticRegression}
evaluation: {latency: false, plots: false}
registry: {promote: none}
"""


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.mark.slow
def test_reproduce_in_a_copy_whose_original_was_renamed(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    (a / "conf").mkdir(parents=True)
    make_frame(300).to_csv(a / "conf" / "data.csv", index=False)
    write_pipeline(a / "conf", PIPELINE)
    ran = _cli(a, "run", "conf/pipeline.yaml")
    assert ran.returncode == 0, ran.stderr
    (run_dir,) = (a / ".trainpipe" / "runs").iterdir()
    assert (run_dir / "source_dir.txt").read_text() == str(a / "conf")

    shutil.copytree(a, b, symlinks=True)
    a.rename(tmp_path / "A.old")  # the original is gone from where the run recorded it
    again = _cli(b, "reproduce", run_dir.name)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"exactly the metrics of run {run_dir.name}" in again.stdout
    newest = max((b / ".trainpipe" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    assert newest.name != run_dir.name and (newest / "source_dir.txt").read_text() == str(b / "conf")
