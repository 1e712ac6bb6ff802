"""Retrieval metrics of a ranking model over the full catalogue, per test user, and the baselines beside it.

The metrics read two aligned arrays, one entry per test user (the "rows" of a ranking test split):

- ``relevant``: an object array of frozensets, the user's held-out positive items;
- ``top``: an (users x K) array of the recommended item ids, best first (training items already excluded).

``recall@k`` = hits in the top k / min(k, |relevant|) (the usual capped recall, 1.0 reachable);
``ndcg@k`` with binary gains; ``map@k`` = mean of precision@i at each hit / min(k, |relevant|);
``mrr`` = 1 / rank of the first hit within the top K (0 when none); ``precision@k``, ``hit_rate@k``;
``coverage@k`` = distinct items recommended in anyone's top k / catalogue size (a model-level number);
``popularity_bias@k`` = mean training popularity percentile of the recommended items (0.5 = like a random
pick, 1 = only the most popular; lower is less biased).

Every metric but coverage and popularity is a mean over users, so the gate's paired bootstrap over the
"rows" of these arrays resamples test users (the ranking task's champion comparison).
Only numpy here; the baselines import scipy/``implicit``/scikit-learn when run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

CUTOFFS = (1, 3, 5, 10, 20, 50, 100)  # the k of the registered metric names (recall@10, ...)
AT_K = ("recall", "ndcg", "map", "precision", "hit_rate", "coverage", "popularity_bias")
LOWER_IS_BETTER = frozenset({"popularity_bias"})
DEFAULT_K = (10,)
_NAME = re.compile(r"^(?P<kind>[a-z_]+)@(?P<k>\d+)$")


def metric_names() -> list[tuple[str, bool]]:
    """Every ranking metric name the metric registry knows, with greater_is_better."""
    out = [(f"{kind}@{k}", kind not in LOWER_IS_BETTER) for kind in AT_K for k in CUTOFFS]
    return [*out, ("mrr", True)]


def parse(name: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``"mrr"`` -> ``("mrr", None)``."""
    m = _NAME.match(name)
    return (m["kind"], int(m["k"])) if m else (name, None)


def cutoffs(metrics: Iterable[str], ks: Sequence[int] | None) -> list[int]:
    """The cut-offs to compute: ``evaluation.k`` (default 10) and those the metric names use."""
    found = {k for k in (ks or DEFAULT_K)}
    found |= {k for _, k in map(parse, metrics) if k is not None}
    return sorted(found)


def hits_matrix(relevant: np.ndarray, top: np.ndarray) -> np.ndarray:
    """(users x K) booleans: whether the item at each rank is relevant for that user."""
    import numpy as np

    out = np.zeros(top.shape, dtype=bool)
    for i, (rel, row) in enumerate(zip(relevant, top, strict=True)):
        if rel:
            out[i] = [item in rel for item in row.tolist()]
    return out


def per_user(kind: str, k: int | None, relevant: np.ndarray, top: np.ndarray,
             hits: np.ndarray | None = None) -> np.ndarray:
    """One value per user of a per-user metric (recall, ndcg, map, precision, hit_rate at k; mrr)."""
    import numpy as np

    hits = hits_matrix(relevant, top) if hits is None else hits
    n_rel = np.array([len(r) for r in relevant], dtype=np.float64)
    if kind == "mrr":
        first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
        return np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
    assert k is not None
    h = hits[:, :k].astype(np.float64)
    if h.shape[1] < k:  # fewer recommendations than k: the missing ranks are misses
        h = np.pad(h, ((0, 0), (0, k - h.shape[1])))
    denom = np.maximum(np.minimum(n_rel, k), 1.0)
    if kind == "recall":
        return h.sum(axis=1) / denom
    if kind == "precision":
        return h.sum(axis=1) / k
    if kind == "hit_rate":
        return (h.sum(axis=1) > 0).astype(np.float64)
    if kind == "ndcg":
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        dcg = (h * discounts).sum(axis=1)
        ideal = np.array([discounts[: int(min(n, k))].sum() for n in n_rel])
        return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)
    if kind == "map":
        precision_at = np.cumsum(h, axis=1) / np.arange(1, k + 1)
        return (precision_at * h).sum(axis=1) / denom
    raise ValueError(f"unknown per-user ranking metric {kind!r}")


def metric_value(name: str, relevant: np.ndarray, top: np.ndarray, n_items: int = 0,
                 popularity: Mapping[Any, float] | None = None) -> float:
    """The value of registry metric ``name`` over these users (``n_items``: the catalogue size, for coverage;
    ``popularity``: item -> training popularity percentile, for popularity_bias)."""
    import numpy as np

    kind, k = parse(name)
    if len(relevant) == 0:
        return float("nan")
    if kind == "coverage":
        assert k is not None
        shown = {item for row in top[:, :k].tolist() for item in row}
        size = n_items or len(shown | {i for r in relevant for i in r})
        return len(shown) / max(size, 1)
    if kind == "popularity_bias":
        assert k is not None
        if popularity is None:
            return float("nan")
        values = [popularity.get(item, 0.0) for row in top[:, :k].tolist() for item in row]
        return float(np.mean(values)) if values else float("nan")
    return float(per_user(kind, k, relevant, top).mean())


def registry_fn(name: str) -> Any:
    """The metric registry's function for ``name``: ``fn(relevant, top, proba, n_items)`` (see the module doc),
    what the gate's paired bootstrap calls on resampled users."""

    def fn(y: Any, pred: Any, proba: Any, k: int) -> float:
        return metric_value(name, y, pred, n_items=int(k or 0))

    fn.__name__ = f"_ranking_{name}"
    return fn


def popularity_percentiles(train_items: Iterable[Any]) -> dict[Any, float]:
    """Item -> its popularity percentile among the training items (the most popular ~1.0)."""
    import pandas as pd

    counts = pd.Series(list(train_items)).value_counts()
    ranks = counts.rank(pct=True, method="average")
    return {k: float(v) for k, v in ranks.items()}


def evaluate_top(names: Sequence[str], relevant: np.ndarray, top: np.ndarray, n_items: int,
                 popularity: Mapping[Any, float]) -> dict[str, float | None]:
    """Every metric of ``names`` over these users (None where undefined, e.g. no test users)."""
    out: dict[str, float | None] = {}
    for name in names:
        value = metric_value(name, relevant, top, n_items=n_items, popularity=popularity)
        out[name] = None if math.isnan(value) else value
    return out


def activity_slices(train_counts: Mapping[Any, int], users: Sequence[Any]) -> dict[str, list[int]]:
    """Test-user positions by training activity: cold (< 5 training positives), medium (5-49), heavy (>= 50)."""
    out: dict[str, list[int]] = {"cold (<5)": [], "medium (5-49)": [], "heavy (>=50)": []}
    for i, u in enumerate(users):
        n = int(train_counts.get(u, 0))
        key = "cold (<5)" if n < 5 else "medium (5-49)" if n < 50 else "heavy (>=50)"
        out[key].append(i)
    return out
