"""Task objects (issue 11.2): each task owns its label encoding, the columns ``predict`` returns, its default
metrics and their direction, and the champion statistic. Evaluation, the gate's champion re-score and registry
predict all go through the one Task.predict -> Task.columns path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from trainpipe import ConfigError, DataError
from trainpipe.data import TaskInfo, infer_task
from trainpipe.evaluation import DEFAULTS
from trainpipe.evaluation._gate import compare_to_champion, paired_bootstrap
from trainpipe.evaluation._metrics import applicable, metric_direction, metrics_for, task_hint
from trainpipe.tasks import (
    BinaryTask,
    MulticlassTask,
    Prediction,
    RegressionTask,
    Task,
    register_task,
    registered_tasks,
    task_for,
)
from trainpipe.tasks import _registry as task_registry

# --- the registry ---------------------------------------------------------------------------------------------


def test_task_for_resolves_the_builtin_tasks() -> None:
    assert registered_tasks()[:3] == ("binary", "multiclass", "regression")
    assert isinstance(task_for("binary"), BinaryTask)
    assert isinstance(task_for("multiclass"), MulticlassTask)
    assert isinstance(task_for("regression"), RegressionTask)
    assert task_for("binary") is task_for("binary")  # one object per task
    assert TaskInfo("regression").kind is task_for("regression")


def test_unknown_task_is_a_config_error_with_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"no task named 'binnary'.*binary, multiclass, regression.*Did you mean "
                                          r"'binary'\?"):
        task_for("binnary")
    assert task_for("ranking").name == "ranking"  # a built-in since issue 13


class _RankingTask(Task):
    """What a later issue registers: a task known by name everywhere the built-in ones are."""

    name: ClassVar[str] = "ranking"
    default_metrics: ClassVar[tuple[str, ...]] = ("ndcg",)
    tuning_metric: ClassVar[str] = "ndcg"


@pytest.fixture
def ranking(monkeypatch: pytest.MonkeyPatch) -> Task:
    monkeypatch.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))  # undone after the test
    return register_task(_RankingTask(), replace=True)  # in place of the built-in ranking task


def test_a_new_task_registers_the_same_way(ranking: Task) -> None:
    assert task_for("ranking") is ranking
    assert "ranking" in registered_tasks()
    assert DEFAULTS["ranking"] == ["ndcg"]  # the evaluation's defaults read the registry
    assert TaskInfo.from_dict({"task": "ranking"}).kind is ranking
    with pytest.raises(ValueError, match="already registered"):
        register_task(_RankingTask())
    with pytest.raises(TypeError, match="expected a Task instance"):
        register_task("ranking")  # type: ignore[arg-type]


def test_defaults_view_is_the_tasks_defaults() -> None:
    assert dict(DEFAULTS) == {"binary": ["roc_auc", "pr_auc", "log_loss", "accuracy", "f1"],
                              "multiclass": ["roc_auc", "pr_auc", "log_loss", "accuracy", "f1_macro"],
                              "regression": ["rmse", "mae", "r2"],
                              "ranking": ["ndcg@10", "recall@10", "map@10", "mrr", "coverage@10",
                                          "popularity_bias@10"]}
    with pytest.raises(KeyError):
        DEFAULTS["auto"]


# --- label encoding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("labels", "requested", "classes"), [
    (["no", "yes", "yes", "no", "no"], "binary", ("no", "yes")),
    ([3, 1, 2, 2, 1, 3], "multiclass", (1, 2, 3)),
    (["b", "a", "c", "a"], "auto", ("a", "b", "c")),
])
def test_classification_encode_decode_round_trip(labels: list[Any], requested: str, classes: tuple[Any, ...]) -> None:
    y = pd.Series(labels)
    info = infer_task(y, requested, None, "label")
    assert info.classes == classes
    codes = info.encode(y)
    assert codes.dtype == np.int64 and set(codes.tolist()) <= set(range(len(classes)))
    assert info.decode(codes).tolist() == labels
    assert info.kind.encode(info, y).tolist() == codes.tolist()  # TaskInfo delegates to its task
    assert info.kind.labels(info, codes).tolist() == labels  # what TrainedModel.predict returns


def test_labels_match_by_key_and_unseen_labels_are_refused() -> None:
    info = infer_task(pd.Series([0, 1, 1, 0]), "binary", None, "label")
    assert info.encode(pd.Series([1.0, 0.0, 1], dtype=object)).tolist() == [1, 0, 1]  # 1 and 1.0: one class
    with pytest.raises(DataError, match=r"labels not seen in training: \['7'\]"):
        info.encode(pd.Series([0, 7]))
    with pytest.raises(DataError, match=r"labels not seen in training: \['True'\]"):  # a bool is not 1
        info.encode(pd.Series([1, True], dtype=object))


def test_regression_round_trip_is_the_values() -> None:
    y = pd.Series([1.5, -2.0, 3.25, 0.0])
    info = infer_task(y, "auto", None, "label")
    assert info.task == "regression" and info.classes == ()
    values = info.encode(y)
    assert values.dtype == np.float64 and info.decode(values).tolist() == y.tolist()
    with pytest.raises(DataError, match="is not numeric"):
        infer_task(pd.Series(["a", "b", "c"]), "regression", None, "label")


def test_binary_positive_label_is_code_one() -> None:
    info = infer_task(pd.Series(["churn", "stay", "stay", "stay"]), "binary", None, "label")
    assert info.positive_label == "churn" and info.classes == ("stay", "churn")  # the minority, with a note
    assert any("minority" in n for n in info.notes)
    assert infer_task(pd.Series(["yes", "no", "no"]), "binary", None, "y").classes == ("no", "yes")


def test_task_info_serialised_form_is_unchanged() -> None:
    """spec.json of models saved before Task objects existed still loads, and is written the same way."""
    saved = {"task": "binary", "classes": ["No", "Yes"], "positive_label": "Yes",
             "notes": ["task inferred as binary from target 'Churn' (2 distinct values)"]}
    info = TaskInfo.from_dict(json.loads(json.dumps(saved)))
    assert info.to_dict() == saved
    assert info.encode(pd.Series(["Yes", "No"])).tolist() == [1, 0]
    assert TaskInfo.from_dict({"task": "regression"}).to_dict() == {"task": "regression", "classes": [],
                                                                    "positive_label": None, "notes": []}
    numpy_info = TaskInfo("multiclass", (np.int64(1), np.int64(2), np.int64(3)))
    assert numpy_info.to_dict()["classes"] == [1, 2, 3] and type(numpy_info.to_dict()["classes"][0]) is int


# --- metrics and direction ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "headline", "tuning", "classification"), [
    ("binary", "roc_auc", "roc_auc", True),
    ("multiclass", "roc_auc", "log_loss", True),
    ("regression", "rmse", "rmse", False),
])
def test_default_metrics_headline_and_tuning_metric(name: str, headline: str, tuning: str,
                                                    classification: bool) -> None:
    task = task_for(name)
    assert task.headline_metric() == headline == task.default_metrics[0]
    assert task.headline_metric(["accuracy", "roc_auc"]) == "accuracy"  # evaluation.metrics' first, when set
    assert task.tuning_metric == tuning
    assert task.is_classification is classification and task.stratify is classification
    assert metrics_for(name, None) == list(task.default_metrics)
    assert applicable(name)[:len(task.default_metrics)] == list(task.default_metrics)
    assert all(task.metric_applies(m) for m in applicable(name))


@pytest.mark.parametrize(("metric", "direction"), [
    ("roc_auc", "maximize"), ("log_loss", "minimize"), ("accuracy", "maximize"), ("f1_macro", "maximize"),
    ("rmse", "minimize"), ("mae", "minimize"), ("r2", "maximize"),
])
def test_direction_is_the_metrics_own(metric: str, direction: str) -> None:
    task = next(t for t in map(task_for, registered_tasks()) if t.metric_applies(metric))
    assert task.direction(metric) == direction == metric_direction(metric)


def test_metric_applicability_and_hints() -> None:
    assert not task_for("regression").metric_applies("roc_auc")
    assert not task_for("multiclass").metric_applies("f1") and task_for("binary").metric_applies("f1")
    assert not task_for("binary").metric_applies("no_such_metric")
    assert "use 'f1_macro'" in task_for("multiclass").metric_hint("f1")
    assert task_hint("f1", "multiclass") == task_for("multiclass").metric_hint("f1")
    assert task_hint("f1", "binary") == "" and task_hint("f1", "auto") == ""


# --- one prediction-to-columns path on real data --------------------------------------------------------------


def _dataset(name: str) -> tuple[pd.DataFrame, str, str]:
    from sklearn import datasets

    if name == "binary":
        bunch = datasets.load_breast_cancer(as_frame=True)
        df = bunch.frame.iloc[:, [0, 1, 2, 3, 4, 5, 30]].copy()
        df["target"] = df["target"].map({0: "malignant", 1: "benign"})
    elif name == "multiclass":
        bunch = datasets.load_iris(as_frame=True)
        df = bunch.frame.copy()
        df["target"] = df["target"].map(dict(enumerate(bunch.target_names)))
    else:
        df = datasets.load_diabetes(as_frame=True).frame
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True), "target", name


_ESTIMATORS = {"binary": "sklearn.linear_model.LogisticRegression",
               "multiclass": "sklearn.linear_model.LogisticRegression",
               "regression": "sklearn.linear_model.Ridge",
               "no_proba": "sklearn.svm.LinearSVC"}


def _trained(case: str) -> tuple[Any, pd.DataFrame, str]:
    from trainpipe.config import config_from_dict
    from trainpipe.features import build_preprocessor, infer_feature_spec, prepare_frame
    from trainpipe.models import ModelSpec, TrainedModel, create_adapter, family_of

    df, target, task = _dataset("binary" if case == "no_proba" else case)
    model_type = _ESTIMATORS[case]
    cfg = config_from_dict({"name": "t", "task": task, "data": {"source": "a.csv", "target": target},
                            "model": {"type": model_type, "params": {"max_iter": 500} if "Logistic" in model_type
                                      else {}}}).config
    info = infer_task(df[target], task, None, target)
    train, test = df.iloc[:-60], df.iloc[-60:]
    spec = infer_feature_spec(train, cfg)
    pre = build_preprocessor(spec, cfg.features).fit(prepare_frame(train, spec))
    adapter = create_adapter(info, cfg.model, cfg.training)
    adapter.fit(pre.transform(prepare_frame(train, spec)), info.encode(train[target]), None, None)
    return TrainedModel(ModelSpec(model_type, family_of(model_type), info, spec), pre, adapter), test, target


def _old_predict_frame(model: Any, raw: pd.DataFrame) -> pd.DataFrame:
    """registry/_predict.py's predict_frame before Task objects (the reference for the columns)."""
    if model.task.is_classification:
        proba = model.predict_proba(raw)
        if proba is not None:
            labels = model.task.decode(np.argmax(proba, axis=1).astype(np.int64))
            columns: dict[str, Any] = {"prediction": labels}
            columns.update({f"proba_{cls}": proba[:, i] for i, cls in enumerate(model.task.classes)})
            return pd.DataFrame(columns, index=raw.index)
    return pd.DataFrame({"prediction": model.predict(raw)}, index=raw.index)


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression", "no_proba"])
def trained(request: pytest.FixtureRequest) -> tuple[Any, pd.DataFrame, str]:
    return _trained(request.param)


