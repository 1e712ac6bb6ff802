"""Issue 19 (1, 1b, 2): metric directions, honest f1/precision/recall names, the gate's champion alias."""

from __future__ import annotations

import json
import os
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
from trainpipe.evaluation._metrics import METRICS, best_value, compute_metrics, metric_direction, metrics_for

# -- direction of a metric name as it is logged ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("val_accuracy", "maximize"), ("val_loss", "minimize"), ("val_rmse", "minimize"),
        ("test.roc_auc", "maximize"), ("loss", "minimize"), ("train_loss", "minimize"),
        ("test_f1_macro", "maximize"), ("val_log_loss", "minimize"), ("val_r2", "maximize"),
        ("val_balanced_accuracy", "maximize"),
        # the libraries' own per-round names
        ("val_auc", "maximize"), ("val_aucpr", "maximize"), ("val_map@5", "maximize"), ("val_ndcg@10", "maximize"),
        ("val_average_precision", "maximize"), ("val_binary_logloss", "minimize"), ("val_mlogloss", "minimize"),
        ("val_merror", "minimize"), ("val_binary_error", "minimize"), ("val_l2", "minimize"),
        ("valid_0 mape", "minimize"),  # "mape" is not "map"
        ("something_unknown", "minimize"),
    ],
)
def test_metric_direction(name: str, direction: str) -> None:
    assert metric_direction(name) == direction


def test_every_registry_name_keeps_its_own_direction_behind_a_prefix() -> None:
    for name, metric in METRICS.items():
        want = "maximize" if metric.greater_is_better else "minimize"
        assert metric_direction(name) == metric_direction(f"val_{name}") == metric_direction(f"test.{name}") == want


def test_best_value_follows_the_direction_and_skips_nan() -> None:
    accuracy = [0.794, 0.9, float("nan"), 1.0, 0.97]
    assert best_value("val_accuracy", accuracy) == 1.0
    assert best_value("val_loss", [0.7, 0.3, 0.4]) == 0.3
    assert best_value("val_loss", []) is None and best_value("val_loss", [float("nan")]) is None


def test_torch_run_records_the_best_epoch_of_accuracy_not_the_worst(workdir: Path) -> None:
    """A real multi-epoch history (torch_mlp on iris): ``val_accuracy_best`` is its maximum (it was the minimum),
    ``val_loss_best`` its minimum; and the multiclass defaults give ``f1_macro``."""
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner
    from trainpipe.tracking import InMemoryTracker

    path = write_pipeline(workdir, "name: irismlp\ndata: {source: 'sklearn:iris', target: target}\n"
                                   "model: {type: torch_mlp, params: {hidden_dims: [16]}}\n"
                                   "training: {epochs: 12, batch_size: 32, learning_rate: 0.01, seed: 0,\n"
                                   "           early_stopping_patience: 50}\n"
                                   "evaluation: {latency: false, plots: false}\n")
    tracker = InMemoryTracker()
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=tracker).run()
    history = json.loads((result.run_dir / "steps" / "train" / "train.json").read_text())["history"]
    accuracy, loss = history["val_accuracy"], history["val_loss"]
    assert len(accuracy) == 12 and max(accuracy) > min(accuracy)  # it learned: the old min() was wrong
    (train_run,) = [r for r in tracker.children(result.run_id) if r.name == "train"]
    logged = {k: v[-1][1] for k, v in train_run.metrics.items()}
    for recorded in (result.step("train").metrics, logged):  # the step, and its tracked run (the MLflow UI)
        assert recorded["val_accuracy_best"] == max(accuracy)
        assert recorded["val_loss_best"] == min(loss)
        assert recorded["train_loss_best"] == min(history["train_loss"])
    assert "test_f1_macro" in result.metrics and "test_f1" not in result.metrics


# -- f1 / precision / recall ---------------------------------------------------------------------------


