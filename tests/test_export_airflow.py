"""The exported DAG in real Airflow 3 (its own virtual environment, .venv-airflow, made by `make test`):
DagBag loads it with the graph, schedule, asset, retries and resources of the config; `airflow dags test` runs
it end to end on a small real dataset (scikit-learn's breast cancer table) into a real MLflow SQLite store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_pipeline

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
TRAINPIPE = Path(sys.executable).with_name("trainpipe")

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
  timeout: 10m
  resources: {{cpu: 500m, memory: 1Gi}}
  steps:
    train: {{retries: 2, retry_delay: 2s, timeout: 20m, resources: {{cpu: "2", memory: 4Gi}}}}
"""


@pytest.fixture(scope="module")
def airflow_bin() -> Path:
    if not AIRFLOW.is_file():
        pytest.fail(f"{AIRFLOW} is missing: create Airflow's virtual environment with `make .venv-airflow/.installed`")
    return AIRFLOW


def _export(workdir: Path, config: Path, *extra: str) -> None:
    done = subprocess.run([str(TRAINPIPE), "export", "airflow", str(config), "-o", "dags", *extra], cwd=workdir,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _dagbag(workdir: Path) -> dict[str, Any]:
    from trainpipe.export._checks import airflow_dagbag

    return airflow_dagbag(workdir / "dags")


def test_dagbag_loads_the_dags_with_the_graph_schedule_asset_retries_and_resources(
        airflow_bin: Path, workdir: Path) -> None:
    graph_cfg = write_pipeline(workdir, PIPELINE.format(name="plain", extra=""), "plain.yaml")
    both = write_pipeline(workdir, PIPELINE.format(
        name="both", extra='schedule: "@daily"\ntrigger: {on_new_data: data/new.parquet}\ntraining: {device: cuda}'),
        "both.yaml")
    asset = write_pipeline(workdir, PIPELINE.format(name="asset", extra="trigger: {on_new_data: s3://b/new.csv}"),
                           "asset.yaml")
    _export(workdir, graph_cfg)
    _export(workdir, both, "--image", "registry.local/trainpipe:1", "--kubernetes")
    _export(workdir, asset, "--image", "registry.local/trainpipe:1")
    bag = _dagbag(workdir)
    assert bag["errors"] == {}
    assert set(bag["dags"]) == {"trainpipe_plain", "trainpipe_both", "trainpipe_asset"}

    graph = json.loads(subprocess.run([str(TRAINPIPE), "graph", str(graph_cfg), "--format", "json"], cwd=workdir,
                                      capture_output=True, text=True, timeout=60, check=True).stdout)
    plain = bag["dags"]["trainpipe_plain"]
    steps = [s["name"] for s in graph["steps"]]
    assert set(plain["tasks"]) == {"open_run", *steps, "close_run"}
    for s in graph["steps"]:  # the graph's own dependencies; steps reading nothing wait for open_run
        assert plain["tasks"][s["name"]]["upstream"] == sorted(s["upstream"] or ["open_run"])
        assert plain["tasks"][s["name"]]["skip_on_exit_code"] == [4]
        assert plain["tasks"][s["name"]]["operator"] == "BashOperator"
    assert plain["tasks"]["close_run"]["upstream"] == sorted(steps)
    assert plain["tasks"]["close_run"]["trigger_rule"] == "all_done"
    assert (plain["tasks"]["train"]["retries"], plain["tasks"]["train"]["retry_delay"],
            plain["tasks"]["train"]["timeout"]) == (2, 2.0, 1200.0)
    assert (plain["tasks"]["ingest"]["retries"], plain["tasks"]["ingest"]["timeout"]) == (1, 600.0)
    assert plain["timetable"] == "NullTimetable" and "overrides" in plain["params"]

    cron_and_asset = bag["dags"]["trainpipe_both"]
    assert cron_and_asset["timetable"] == "AssetOrTimeSchedule" and cron_and_asset["cron"] == "0 0 * * *"
    assert cron_and_asset["assets"] == [(workdir / "data" / "new.parquet").as_uri()]
    pods = cron_and_asset["tasks"]
    assert pods["train"]["operator"] == "KubernetesPodOperator"
    assert pods["train"]["image"] == "registry.local/trainpipe:1"
    assert pods["train"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert pods["train"]["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert pods["evaluate"]["resources"]["limits"] is None
    assert pods["evaluate"]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}

    on_data = bag["dags"]["trainpipe_asset"]
    assert on_data["timetable"] == "AssetTriggeredTimetable" and on_data["assets"] == ["s3://b/new.csv"]
    assert on_data["tasks"]["train"]["operator"] == "DockerOperator"

    checked = subprocess.run([str(TRAINPIPE), "export", "airflow", str(graph_cfg), "-o", "dags", "--check"],
                             cwd=workdir, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert "Airflow's DagBag loads trainpipe_plain.py with no import errors" in checked.stdout
    broken = workdir / "dags" / "trainpipe_plain.py"
    broken.write_text(broken.read_text().replace("from airflow.sdk import", "from airflow.sdkk import"))
    from trainpipe._exceptions import ConfigError
    from trainpipe.export._checks import check_airflow

    with pytest.raises(ConfigError, match=r"(?s)Airflow could not load .*plain.py:\n.*No module named 'airflow.sdkk'"):
        check_airflow(broken)


def _airflow(airflow_bin: Path, workdir: Path, *args: str, env: dict[str, str] | None = None,
             timeout: int = 400) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "AIRFLOW_HOME": str(workdir / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(workdir / "dags"), "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    full.pop("PYTHONPATH", None)
    return subprocess.run([str(airflow_bin), *args], cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=full)


def _task_states(airflow_bin: Path, workdir: Path, dag_id: str, run_id: str) -> dict[str, str]:
    done = _airflow(airflow_bin, workdir, "tasks", "states-for-dag-run", dag_id, run_id, "-o", "json")
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return {r["task_id"]: r["state"] for r in rows}


def test_dags_test_registers_a_model_retries_train_only_and_a_gate_refusal_skips_register(
        airflow_bin: Path, workdir: Path) -> None:
    from mlflow import MlflowClient

    config = write_pipeline(workdir, PIPELINE.format(name="bc", extra=""))
    _export(workdir, config, "--env", "MLFLOW_DISABLE_TELEMETRY=true")
    migrated = _airflow(airflow_bin, workdir, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-2000:]

    # run 1: train fails once (test hook), is retried, and the model is registered
    first = _airflow(airflow_bin, workdir, "dags", "test", "trainpipe_bc", env={"TRAINPIPE_TEST_FAIL_ONCE": "train"})
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    assert "TRAINPIPE_TEST_FAIL_ONCE=train: this step fails once" in first.stdout + first.stderr
    runs = sorted((workdir / ".trainpipe" / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("airflow-manual__")
    table = json.loads((runs[0] / "run.json").read_text())
    assert {s["name"]: s["status"] for s in table["steps"]} == {
        "ingest": "ran", "validate": "ran", "split": "ran", "drift": "ran", "preprocess": "ran", "train": "ran",
        "evaluate": "ran", "gate": "ran", "register": "ran"}
    store = MlflowClient(f"sqlite:///{workdir}/.trainpipe/mlflow.db")
    experiment = store.get_experiment_by_name("bc").experiment_id
    parent = store.get_run(table["run_id"])
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["trigger"] == "manual" and tags["trainpipe.orchestrator"] == "airflow"
    assert tags["airflow.dag_id"] == "trainpipe_bc" and tags["airflow.run_id"].startswith("manual__")
    children = store.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    tries: dict[str, list[str]] = {}
    for child in children:
        tries.setdefault(child.data.tags["trainpipe.step"], []).append(child.info.status)
    # the retried train is the only step that ran twice: nothing upstream of it was recomputed
    assert sorted(tries["train"]) == ["FAILED", "FINISHED"]
    for step in ("ingest", "validate", "split", "preprocess"):
        assert tries[step] == ["FINISHED"], tries
    assert [v.version for v in store.search_model_versions("name = 'bc'")] == [1]

    # run 2: an override through the run's params makes the gate refuse: register skipped, the DAG run not failed
    second = _airflow(airflow_bin, workdir, "dags", "test", "trainpipe_bc", "-c",
                      json.dumps({"overrides": {"gate.thresholds.roc_auc": ">= 0.99999"}}))
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    listed = _airflow(airflow_bin, workdir, "dags", "list-runs", "trainpipe_bc", "-o", "json")
    dag_runs = json.loads(listed.stdout.strip().splitlines()[-1])
    latest = max(dag_runs, key=lambda r: r["start_date"])
    assert latest["state"] == "success"
    states = _task_states(airflow_bin, workdir, "trainpipe_bc", latest["run_id"])
    assert states["gate"] == "skipped" and states["register"] == "skipped" and states["close_run"] == "success"
    assert [v.version for v in store.search_model_versions("name = 'bc'")] == [1]
    refused = [r for r in store.search_runs([experiment], "tags.`trainpipe.kind` = 'pipeline'")
               if r.info.run_id != parent.info.run_id]
    assert len(refused) == 1 and refused[0].info.status == "FAILED"
    assert "gate refused the model" in refused[0].data.tags["trainpipe.error"]
    second_table = json.loads((max((workdir / ".trainpipe" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
                               / "run.json").read_text())
    statuses = {s["name"]: s["status"] for s in second_table["steps"]}
    assert statuses["ingest"] == statuses["train"] == "cached" and statuses["gate"] == "failed"
    listing = subprocess.run([str(TRAINPIPE), "runs", "list", "--limit", "2"], cwd=workdir, capture_output=True,
                             text=True, timeout=60, env={**os.environ, "COLUMNS": "250"})
    assert "manual (airflow)" in listing.stdout
