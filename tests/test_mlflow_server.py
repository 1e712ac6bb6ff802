"""Integration with a real `mlflow server` started on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._servers import MlflowServer
from tests.conftest import make_frame, write_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.server]


def test_pipeline_logs_to_a_real_mlflow_server(workdir: Path, mlflow_server: MlflowServer) -> None:
    from mlflow import MlflowClient

    make_frame(400, task="multiclass").to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, f"""\
name: server-test
data: {{source: data.csv, target: label}}
model: {{type: lightgbm, params: {{n_estimators: 30, min_child_samples: 5}}}}
tracking: {{uri: "{mlflow_server.url}"}}
evaluation: {{slices: [colour]}}
""")
    proc = subprocess.run([sys.executable, "-m", "trainpipe.cli", "run", str(path)], cwd=workdir,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert not (workdir / ".trainpipe" / "mlflow.db").exists(), "tracking.uri was ignored"
    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.get_experiment_by_name("server-test")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`trainpipe.kind` = 'pipeline'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["model.type"] == "lightgbm"
    assert run.data.metrics["test_accuracy"] > 0.5
    assert {"config_hash", "data_fingerprint", "git.commit"} <= set(run.data.tags)
    names = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in names
    children = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(children) == 9
    listing = subprocess.run([sys.executable, "-m", "trainpipe.cli", "runs", "list", "--tracking-uri",
                              mlflow_server.url],
                             cwd=workdir, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "COLUMNS": "250"})
    assert listing.returncode == 0 and run.info.run_id in listing.stdout
    # the model registry on the server: a version with its alias, loadable through the server
    (version,) = client.search_model_versions("name = 'server-test'")
    assert client.get_model_version_by_alias("server-test", "staging").version == version.version
    models = subprocess.run([sys.executable, "-m", "trainpipe.cli", "models", "list", "server-test",
                             "--tracking-uri", mlflow_server.url], cwd=workdir, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "COLUMNS": "250"})
    assert models.returncode == 0 and "@staging" in models.stdout, models.stderr
