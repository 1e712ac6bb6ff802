"""The ranking evaluation: the model's full-catalogue metrics on the test users, beside two baselines computed
on the same split in the same step, and per-slice tables.

Baselines (both fitted on the training interactions, ranking the same catalogue with the same seen items --
training and validation -- excluded):

- ``most_popular``: the items with the most training interactions;
- ``als``: ``implicit``'s alternating least squares on the user x item matrix, when ``implicit`` is installed;
  else ``svd``: scikit-learn's TruncatedSVD of that matrix (user factors x item factors).

Slices: test users by training activity (cold < 5, medium 5-49, heavy >= 50 interactions) and, when an item
feature holds tags (``"Action|Comedy"``), per tag of the held-out items (the 10 most frequent): a user counts in
a tag's slice with the held-out items of that tag only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trainpipe.evaluation import _ranking as R

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.config import PipelineConfig
    from trainpipe.models import TrainedModel

TOP = 100
N_TAG_SLICES = 10


def metric_list(cfg: PipelineConfig) -> list[str]:
    """``evaluation.metrics`` (or the task's defaults), each ``evaluation.k`` cut-off of recall/ndcg/map/coverage,
    and the gate's metrics."""
    from trainpipe.evaluation._metrics import gate_metric_names, metrics_for

    names = metrics_for("ranking", cfg.evaluation.metrics,
                        also=gate_metric_names(cfg.gate.thresholds, cfg.gate.champion.metric))
    for k in cfg.evaluation.k or []:
        names += [f"{kind}@{k}" for kind in ("recall", "ndcg", "map", "coverage") if f"{kind}@{k}" not in names]
    return names


class _Encoded:
    """Integer codes of the users and items of the training data (for the matrix baselines)."""

    def __init__(self, train: pd.DataFrame, user: str, item: str, catalogue: Sequence[Any]) -> None:
        self.items = list(catalogue)
        self.item_index = {v: i for i, v in enumerate(self.items)}
        self.users = list(dict.fromkeys(train[user].tolist()))
        self.user_index = {v: i for i, v in enumerate(self.users)}


def _matrix(frame: pd.DataFrame, user: str, item: str, enc: _Encoded, users_extra: bool = False) -> Any:
    import numpy as np
    from scipy import sparse

    u = frame[user].map(enc.user_index)
    i = frame[item].map(enc.item_index)
    ok = u.notna() & i.notna()
    return sparse.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32),
                              (u[ok].to_numpy(dtype=np.int64), i[ok].to_numpy(dtype=np.int64))),
                             shape=(len(enc.users), len(enc.items)))


def _top_from_scores(scores: np.ndarray, seen: Any, rows: np.ndarray, k: int) -> np.ndarray:
    """Top-k columns of each row's scores with the row's seen columns excluded."""
    import numpy as np

    scores = scores.astype(np.float64, copy=True)
    sub = seen[rows]
    r, c = sub.nonzero()
    scores[r, c] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def baselines(train: pd.DataFrame, seen_frame: pd.DataFrame, users: Sequence[Any], user: str, item: str,
              catalogue: Sequence[Any], seed: int, k: int = TOP) -> dict[str, np.ndarray]:
    """``{name: top items (users x k, item ids)}`` of the most-popular and matrix-factorisation baselines."""
    import numpy as np

    enc = _Encoded(train, user, item, catalogue)
    X = _matrix(train, user, item, enc)
    seen = _matrix(seen_frame, user, item, enc)
    ids = np.asarray(enc.items, dtype=object)
    rows = np.array([enc.user_index.get(u, -1) for u in users], dtype=np.int64)
    known = rows >= 0
    safe = np.where(known, rows, 0)
    counts = np.asarray(X.sum(axis=0)).ravel()
    pop_scores = np.tile(counts, (len(users), 1))
    out = {"most_popular": ids[_top_from_scores(pop_scores, seen, safe, k)]}
    try:
        import implicit  # noqa: F401
    except ImportError:
        out["svd"] = _svd(X, seen, safe, k, seed, ids)
    else:
        out["als"] = _als(X, seen, safe, k, seed, ids)
    for name in out:
        out[name][~known] = out["most_popular"][~known]
    return out


def _als(X: Any, seen: Any, rows: np.ndarray, k: int, seed: int, ids: np.ndarray) -> np.ndarray:
    import numpy as np
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=64, regularization=0.05, alpha=2.0, iterations=15, random_state=seed,
                                    num_threads=1, calculate_training_loss=False)
    model.fit(X, show_progress=False)
    scores = np.asarray(model.user_factors[rows] @ model.item_factors.T)
    return ids[_top_from_scores(scores, seen, rows, k)]


