"""The fast prediction path (compiled preprocessor, one-thread XGBoost for a few rows) gives exactly what the
ColumnTransformer path gives: every family, one row and many, missing values, unseen and rare categories,
shuffled and extra columns."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trainpipe.config import config_from_dict
from trainpipe.data import infer_task
from trainpipe.features import build_preprocessor, infer_feature_spec, prepare_frame
from trainpipe.features._fast import compile_transform
from trainpipe.models import ModelSpec, TrainedModel, _trained, _xgboost, create_adapter, family_of
from trainpipe.registry import predict_frame

MODELS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # model type -> (task, params, features config)
    "xgboost": ("binary", {"n_estimators": 30}, {"max_categories": 4}),
    "xgboost-multiclass": ("multiclass", {"n_estimators": 20}, {}),
    "lightgbm": ("binary", {"n_estimators": 30, "min_child_samples": 5}, {"scale": "none"}),
    "sklearn.linear_model.LogisticRegression": ("binary", {}, {"numeric_impute": "mean"}),
    "sklearn.linear_model.Ridge": ("regression", {}, {"categorical_encoding": "ordinal", "numeric_impute": "zero"}),
    "torch_mlp": ("binary", {"hidden_dims": [16]}, {"categorical_encoding": "ordinal"}),
}


def _frame(n: int, seed: int) -> pd.DataFrame:
    """Numbers with missing cells, a bool, integers, text categories with missing cells and rare levels."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(0, 10, size=n)
    x2[rng.choice(n, size=n // 10, replace=False)] = np.nan
    colour = rng.choice(["red", "green", "blue", "grey", "pink", "teal"], size=n, p=[.4, .3, .2, .05, .03, .02])
    colour = colour.astype(object)
    colour[rng.random(n) < 0.08] = None
    size = rng.choice(["S", "M", "L"], size=n)
    score = x1 + (colour == "red") * 1.5 + np.nan_to_num(x2, nan=5.0) / 5 + rng.normal(scale=0.5, size=n)
    df = pd.DataFrame({"x1": x1, "x2": x2, "flag": rng.random(n) < 0.3, "count": rng.integers(0, 50, size=n),
                       "colour": pd.Series(colour, dtype="str"), "size": size})
    df["label"] = np.where(score > np.median(score), "yes", "no")
    return df


@cache  # fitted once per model type in this file; no test changes a model (monkeypatch undoes its patches)
def _fit(model_type: str) -> tuple[TrainedModel, pd.DataFrame]:
    task, params, features = MODELS[model_type]
    kind = model_type.split("-")[0]
    df = _frame(400, seed=5)
    if task == "multiclass":
        df["label"] = pd.cut(df["x1"], 3, labels=["low", "mid", "high"]).astype(str)
    elif task == "regression":
        df["label"] = df["x1"] * 3.0 + df["count"]
    training = {"epochs": 5, "batch_size": 32} if kind == "torch_mlp" else {}
    cfg = config_from_dict({"name": "t", "task": task, "data": {"source": "a.csv", "target": "label"},
                            "features": features, "model": {"type": kind, "params": params},
                            "training": {"early_stopping_rounds": 5, **training}}).config
    info = infer_task(df["label"], task, None, "label")
    train, val = df.iloc[:300], df.iloc[300:]
    spec = infer_feature_spec(train, cfg)
    pre = build_preprocessor(spec, cfg.features).fit(prepare_frame(train, spec))
    adapter = create_adapter(info, cfg.model, cfg.training)
    adapter.fit(pre.transform(prepare_frame(train, spec)), info.encode(train["label"]),
                pre.transform(prepare_frame(val, spec)), info.encode(val["label"]))
    return TrainedModel(ModelSpec(kind, family_of(kind), info, spec), pre, adapter), df.drop(columns=["label"])


def _serving_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows as a server sees them: unseen categories, missing cells of every kind, infinities, a new column."""
    out = _frame(120, seed=11).drop(columns=["label"])
    out["colour"] = out["colour"].astype(object)
    out.loc[0:9, "colour"] = "purple"  # never seen
    out.loc[10:14, "size"] = None
    out.loc[15:19, "x1"] = np.nan
    out.loc[20:22, "x2"] = np.inf
    out.loc[23, "colour"] = np.nan
    out.loc[24, "size"] = "XL"
    out["unused"] = "extra column"
    return pd.concat([raw.head(80), out], ignore_index=True)


def _reference(model: TrainedModel, raw: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """predict_frame the way it ran before the fast path: the fitted ColumnTransformer, XGBoost on all cores."""
    with monkeypatch.context() as m:
        m.setattr(_trained, "FAST_PATH", False)
        m.setattr(_xgboost, "SINGLE_THREAD_ROWS", -1)
        return predict_frame(model, raw)


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request: pytest.FixtureRequest) -> tuple[TrainedModel, pd.DataFrame]:
    return _fit(request.param)


def test_fast_path_compiles(fitted: tuple[TrainedModel, pd.DataFrame]) -> None:
    model, _ = fitted
    assert model.fast_transform is not None, "trainpipe's own preprocessors all compile"


def test_many_rows_equal(fitted: tuple[TrainedModel, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    model, raw = fitted
    rows = _serving_rows(raw)
    expected = _reference(model, rows, monkeypatch)
    pd.testing.assert_frame_equal(predict_frame(model, rows), expected, check_exact=True)
    reference = model.preprocessor.transform(prepare_frame(rows, model.spec.features))
    np.testing.assert_array_equal(model.transform(rows), reference)


def test_one_row_at_a_time_equal(fitted: tuple[TrainedModel, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    model, raw = fitted
    rows = _serving_rows(raw)
    # every serving row with an unseen/missing/infinite/extra cell (80..104), and a sample of the rest
    for i in [*range(0, 80, 7), *range(80, 105), *range(105, len(rows), 3)]:
        one = rows.iloc[[i]]  # the same one-row frame both ways (BLAS may sum one row and a batch differently)
        pd.testing.assert_frame_equal(predict_frame(model, one), _reference(model, one, monkeypatch),
                                      check_exact=True)


def test_shuffled_columns_and_small_batches(fitted: tuple[TrainedModel, pd.DataFrame],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    model, raw = fitted
    rows = _serving_rows(raw)
    shuffled = rows[list(rows.columns)[::-1]]
    for start, stop in [(0, 5), (75, 95), (90, 110), (0, len(rows))]:  # dict lookup (<= 16 rows) and index lookup
        got = predict_frame(model, shuffled.iloc[start:stop])
        pd.testing.assert_frame_equal(got, _reference(model, rows.iloc[start:stop], monkeypatch), check_exact=True)


def test_one_row_skips_the_column_transformer(fitted: tuple[TrainedModel, pd.DataFrame],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    model, raw = fitted
    model.fast_transform  # noqa: B018 (compiled here, where the ColumnTransformer may still run)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the ColumnTransformer ran on the fast path")

    monkeypatch.setattr(model.preprocessor, "transform", refuse)
    assert len(predict_frame(model, raw.iloc[[3]])) == 1


def test_xgboost_predicts_a_few_rows_on_one_thread() -> None:
    model, raw = _fit("xgboost")
    X = model.transform(raw)
    adapter: Any = model.adapter
    assert adapter._for_rows(X[:1]).get_params()["n_jobs"] == 1
    assert adapter._for_rows(X[:1]).get_booster() is not adapter.model.get_booster()
    assert adapter._for_rows(X) is adapter.model  # a batch keeps every core
    np.testing.assert_array_equal(adapter.predict_proba(X[:3]), adapter.model.predict_proba(X[:3]))


def test_a_loaded_model_takes_the_fast_path(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model, raw = _fit("xgboost")
    model.save(tmp_path / "model")
    loaded = TrainedModel.load(tmp_path / "model")
    assert loaded.fast_transform is not None
    rows = _serving_rows(raw)
    pd.testing.assert_frame_equal(predict_frame(loaded, rows.iloc[[83]]),
                                  _reference(model, rows.iloc[[83]], monkeypatch), check_exact=True)


def test_preprocessors_it_does_not_know_keep_the_sklearn_path() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import MinMaxScaler

    df = _frame(50, seed=1)
    model, _ = _fit("lightgbm")
    spec = model.spec.features
    other = ColumnTransformer([("numeric", MinMaxScaler(), list(spec.numeric))]).fit(prepare_frame(df, spec))
    assert compile_transform(other, spec) is None
    assert compile_transform("not a transformer", spec) is None


@pytest.mark.parametrize("model_type", ["lightgbm", "sklearn.linear_model.Ridge"])
def test_a_missing_category_in_a_one_row_request_is_missing_not_unseen(model_type: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Both paths encode it as in training: the ColumnTransformer path used to get ``None`` in an object column
    (nothing else in the column to make pandas read it as strings), which its imputer left alone, so the cell
    was encoded as an unseen category when alone and as missing in a batch."""
    model, raw = _fit(model_type)
    rows = raw.head(20).copy()
    rows["colour"] = rows["colour"].astype(object)
    rows.loc[rows.index[4], "colour"] = None
    in_batch = _reference(model, rows, monkeypatch).iloc[[4]]
    alone = rows.iloc[[4]]
    assert alone["colour"].dtype == object
    pd.testing.assert_frame_equal(_reference(model, alone, monkeypatch), in_batch, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(predict_frame(model, alone), in_batch, check_exact=False, rtol=1e-12)
    missing_row = model.preprocessor.transform(prepare_frame(alone, model.spec.features))
    unseen = alone.assign(colour="never seen")
    assert not np.array_equal(missing_row, model.preprocessor.transform(prepare_frame(unseen, model.spec.features)))
