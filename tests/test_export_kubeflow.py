"""The exported Kubeflow pipeline, compiled by the real kfp SDK (2.17, its own virtual environment .venv-kfp,
made by `make test`): its component graph is `trainpipe graph`'s, with the image, resources, GPU limit,
retries, caching, timeouts and artifact edges of the config; and it runs end to end on kfp's local
SubprocessRunner (Python components calling the trainpipe command) into a real MLflow SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_pipeline

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
KFP_PYTHON = ROOT / ".venv-kfp" / "bin" / "python"
TRAINPIPE = Path(sys.executable).with_name("trainpipe")
SCRIPTS = ROOT / "src" / "trainpipe" / "export" / "scripts"

PIPELINE = """\
name: {name}
data: {{source: "sklearn:breast_cancer", target: target}}
model: {{type: sklearn.linear_model.LogisticRegression, params: {{max_iter: 500}}}}
evaluation: {{latency: false, plots: false}}
gate: {{thresholds: {{roc_auc: ">= 0.9"}}}}
registry: {{promote: production}}
{extra}
orchestration:
  retries: 1
  retry_delay: 1s
  resources: {{cpu: 500m, memory: 1Gi}}
  steps:
    train:
      {{retries: 3, retry_delay: 30s, timeout: 3h, resources: {{cpu: "4", memory: 16Gi, accelerator: amd.com/gpu}}}}
"""


@pytest.fixture(scope="module")
def kfp_python() -> Path:
    if not KFP_PYTHON.is_file():
        pytest.fail(f"{KFP_PYTHON} is missing: create kfp's virtual environment with `make .venv-kfp/.installed`")
    return KFP_PYTHON


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    done = subprocess.run([*args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "250", **(env or {})})
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


def test_compiled_spec_has_the_graph_images_resources_gpu_and_artifact_edges(kfp_python: Path, workdir: Path) -> None:
    config = write_pipeline(workdir, PIPELINE.format(name="churn-gpu", extra="training: {device: cuda}"))
    shown = _run(str(TRAINPIPE), "export", "kubeflow", str(config), "-o", "out/pipeline.yaml", "--image",
                 "registry.local/trainpipe:2", "--check", cwd=workdir)
    shown = " ".join(shown.split())  # a long path wraps at the console's width
    assert "check: kfp loads pipeline.yaml as pipeline 'churn-gpu' with 12 tasks and no errors" in shown
    spec = json.loads(_run(str(kfp_python), str(SCRIPTS / "kfp_check.py"), str(workdir / "out" / "pipeline.yaml"),
                           cwd=workdir).strip().splitlines()[-1])
    graph = json.loads(_run(str(TRAINPIPE), "graph", str(config), "--format", "json", cwd=workdir))
    tasks = spec["tasks"]
    assert set(tasks) == {"open_run", *(s["name"] for s in graph["steps"]), "close_run", "kfp-failed"}
    for step in graph["steps"]:  # each step reads the run artifact and the folders of the steps it depends on
        task = tasks[step["name"]]
        assert task["reads"] == sorted(["open_run", *step["upstream"]]) == task["depends_on"]
        assert task["image"] == "registry.local/trainpipe:2"
        assert task["command"][:4] == ["trainpipe", "orchestrate", "kfp-step", step["name"]]
        assert task["cache"] is True
    assert tasks["close_run"]["reads"] == sorted(["open_run", *(s["name"] for s in graph["steps"])])
    assert tasks["open_run"]["cache"] is False and tasks["kfp-failed"]["exit_handler"] is True
    train = tasks["train"]
    # training.device cuda: one GPU of the configured accelerator type on train, and on no other step
    assert train["resources"]["accelerator"]["resourceType"] == "amd.com/gpu"
    assert train["resources"]["accelerator"]["resourceCount"] == "1"
    assert (train["resources"]["resourceCpuRequest"], train["resources"]["resourceMemoryRequest"]) == ("4", "16Gi")
    assert (train["retries"], train["backoff"], train["timeout"]) == (3, "30s", "10800")
    assert all("accelerator" not in t["resources"] for name, t in tasks.items() if name != "train")
    assert tasks["evaluate"]["resources"]["resourceCpuRequest"] == "500m" and tasks["evaluate"]["retries"] == 1
    assert spec["parameters"]["overrides"]["defaultValue"] == "{}"


def test_the_pipeline_runs_end_to_end_on_kfps_local_runner(kfp_python: Path, workdir: Path) -> None:
    from mlflow import MlflowClient

    config = write_pipeline(workdir, PIPELINE.format(name="bc-kfp", extra=""))
    _run(str(TRAINPIPE), "export", "kubeflow", str(config), "-o", "local/pipeline.yaml", "--python-components",
         cwd=workdir)
    store = f"sqlite:///{workdir}/mlflow.db"
    out = _run(str(kfp_python), str(SCRIPTS / "kfp_local_run.py"), str(workdir / "local" / "pipeline.py"),
               str(workdir / "root"), cwd=workdir, timeout=500,
               env={"TRAINPIPE_BIN": str(TRAINPIPE), "MLFLOW_TRACKING_URI": store, "PYTHONPATH": ""})
    assert json.loads(out.strip().splitlines()[-1])["ok"] is True
    client = MlflowClient(store)
    assert [v.version for v in client.search_model_versions("name = 'bc-kfp'")] == [1]
    experiment = client.get_experiment_by_name("bc-kfp").experiment_id
    (parent,) = client.search_runs([experiment], "tags.`trainpipe.kind` = 'pipeline'")
    assert parent.info.status == "FINISHED" and parent.data.tags["trainpipe.orchestrator"] == "kubeflow"
    assert parent.data.tags["kubeflow.run_id"].startswith("bc-kfp-") and parent.data.tags["trigger"] == "manual"
    steps = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.data.tags["trainpipe.step"] for r in steps) == sorted(
        ["ingest", "validate", "split", "drift", "preprocess", "train", "evaluate", "gate", "register"])
    assert "test_roc_auc" in parent.data.metrics