def _svd(X: Any, seen: Any, rows: np.ndarray, k: int, seed: int, ids: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD

    n = max(1, min(64, min(X.shape) - 1))
    svd = TruncatedSVD(n_components=n, random_state=seed)
    user_f = svd.fit_transform(X)
    scores = user_f[rows] @ svd.components_
    return ids[_top_from_scores(scores, seen, rows, k)]


def tag_column(items: pd.DataFrame, columns: Sequence[str]) -> str | None:
    """The first item feature holding ``|``-separated tags (genres), if any."""
    for col in columns:
        if col in items.columns and items[col].astype("string").fillna("").str.contains("|", regex=False).any():
            return col
    return None


def _slice_rows(names: Sequence[str], relevant: np.ndarray, tops: Mapping[str, np.ndarray], groups: Mapping[str,
                Any], n_items: int) -> list[dict[str, Any]]:
    import numpy as np

    rows = []
    per_user_names = [n for n in names if R.parse(n)[0] not in ("coverage", "popularity_bias")]
    for label, (idx, rel) in groups.items():
        idx = np.asarray(idx, dtype=np.int64)
        row: dict[str, Any] = {"slice": label, "count": len(idx)}
        for name in per_user_names:
            value = R.metric_value(name, rel, tops["model"][idx], n_items=n_items) if len(idx) else None
            row[name] = value
            for base, top in tops.items():
                if base != "model" and len(idx):
                    row[f"{base}:{name}"] = R.metric_value(name, rel, top[idx], n_items=n_items)
        rows.append(row)
    return rows


def evaluate_ranking(model: TrainedModel, train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame,
                     cfg: PipelineConfig, items: pd.DataFrame) -> dict[str, Any]:
    """metrics.json of a ranking model: ``metrics`` (the model's), ``baselines``, ``slices``, ``latency``,
    ``table_markdown`` (the model beside the baselines)."""
    import numpy as np
    import pandas as pd

    from trainpipe.tasks._ranking import ranking_adapter, relevant_sets

    user, item = str(cfg.data.user), str(cfg.data.item)
    names = metric_list(cfg)
    k_top = max([TOP, *R.cutoffs(names, cfg.evaluation.k)])
    users, relevant = relevant_sets(test, user, item)
    ranker = ranking_adapter(model)
    top, _, _ = ranker.top_k(users, k_top)
    catalogue = list(ranker.meta["item_ids"])
    seen = pd.concat([train, val], ignore_index=True)
    base = baselines(train, seen, users, user, item, catalogue, cfg.data.split.seed, k=k_top)
    popularity = R.popularity_percentiles(train[item].tolist())
    n_items = len(catalogue)
    metrics = R.evaluate_top(names, relevant, top, n_items, popularity)
    base_metrics = {b: R.evaluate_top(names, relevant, t, n_items, popularity) for b, t in base.items()}
    tops = {"model": top, **base}
    train_counts = train.groupby(user).size().to_dict()
    activity = R.activity_slices(train_counts, users)
    slices: dict[str, list[dict[str, Any]]] = {
        "user_activity": _slice_rows(names, relevant, tops, {k: (v, relevant[v]) for k, v in activity.items()},
                                     n_items)}
    tags = tag_column(items, list(cfg.features.item))
    if tags is not None:
        item_tags = {row[item]: set(str(row[tags]).split("|")) for row in items[[item, tags]].to_dict("records")}
        counted = pd.Series([t for r in relevant for i in r for t in item_tags.get(i, ())]).value_counts()
        groups = {}
        for tag in counted.index[:N_TAG_SLICES]:
            rel = np.empty(len(relevant), dtype=object)
            rel[:] = [frozenset(i for i in r if tag in item_tags.get(i, ())) for r in relevant]
            idx = [j for j, r in enumerate(rel) if r]
            sub = np.empty(len(idx), dtype=object)
            sub[:] = [rel[j] for j in idx]
            groups[f"{tags}={tag}"] = (idx, sub)
        slices[f"item_{tags}"] = _slice_rows(names, relevant, tops, groups, n_items)
    out: dict[str, Any] = {"n_test": len(test), "n_test_users": len(users), "n_items": n_items, "metrics": metrics,
                           "baselines": base_metrics, "slices": slices}
    if cfg.evaluation.latency and len(users):
        from trainpipe.evaluation._latency import measure_latency

        frame = pd.DataFrame({user: users})
        out["latency"] = measure_latency(lambda rows: model.task.kind.serving_output(model, rows), frame,
                                         batch=False)
    out["table_markdown"] = table_markdown(metrics, base_metrics)
    return out


def table_markdown(metrics: Mapping[str, float | None], baselines_: Mapping[str, Mapping[str, float | None]]) -> str:
    """| metric | model | most_popular | als | , with each row's best marked."""
    names = list(metrics)
    cols = ["model", *baselines_]
    lines = ["| metric | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name in names:
        values = [metrics[name], *(b.get(name) for b in baselines_.values())]
        shown = ["-" if v is None else f"{v:.4f}" for v in values]
        lines.append(f"| {name} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"
