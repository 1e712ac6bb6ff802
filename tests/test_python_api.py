"""``trainpipe.run()`` from Python on a real SQLite MLflow store: what ``trainpipe run`` does, drift, gate and
registry included, with a result object; errors raised as the documented types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trainpipe
from tests.conftest import make_frame, write_pipeline

pytestmark = pytest.mark.slow

PIPELINE = """\
name: pyapi
data: {source: d.csv, target: label}
model: {type: sklearn.linear_model.LogisticRegression}
evaluation: {latency: false, plots: false}
"""


@pytest.fixture
def pipeline(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    make_frame(300).to_csv(workdir / "d.csv", index=False)
    return write_pipeline(workdir, PIPELINE)


def test_run_registers_gates_and_compares_with_the_champion(pipeline: Path, workdir: Path) -> None:
    from mlflow import MlflowClient

    overrides = {"registry.promote": "production", "gate.champion.min_delta": -1.0}
    first = trainpipe.run(pipeline, overrides=overrides, trigger="schedule")
    assert isinstance(first, trainpipe.RunResult)
    assert first.status == "finished" and set(first.steps.values()) <= {"ran", "cached"}
    assert list(first.steps) == ["ingest", "validate", "split", "drift", "preprocess", "train", "evaluate", "gate",
                                 "register"]
    assert first.gate_verdict == "passed"
    assert (first.registered_model, first.registered_version) == ("pyapi", "1")
    assert 0.5 < first.test_metrics["test_roc_auc"] <= 1.0
    uri = f"sqlite:///{workdir / '.trainpipe' / 'mlflow.db'}"  # the CLI's default store, in the workdir
    assert first.tracking_uri == uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(first.run_id)
    assert run.data.tags["trainpipe.kind"] == "pipeline" and run.data.tags["trigger"] == "schedule"
    assert run.data.metrics["test_roc_auc"] == pytest.approx(first.test_metrics["test_roc_auc"])
    assert str(client.get_model_version_by_alias("pyapi", "production").version) == "1"

    loaded = trainpipe.load_config(pipeline, overrides=[f"{k}={v}" for k, v in overrides.items()])
    second = trainpipe.run(loaded)  # a LoadedConfig works as well
    assert second.registered_version == "2" and second.gate_verdict == "passed"
    gate = json.loads((second.run_dir / "steps" / "gate" / "gate_report.json").read_text())
    assert gate["champion"]["champion_version"] == "1"  # the champion comparison really ran
    drift = json.loads((second.run_dir / "steps" / "drift" / "_step_result.json").read_text())["params"]
    assert drift["drift_reference"] == "pyapi version 1 (production)"
    assert str(client.get_model_version_by_alias("pyapi", "previous-production").version) == "1"
    assert str(client.get_model_version_by_alias("pyapi", "production").version) == "2"


def test_errors_propagate_as_the_documented_types(pipeline: Path) -> None:
    with pytest.raises(trainpipe.ConfigError, match=r"modle") as bad:
        trainpipe.run(pipeline, overrides={"modle.type": "xgboost"})
    assert bad.value.exit_code == 2
    with pytest.raises(trainpipe.GateRefused, match=r"gate refused the model; nothing was registered") as refused:
        trainpipe.run(pipeline, overrides={"gate.thresholds": {"roc_auc": ">= 1.01"}})
    assert refused.value.exit_code == 4


def test_a_library_run_prints_no_mlflow_info_lines_or_progress_bars(pipeline: Path, workdir: Path) -> None:
    """As the CLI: MLflow's table-creation INFO lines and its "Downloading artifacts" bars (registering reads the
    model back) are noise in a caller's output; the caller's own MLFLOW_LOGGING_LEVEL still wins."""
    import os
    import subprocess
    import sys

    code = "import trainpipe; r = trainpipe.run('pipeline.yaml'); print('status', r.status)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") or k == "MLFLOW_DISABLE_TELEMETRY"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "status finished" in proc.stdout
    out = proc.stdout + proc.stderr
    assert "Downloading artifacts" not in out and "INFO mlflow" not in out, out[-2000:]
