"""The suite every model adapter must pass (adding a family means adding it to FAMILIES)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_frame
from trainpipe import ConfigError, DataError
from trainpipe.config import config_from_dict
from trainpipe.data import infer_task
from trainpipe.features import build_preprocessor, infer_feature_spec, prepare_frame
from trainpipe.models import ModelSpec, TrainedModel, _skops_io, check_model_config, create_adapter, family_of

FAMILIES = {
    "xgboost": {"binary": "xgboost", "multiclass": "xgboost", "regression": "xgboost"},
    "lightgbm": {"binary": "lightgbm", "multiclass": "lightgbm", "regression": "lightgbm"},
    "torch": {"binary": "torch_mlp", "multiclass": "torch_mlp", "regression": "torch_mlp"},
    "sklearn": {"binary": "sklearn.linear_model.LogisticRegression",
                "multiclass": "sklearn.ensemble.RandomForestClassifier",
                "regression": "sklearn.linear_model.Ridge"},
}
PARAMS = {"xgboost": {"n_estimators": 40}, "lightgbm": {"n_estimators": 40, "min_child_samples": 5},
          "torch": {"hidden_dims": [32, 16]}, "sklearn": {}}
TRAINING = {"torch": {"epochs": 15, "batch_size": 32, "learning_rate": 0.01}}


def _fit(family: str, task: str, tmp_path: Path) -> tuple[TrainedModel, pd.DataFrame]:
    df = make_frame(500, seed=3, task=task)
    model_type = FAMILIES[family][task]
    params = dict(PARAMS[family])
    if model_type.endswith("RandomForestClassifier"):
        params = {"n_estimators": 20}
    cfg = config_from_dict({"name": "t", "task": task, "data": {"source": "a.csv", "target": "label"},
                            "model": {"type": model_type, "params": params},
                            "training": {"early_stopping_rounds": 5, **TRAINING.get(family, {})}}).config
    info = infer_task(df["label"], task, None, "label")
    train, val, test = df.iloc[:300], df.iloc[300:400], df.iloc[400:]
    spec = infer_feature_spec(train, cfg)
    pre = build_preprocessor(spec, cfg.features).fit(prepare_frame(train, spec))
    adapter = create_adapter(info, cfg.model, cfg.training)
    rounds: list[int] = []
    report = adapter.fit(pre.transform(prepare_frame(train, spec)), info.encode(train["label"]),
                         pre.transform(prepare_frame(val, spec)), info.encode(val["label"]),
                         lambda i, total, m: rounds.append(i))
    assert rounds, "the adapter reported no progress"
    if family != "sklearn":
        assert report.history and all(len(v) == report.n_iterations for v in report.history.values())
    model = TrainedModel(ModelSpec(model_type, family_of(model_type), info, spec), pre, adapter)
    return model, test


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_adapter_contract(family: str, task: str, tmp_path: Path) -> None:
    model, test = _fit(family, task, tmp_path)
    raw = test.drop(columns=["label"])
    pred = model.predict(raw)
    assert len(pred) == len(test)
    if task == "regression":
        assert model.predict_proba(raw) is None
        assert np.corrcoef(pred, test["label"])[0, 1] > 0.5, "the model learned nothing"
    else:
        proba = model.predict_proba(raw)
        assert proba is not None and proba.shape == (len(test), len(model.task.classes))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        assert set(pred) <= set(model.task.classes)
        assert (pred == test["label"].to_numpy()).mean() > 0.6, "the model learned nothing"
    model.save(tmp_path / "model")
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    loaded = TrainedModel.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(raw), pred)
    if task != "regression":
        np.testing.assert_allclose(loaded.predict_proba(raw), model.predict_proba(raw), rtol=1e-6)
    importances = loaded.adapter.feature_importances()
    assert importances is not None and len(importances) == len(loaded.transform(raw[:1]).reshape(-1))


def test_booster_early_stopping_stops_early(tmp_path: Path) -> None:
    df = make_frame(400, seed=1)
    cfg = config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "label"},
                            "model": {"type": "xgboost", "params": {"n_estimators": 2000, "learning_rate": 0.3}},
                            "training": {"early_stopping_rounds": 5}}).config
    info = infer_task(df["label"], "auto", None, "label")
    spec = infer_feature_spec(df, cfg)
    pre = build_preprocessor(spec, cfg.features).fit(prepare_frame(df, spec))
    X = pre.transform(prepare_frame(df, spec))
    y = info.encode(df["label"])
    report = create_adapter(info, cfg.model, cfg.training).fit(X[:300], y[:300], X[300:], y[300:])
    assert report.best_iteration is not None and report.n_iterations is not None
    assert report.n_iterations < 2000 and report.n_iterations == report.best_iteration + 6


def test_missing_columns_at_prediction_are_named(tmp_path: Path) -> None:
    model, test = _fit("sklearn", "binary", tmp_path)
    with pytest.raises(DataError, match=r"missing feature columns \['colour'\]"):
        model.predict(test.drop(columns=["label", "colour"]))


@pytest.mark.parametrize(("model", "pattern"), [
    ({"type": "xgbost"}, r"unknown model type 'xgbost'\. Did you mean 'xgboost'\?"),
    ({"type": "xgboost", "params": {"max_dept": 3}}, r"model\.params\.max_dept: unknown parameter.*'max_depth'"),
    ({"type": "xgboost", "params": {"max_depth": "six"}}, r"model\.params\.max_depth: expected an integer.*'six'"),
    ({"type": "lightgbm", "params": {"num_leaves": 1}}, r"model\.params\.num_leaves: expected an integer >= 2"),
    ({"type": "sklearn.linear_model.LogisticRegresion"}, r"no class 'LogisticRegresion'.*LogisticRegression"),
    ({"type": "sklearn.linear_model.LogisticRegression", "params": {"C": "big"}}, r"model\.params: .*'C'"),
    ({"type": "nosuchpkg.Model"}, r"'nosuchpkg\.Model' cannot be trained: .*nothing else is imported"),
    ({"type": "two_tower", "params": {"loss": "bpr2"}}, r"model\.params\.loss: .*Did you mean 'bpr'"),
    ({"type": "torch_mlp", "params": {"hiden_dims": [8]}}, r"model\.params\.hiden_dims: unknown.*'hidden_dims'"),
    ({"type": "torch_mlp", "params": {"dropout": "lots"}}, r"model\.params\.dropout: expected a number"),
    ({"type": "torch_mlp", "params": {"activation": "rellu"}}, r"model\.params\.activation: .*'relu'"),
    ({"type": "torch_mlp", "params": {"hidden_dims": [64, 0]}}, r"model\.params\.hidden_dims: expected a list"),
])
def test_model_config_errors(model: dict[str, object], pattern: str) -> None:
    cfg = config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "y"}, "model": model}).config
    with pytest.raises(ConfigError, match=pattern):
        check_model_config(cfg.model, "binary")


def test_classifier_for_regression_is_a_config_error() -> None:
    cfg = config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "y"},
                            "model": {"type": "sklearn.linear_model.LogisticRegression"}}).config
    with pytest.raises(ConfigError, match="is a classifier but the task is regression"):
        check_model_config(cfg.model, "regression")


def test_skops_refuses_foreign_types(tmp_path: Path) -> None:
    import collections

    import skops.io as sio

    sio.dump({"x": collections.OrderedDict(a=Path("/etc"))}, str(tmp_path / "evil.skops"))
    with pytest.raises(DataError, match="refusing to load types"):
        _skops_io.load(tmp_path / "evil.skops")


def test_row_numbers_written_with_the_file_are_not_features() -> None:
    df = make_frame(400, seed=2).sort_values("label").reset_index(drop=True)  # sorted by the target
    df.insert(0, "rownames", np.arange(1, len(df) + 1))
    df.insert(1, "Unnamed: 0", np.arange(len(df)))
    df["index"] = np.arange(len(df)) * 7  # sparse: not row numbers, stays a feature
    train = df.sample(frac=0.7, random_state=0)  # the training split: a shuffled subset
    cfg = config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "label"},
                            "model": {"type": "xgboost"}}).config
    spec = infer_feature_spec(train, cfg)
    assert "rownames" in spec.dropped and "Unnamed: 0" in spec.dropped and "row numbers" in spec.dropped["rownames"]
    assert "rownames" not in spec.numeric and "index" in spec.numeric


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_a_damaged_model_file_is_a_data_error_naming_the_folder(family: str, tmp_path: Path) -> None:
    model, _ = _fit(family, "binary", tmp_path)
    model.save(tmp_path / "model")
    for f in (tmp_path / "model").iterdir():
        if f.name.startswith("model."):  # the library's own file (model.ubj / model.txt)
            f.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"the model in .*model cannot be loaded"):
        TrainedModel.load(tmp_path / "model")


def test_a_native_booster_parameter_name_points_at_the_scikit_learn_one() -> None:
    from trainpipe.models import check_model_config

    cfg = config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "y"},
                            "model": {"type": "xgboost", "params": {"eta": 0.1, "lambda": 1.0}}}).config
    with pytest.raises(ConfigError, match=r"model\.params\.eta: .*native name for 'learning_rate'") as caught:
        check_model_config(cfg.model, "auto")
    assert "write reg_lambda" in str(caught.value)
