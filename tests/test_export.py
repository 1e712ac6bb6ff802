"""``trainpipe export``: the rendered DAG is the graph of ``trainpipe graph`` plus the orchestration section;
bad orchestration input is exit 2 with a message naming the key. No orchestrator is imported here (the
engine tests are tests/test_export_airflow.py and tests/test_export_kubeflow.py)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_pipeline
from trainpipe._exceptions import ConfigError
from trainpipe.config import load_config
from trainpipe.export import build_plan, check_schedule, overrides_from_env, render_dag, run_dir_name, trigger_of
from trainpipe.export._run import checked_run_dir

PIPELINE = """\
name: churn
data: {source: "sklearn:breast_cancer", target: target}
model: {type: sklearn.linear_model.LogisticRegression}
schedule: "@weekly"
trigger: {on_new_data: data/new.parquet}
training: {device: cuda}
orchestration:
  retries: 1
  retry_delay: 30s
  timeout: 1h
  resources: {cpu: "1", memory: 2Gi}
  steps:
    train: {retries: 2, timeout: 6h, resources: {cpu: "4", memory: 8Gi}}
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"MLFLOW_DISABLE_TELEMETRY": "true", "PATH": "/usr/bin:/bin"})


def plan_of(dag_file: Path) -> dict[str, Any]:
    """The PLAN literal embedded in an exported DAG file."""
    for node in ast.parse(dag_file.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PLAN":
            value: dict[str, Any] = ast.literal_eval(node.value)
            return value
    raise AssertionError(f"no PLAN in {dag_file}")


def test_the_dag_renders_the_graph_of_trainpipe_graph_with_the_orchestration_settings(workdir: Path) -> None:
    path = write_pipeline(workdir, PIPELINE)
    graph = json.loads(_cli("graph", str(path), "--format", "json", cwd=workdir).stdout)
    done = _cli("export", "airflow", str(path), "-o", "dags", "--image", "trainpipe:1", "--kubernetes", cwd=workdir)
    assert done.returncode == 0, done.stderr
    dag_file = workdir / "dags" / "trainpipe_churn.py"
    compile(dag_file.read_text(), str(dag_file), "exec")  # valid Python
    plan = plan_of(dag_file)
    assert [s["name"] for s in plan["steps"]] == [s["name"] for s in graph["steps"]]
    assert {s["name"]: s["upstream"] for s in plan["steps"]} == {s["name"]: s["upstream"] for s in graph["steps"]}
    steps = {s["name"]: s for s in plan["steps"]}
    assert (steps["train"]["retries"], steps["train"]["timeout"], steps["train"]["retry_delay"]) == (2, 6 * 3600, 30)
    assert (steps["ingest"]["retries"], steps["ingest"]["timeout"]) == (1, 3600)
    # training.device: cuda -> the step that wants a GPU gets one; the others none
    assert steps["train"]["resources"] == {"cpu": "4", "memory": "8Gi", "gpu": 1, "accelerator": "nvidia.com/gpu"}
    assert steps["evaluate"]["resources"] == {"cpu": "1", "memory": "2Gi"}
    assert plan["schedule"] == "0 0 * * 0" and plan["asset"] == (workdir / "data" / "new.parquet").as_uri()
    assert plan["mode"] == "kubernetes" and plan["image"] == "trainpipe:1" and plan["workdir"] == str(workdir)
    assert plan["config"] == str(path) and plan["dag_id"] == "trainpipe_churn"


def test_tune_appears_only_when_configured(workdir: Path) -> None:
    plain = load_config(write_pipeline(workdir, PIPELINE))
    tuned = load_config(write_pipeline(workdir, PIPELINE + "tuning: {n_trials: 2, metric: roc_auc}\n", "t.yaml"))
    names = [s["name"] for s in build_plan(plain, workdir=workdir, config_path=workdir)["steps"]]
    tuned_names = [s["name"] for s in build_plan(tuned, workdir=workdir, config_path=workdir)["steps"]]
    assert "tune" not in names and tuned_names.index("tune") == tuned_names.index("train") - 1


def test_schedules_and_assets(workdir: Path) -> None:
    assert check_schedule("@daily") == "0 0 * * *" and check_schedule("15 3 * * 1-5") == "15 3 * * 1-5"
    assert check_schedule(None) is None
    with pytest.raises(ConfigError, match=r"schedule: expected a cron expression of 5 fields .* got 'every day'"):
        check_schedule("every day")
    loaded = load_config(write_pipeline(workdir, PIPELINE.replace("data/new.parquet", "s3://bucket/new.parquet")))
    plan = build_plan(loaded, workdir=workdir, config_path=workdir)
    assert plan["asset"] == "s3://bucket/new.parquet"
    bare = load_config(write_pipeline(workdir, PIPELINE.replace('schedule: "@weekly"\n', "")
                                      .replace("trigger: {on_new_data: data/new.parquet}\n", "")))
    plan = build_plan(bare, workdir=workdir, config_path=workdir)
    assert plan["schedule"] is None and plan["asset"] is None


@pytest.mark.parametrize(("change", "expected"), [
    ("    train: {retries: 2", r"orchestration.steps.trian: no step 'trian' in the graph of 'churn' .*Did you mean "
                               r"'train'\?"),
    ('schedule: "@weekly"', r"schedule: expected a cron expression"),
    ("  retry_delay: 30s", r"retry_delay: expected a duration such as 300, 90s, 5m, 2h or 1d, got '30 secs'"),
    ("  resources: {cpu: \"1\", memory: 2Gi}", r"expected a Kubernetes memory quantity such as 4Gi"),
])
def test_bad_orchestration_input_is_exit_2_naming_the_key(workdir: Path, change: str, expected: str) -> None:
    broken = {"    train: {retries: 2": "    trian: {retries: 2", 'schedule: "@weekly"': 'schedule: "weekly"',
              "  retry_delay: 30s": "  retry_delay: 30 secs",
              "  resources: {cpu: \"1\", memory: 2Gi}": "  resources: {cpu: \"1\", memory: 2 GB}"}[change]
    path = write_pipeline(workdir, PIPELINE.replace(change, broken))
    done = _cli("export", "airflow", str(path), "-o", "dags", cwd=workdir)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    import re

    assert re.search(expected, " ".join(done.stderr.split())), done.stderr
    assert not (workdir / "dags").exists()


def test_cli_refuses_kubernetes_without_an_image_and_secret_env(workdir: Path) -> None:
    path = write_pipeline(workdir, PIPELINE)
    done = _cli("export", "airflow", str(path), "--kubernetes", cwd=workdir)
    assert done.returncode == 2 and "--kubernetes runs the steps in pods of the trainpipe image" in done.stderr
    done = _cli("export", "airflow", str(path), "--env", "AWS_SECRET_ACCESS_KEY=x", cwd=workdir)
    assert done.returncode == 2 and "a secret name" in done.stderr and "x" not in done.stdout


def test_bash_mode_never_splices_run_values_into_the_shell_line(workdir: Path) -> None:
    plan = build_plan(load_config(write_pipeline(workdir, PIPELINE)), workdir=workdir, config_path=workdir)
    text = render_dag(plan, mode="bash", trainpipe="/opt/tp/bin/trainpipe")
    assert "bash_command=f'exec \"$TRAINPIPE_BIN\" {line}'" in text
    assert "skip_on_exit_code=[4]" in text and "TriggerRule.ALL_DONE" in text
    with pytest.raises(ConfigError, match="the docker mode runs the trainpipe image: give --image IMAGE"):
        render_dag(plan, mode="docker")


def test_run_directory_names_and_triggers(workdir: Path) -> None:
    assert run_dir_name("airflow", "manual__2026-01-02T03:04:05+00:00") == "airflow-manual__2026-01-02T03_04_05_00_00"
    assert run_dir_name("airflow", "../../etc") == "airflow-etc" and run_dir_name("airflow", "///") == "airflow-run"
    runs = workdir / ".trainpipe" / "runs"
    assert checked_run_dir(Path(".trainpipe/runs/airflow-x"), workdir) == runs / "airflow-x"
    for bad in (".trainpipe/runs/../../x", "/tmp/elsewhere", ".trainpipe/runs/a b"):
        with pytest.raises(ConfigError, match=r"an orchestrated run's directory must be \.trainpipe/runs/NAME"):
            checked_run_dir(Path(bad), workdir)
    assert [trigger_of(t) for t in ("manual", "scheduled", "asset_triggered", "backfill", "DagRunType.MANUAL")] == [
        "manual", "schedule", "asset", "schedule", "manual"]
    assert trigger_of("manual", "DagRunTriggeredByType.REST_API") == "api"
    with pytest.raises(ConfigError, match="--run-type: expected one of manual, schedule, asset, api"):
        trigger_of("cron")


def test_overrides_param_becomes_set_items() -> None:
    env = {"TRAINPIPE_OVERRIDES": '{"model.params.max_depth": 8, "gate.thresholds.roc_auc": ">= 0.9"}'}
    assert overrides_from_env(env) == ["model.params.max_depth=8", "gate.thresholds.roc_auc=>= 0.9"]
    assert overrides_from_env({"TRAINPIPE_OVERRIDES": "{}"}) == [] and overrides_from_env({}) == []
    with pytest.raises(ConfigError, match=r"TRAINPIPE_OVERRIDES \(the run's overrides param\): expected a JSON obj"):
        overrides_from_env({"TRAINPIPE_OVERRIDES": "[1, 2]"})


def test_open_refuses_bad_overrides_before_creating_anything(workdir: Path) -> None:
    path = write_pipeline(workdir, PIPELINE)
    done = subprocess.run([sys.executable, "-m", "trainpipe.cli", "orchestrate", "open", str(path), "--run-dir",
                           ".trainpipe/runs/airflow-x"], cwd=workdir, capture_output=True, text=True, timeout=120,
                          env={"MLFLOW_DISABLE_TELEMETRY": "true", "PATH": "/usr/bin:/bin",
                               "TRAINPIPE_OVERRIDES": '{"model.params.max_depht": 8}'})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "max_depht" in done.stderr
    assert not (workdir / ".trainpipe" / "runs").exists()


def test_mermaid_picture_of_the_dag_follows_the_graph(workdir: Path) -> None:
    from trainpipe.export._airflow import dag_mermaid

    loaded = load_config(write_pipeline(workdir, PIPELINE))
    plan = build_plan(loaded, workdir=workdir, config_path=workdir)
    text = dag_mermaid(plan)
    edges = {line.strip() for line in text.splitlines() if "-->" in line}
    expected = {f"{u} --> {s['name']}" for s in plan["steps"] for u in s["upstream"]}
    assert edges == expected | {"open_run --> ingest"}
    assert 'train["train<br/><i>retries 2, GPU</i>"]' in text and "register -.-> close_run" in text


def test_check_without_the_orchestrator_venv_names_the_make_target(workdir: Path) -> None:
    path = write_pipeline(workdir, PIPELINE)
    done = subprocess.run([sys.executable, "-m", "trainpipe.cli", "export", "kubeflow", str(path), "-o", "p.yaml"],
                          cwd=workdir, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "TRAINPIPE_KFP_PYTHON": str(workdir / "no-such-python")})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "TRAINPIPE_KFP_PYTHON=" in done.stderr and "no Python interpreter there" in done.stderr
    from trainpipe.export._engines import ENGINES

    assert "kfp==2.17.0" in ENGINES["kfp"][3]  # the pins of `make .venv-kfp/.installed`
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "KFP_PINS     := kfp==2.17.0" in makefile and "$(KFP_VENV)/.installed" in makefile


def test_close_of_a_run_that_never_opened_fails_the_dag_run(workdir: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "trainpipe.cli", "orchestrate", "close", "--run-dir",
                           ".trainpipe/runs/airflow-x"], cwd=workdir, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true"})
    shown = " ".join(done.stderr.split())  # the console wraps long lines
    assert done.returncode == 1 and "nothing to close" in shown and "see the log of the open task" in shown