def test_output_columns(trained: tuple[Any, pd.DataFrame, str]) -> None:
    model, test, target = trained
    frame = model.task.kind.predict_frame(model, test.drop(columns=[target]))
    info = model.task
    if info.task == "regression" or model.predict_proba(test.head(1)) is None:
        assert list(frame.columns) == ["prediction"]
    else:
        assert list(frame.columns) == ["prediction", *(f"proba_{c}" for c in info.classes)]
        np.testing.assert_allclose(frame.filter(like="proba_").sum(axis=1), 1.0)
    assert frame.index.equals(test.index)
    if info.is_classification:
        assert set(frame["prediction"]) <= set(info.classes)


def test_evaluation_champion_rescore_and_registry_predict_share_one_path(
        trained: tuple[Any, pd.DataFrame, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The three call sites each go through Task.predict, and its Prediction gives the same frame in all three;
    that frame equals registry predict's before Task objects."""
    from trainpipe.config import EvaluationConfig
    from trainpipe.evaluation import evaluate_model
    from trainpipe.pipeline._steps_registry import _scores
    from trainpipe.registry import predict_frame

    model, test, target = trained
    seen: list[Prediction] = []
    real = Task.predict

    def recording(self: Task, model: Any, raw: pd.DataFrame) -> Prediction:
        out = real(self, model, raw)
        seen.append(out)
        return out

    monkeypatch.setattr(Task, "predict", recording)
    result = evaluate_model(model, test, target, EvaluationConfig(plots=False, latency=False), tmp_path)
    y, pred, proba = _scores(model, test, target)  # the gate: challenger and champion re-score
    served = predict_frame(model, test.drop(columns=[target]))
    assert len(seen) == 3  # evaluation, champion re-score, registry predict: one call each
    task, info = model.task.kind, model.task
    frames = [task.columns(info, p, test.index) for p in seen]
    for frame in frames:
        pd.testing.assert_frame_equal(frame, served)
    pd.testing.assert_frame_equal(served, _old_predict_frame(model, test.drop(columns=[target])))
    np.testing.assert_array_equal(y, info.encode(test[target]))
    np.testing.assert_array_equal(pred, seen[0].pred)
    assert (proba is None) == (seen[0].proba is None)
    if info.is_classification:  # the metrics read the same predictions the frame shows
        assert result.metrics["accuracy"] == pytest.approx(float((info.decode(pred) == test[target]).mean()))
    else:
        assert result.metrics["rmse"] == pytest.approx(float(np.sqrt(np.mean((served["prediction"] - y) ** 2))))


# --- the champion comparison ----------------------------------------------------------------------------------


def _pairs(kind: str) -> tuple[Any, tuple[Any, Any], tuple[Any, Any], int]:
    rng = np.random.default_rng(11)
    n = 300
    y: Any
    if kind == "binary":
        y = rng.integers(0, 2, n)
        a = np.clip(y * 0.6 + rng.normal(0.2, 0.3, n), 0, 1)
        b = np.clip(y * 0.4 + rng.normal(0.3, 0.3, n), 0, 1)
        pa, pb = np.c_[1 - a, a], np.c_[1 - b, b]
        return y, (pa.argmax(1), pa), (pb.argmax(1), pb), 2
    if kind == "multiclass":
        y = rng.integers(0, 3, n)
        la = rng.normal(size=(n, 3))
        la[np.arange(n), y] += 1.5
        lb = rng.normal(size=(n, 3))
        lb[np.arange(n), y] += 1.0
        pa = np.exp(la) / np.exp(la).sum(1, keepdims=True)
        pb = np.exp(lb) / np.exp(lb).sum(1, keepdims=True)
        return y, (pa.argmax(1), pa), (pb.argmax(1), pb), 3
    y = rng.normal(size=n) * 5
    return y, (y + rng.normal(size=n), None), (y + 2 * rng.normal(size=n), None), 0


# Computed with evaluation._gate.paired_bootstrap as it was before Task objects (commit 9543f62), on _pairs'
# data, confidence 0.9, 200 resamples, seed 3.
_BEFORE = {
    ("binary", "roc_auc"): (0.9281490373927349, 0.8061446800942599, 0.12200435729847503, 0.07791042206307792,
                            0.16476636592098212, 200),
    ("binary", "log_loss"): (0.4647449787913958, 0.8673387603507372, 0.4025937815593414, 0.030712779915395547,
                             0.7899691727495903, 200),
    ("multiclass", "log_loss"): (0.5670591854458981, 0.7696606760700052, 0.20260149062410715, 0.13900315089093565,
                                 0.26766359344970636, 200),
    ("multiclass", "f1_macro"): (0.7640179779755455, 0.6598767831030165, 0.10414119487252904, 0.05162191291994185,
                                 0.16879953686037377, 200),
    ("regression", "rmse"): (1.0169966203233833, 2.1257555583828727, 1.1087589380594893, 0.9691260362265945,
                             1.235865217121493, 200),
    ("regression", "r2"): (0.9506091222976527, 0.7842084814640374, 0.16640064083361528, 0.1349301672002077,
                           0.20320809854685246, 200),
}


@pytest.mark.parametrize(("kind", "metric"), list(_BEFORE))
def test_champion_statistic_equals_the_previous_implementation(kind: str, metric: str) -> None:
    y, challenger, champion, k = _pairs(kind)
    got = task_for(kind).champion_statistic(metric, y, challenger, champion, k, confidence=0.9, n_boot=200, seed=3)
    assert got == _BEFORE[(kind, metric)]
    assert got == paired_bootstrap(metric, y, challenger, champion, k, confidence=0.9, n_boot=200, seed=3)
    cmp = compare_to_champion(metric, y, challenger, champion, k, version="4", confidence=0.9, min_delta=0.0,
                              n_boot=200, seed=3, task=task_for(kind))
    assert (cmp.challenger_value, cmp.champion_value, cmp.delta, cmp.ci_low, cmp.ci_high, cmp.n_boot) == got
    assert cmp.passed  # the challenger is the better model in every case here


def test_compare_to_champion_uses_the_tasks_statistic(ranking: Task, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task whose rows come in groups (ranking: queries) supplies its own statistic; the gate calls it."""
    calls: list[str] = []

    def by_query(metric: str, *args: Any, **kwargs: Any) -> tuple[float, float, float, float, float, int]:
        calls.append(metric)
        return 0.7, 0.6, 0.1, 0.05, 0.15, 50

    monkeypatch.setattr(ranking, "champion_statistic", by_query)
    y = np.zeros(4)
    cmp = compare_to_champion("ndcg", y, (y, None), (y, None), 0, version="2", confidence=0.95, min_delta=0.0,
                              task=ranking)
    assert calls == ["ndcg"] and cmp.delta == 0.1 and cmp.passed and cmp.n_boot == 50


def test_champion_mismatch() -> None:
    binary = TaskInfo("binary", ("no", "yes"), "yes")
    task = task_for("binary")
    assert task.champion_mismatch(binary, binary) is None
    assert task.champion_mismatch(TaskInfo("binary", ("n", "y"), "y"), binary) == "predicts other classes (('n', 'y'))"
    assert task.champion_mismatch(TaskInfo("regression"), binary) == ("is a regression model, the challenger a "
                                                                       "binary one")
    assert task_for("regression").champion_mismatch(TaskInfo("regression"), TaskInfo("regression")) is None