def test_binary_f1_precision_recall_are_the_positive_class_values() -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import f1_score, precision_score, recall_score

    from trainpipe.data._task import infer_task

    frame = load_breast_cancer(as_frame=True).frame
    raw_y = frame["target"]  # 0 = malignant (37 %), 1 = benign
    task = infer_task(raw_y, "binary", 0, "target")  # malignant is the positive class
    assert task.positive_label == 0
    raw_pred = np.where(frame["mean radius"] > 14.0, 0, 1)  # a simple real rule, with errors of both kinds
    y, pred = task.encode(raw_y), task.encode(pd.Series(raw_pred))
    names = ["f1", "precision", "recall", "f1_macro", "f1_weighted", "f1_micro", "precision_macro",
             "precision_weighted", "recall_macro", "recall_weighted", "accuracy"]
    got = compute_metrics(names, "binary", y, pred, None, 2)
    assert got["f1"] == pytest.approx(f1_score(raw_y, raw_pred, pos_label=0))
    assert got["precision"] == pytest.approx(precision_score(raw_y, raw_pred, pos_label=0))
    assert got["recall"] == pytest.approx(recall_score(raw_y, raw_pred, pos_label=0))
    assert got["f1_macro"] == pytest.approx(f1_score(raw_y, raw_pred, average="macro"))
    assert got["f1_weighted"] == pytest.approx(f1_score(raw_y, raw_pred, average="weighted"))
    assert got["recall_macro"] == pytest.approx(recall_score(raw_y, raw_pred, average="macro"))
    assert got["f1_micro"] == pytest.approx(got["accuracy"])
    assert got["f1"] is not None and got["f1_macro"] is not None
    assert abs(got["f1"] - got["f1_macro"]) > 0.01  # the old "f1" was the macro average
    assert got["f1"] != pytest.approx(f1_score(raw_y, raw_pred, pos_label=1))  # and it is not the benign class's


def test_multiclass_defaults_and_averaged_names() -> None:
    assert "f1_macro" in metrics_for("multiclass", None) and "f1" not in metrics_for("multiclass", None)
    assert "f1" in metrics_for("binary", None)
    y = np.array([0, 1, 2, 2, 1, 0])
    pred = np.array([0, 2, 2, 1, 1, 0])
    got = compute_metrics(["f1_macro", "precision_weighted", "recall_macro"], "multiclass", y, pred, None, 3)
    from sklearn.metrics import f1_score

    assert got["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    for name in ("f1", "precision", "recall"):
        assert METRICS[name].tasks == ("binary",)


def _config(**sections: object):  # type: ignore[no-untyped-def]
    base: dict[str, object] = {"name": "x", "data": {"source": "a.csv", "target": "species"},
                               "model": {"type": "xgboost", "params": {"n_estimators": 5}}}
    return config_from_dict({**base, **sections}).config


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        pytest.param({"evaluation": {"metrics": ["accuracy", "f1"]}}, r"evaluation\.metrics", id="metrics"),
        pytest.param({"gate": {"thresholds": {"f1": ">= 0.6"}}}, r"gate\.thresholds\.f1", id="threshold"),
        pytest.param({"gate": {"champion": {"metric": "f1"}}}, r"gate\.champion\.metric", id="champion"),
    ],
)
def test_f1_on_a_multiclass_task_is_refused_naming_f1_macro(sections: dict[str, object], key: str) -> None:
    from trainpipe.pipeline import preflight
    from trainpipe.pipeline._preflight import check_task_fit

    with pytest.raises(ConfigError, match=key + r": 'f1' does not fit a multiclass task; it needs a binary task\. "
                                              r"'f1' is the positive class's f1 .* use 'f1_macro'"):
        preflight(_config(task="multiclass", **sections))
    config = _config(**sections)  # task: auto, checked again once the task is inferred
    preflight(config)
    with pytest.raises(ConfigError, match=r"\(inferred from target 'species'\).*use 'f1_macro'"):
        check_task_fit(config, "multiclass")
    check_task_fit(config, "binary")


def test_new_names_are_accepted_by_tuning_gate_and_champion() -> None:
    from trainpipe.pipeline import preflight
    from trainpipe.tuning import infer_direction, objective_metric

    config = _config(task="multiclass", tuning={"metric": "f1_macro", "n_trials": 2},
                     gate={"thresholds": {"f1_weighted": ">= 0.5", "recall_macro": ">= 0.5"},
                           "champion": {"metric": "f1_macro", "against": "staging"}})
    preflight(config)
    assert config.tuning is not None
    assert objective_metric(config.tuning, "multiclass") == "f1_macro"
    assert infer_direction("f1_macro") == "maximize"
    with pytest.raises(ConfigError, match=r"tuning\.metric: 'recall' does not apply to a multiclass task\. 'recall' "
                                          r"is the positive class's recall.*'recall_macro'"):
        preflight(_config(task="multiclass", tuning={"metric": "recall", "n_trials": 2}))
    with pytest.raises(ConfigError, match=r"gate\.champion\.against"):
        _config(gate={"champion": {"against": "previous-production"}})


