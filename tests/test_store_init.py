"""Several processes opening one fresh embedded MLflow store at once (two runs started together by a
scheduler): MLflow's table creation and migrations are serialised, so none fails and the store stays usable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

OPEN = """
import sys
from pathlib import Path
from trainpipe.tracking import MlflowTracker
from trainpipe.registry._registry import client_for
uri = sys.argv[1]
tracker = MlflowTracker(uri, "race", Path(sys.argv[2]))
run = tracker.start_run("r", tags={})
tracker.end_run(run, "FINISHED")
client_for(uri).search_registered_models()
"""


def test_processes_creating_one_fresh_store_together_all_succeed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, uri, str(tmp_path / "artifacts")], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    later = subprocess.run([sys.executable, "-c", OPEN, uri, str(tmp_path / "artifacts")], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert later.returncode == 0, later.stderr[-2000:]
    from mlflow import MlflowClient

    runs = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("race").experiment_id])
    assert len(runs) == 5