# -- the gate against @staging when nothing is in production -------------------------------------------------

GATED = """\
name: diabetes
data: {{source: "sklearn:diabetes", target: target}}
model: {{type: {model}}}
evaluation: {{latency: false, plots: false}}
gate:
  champion: {{metric: r2, confidence: 0.9}}
registry: {{model_name: diabetes, promote: staging}}
"""


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "TRAINPIPE_PROFILE")}
    env.update({"COLUMNS": "250", "MLFLOW_DISABLE_TELEMETRY": "true", "NO_COLOR": "1"})
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


def _aliases(workdir: Path) -> tuple[list[str], dict[str, str]]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir}/.trainpipe/mlflow.db"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = sorted(str(v.version) for v in c.search_model_versions("name = 'diabetes'"))
    return versions, {k: str(v) for k, v in c.get_registered_model("diabetes").aliases.items()}


def _latest_gate_report(workdir: Path) -> dict[str, Any]:
    reports = sorted((workdir / ".trainpipe" / "runs").glob("*/gate_report.json"), key=lambda p: p.stat().st_mtime)
    report: dict[str, Any] = json.loads(reports[-1].read_text())
    return report


@pytest.mark.slow
def test_a_worse_model_cannot_take_staging_when_nothing_is_in_production(workdir: Path) -> None:
    good = write_pipeline(workdir, GATED.format(model="sklearn.linear_model.Ridge"))
    first = _cli(workdir, "run", str(good))
    assert first.returncode == 0, first.stderr
    assert _aliases(workdir) == (["1"], {"staging": "1"})
    assert "No production or staging version of 'diabetes' yet" in _latest_gate_report(workdir)["champion_note"]

    worse = write_pipeline(workdir, GATED.format(model="sklearn.dummy.DummyRegressor"), "worse.yaml")
    refused = _cli(workdir, "run", str(worse))
    assert refused.returncode == 4, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "does not beat the staging champion (version 1) on r2" in refused.stderr
    assert "compared with diabetes@staging (version 1) on r2" in refused.stdout + refused.stderr
    report = _latest_gate_report(workdir)
    champion = report["champion"]
    assert report["verdict"] == "refused" and champion["champion_alias"] == "staging"
    assert champion["champion_version"] == "1" and champion["delta"] < 0
    assert "No production version of 'diabetes': compared with the staging version 1" in champion["note"]
    markdown = sorted((workdir / ".trainpipe" / "runs").glob("*/gate_report.md"),
                      key=lambda p: p.stat().st_mtime)[-1].read_text()
    assert "Champion: @staging, version 1" in markdown
    assert _aliases(workdir) == (["1"], {"staging": "1"})  # nothing registered

    # against: production written out is the same rule: no production version, so staging is the champion
    explicit = _cli(workdir, "run", str(worse), "--set", "gate.champion.against=production")
    assert explicit.returncode == 4, explicit.stderr
    assert "does not beat the staging champion (version 1)" in explicit.stderr
    assert _aliases(workdir) == (["1"], {"staging": "1"})

    # a challenger allowed to be worse (non-inferiority margin) passes and takes @staging
    lenient = _cli(workdir, "run", str(worse), "--set", "gate.champion.min_delta=-2")
    assert lenient.returncode == 0, lenient.stderr
    assert _aliases(workdir) == (["1", "2"], {"staging": "2"})
    assert _latest_gate_report(workdir)["champion"]["champion_version"] == "1"


def test_log_loss_of_float32_probabilities_is_computed_without_a_warning() -> None:
    import warnings

    from sklearn.metrics import log_loss

    from trainpipe.evaluation._metrics import compute_metrics

    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=500).astype(np.float32)  # as XGBoost returns them
    y = rng.integers(0, 3, size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn warns when rows sum to 1 only within float32 rounding
        value = compute_metrics(["log_loss"], "multiclass", y, proba.argmax(axis=1), proba, 3)["log_loss"]
    exact = proba.astype(np.float64) / proba.astype(np.float64).sum(axis=1, keepdims=True)
    assert value == pytest.approx(log_loss(y, exact, labels=[0, 1, 2]), rel=1e-12)
