"""Ranking: recommend items to users from user-item interactions (``task: ranking``).

What the task decides for the rest of trainpipe:

- its steps: interactions are not a feature matrix, so validate / split / preprocess / train / evaluate are
  the ranking ones of :mod:`trainpipe.pipeline._steps_ranking` (named by :attr:`RankingTask.steps_module`,
  same step names and artifacts, so drift, gate and register run unchanged);
- the "rows" of a test split are users: :meth:`RankingTask.score` gives, per test user, the held-out positive
  items (``y``, frozensets) and the model's top items (``pred``); the ranking metrics read these, and the
  gate's paired bootstrap over rows resamples test users;
- what ``predict`` returns: for a frame of user ids, the top-k items per user (long format: ``user``, ``rank``,
  ``item``, ``score``, ``fallback``: ``popular`` for an unknown user, who gets the most popular items); for a
  frame with the item column too, the score of each (user, item) pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from trainpipe._exceptions import DataError
from trainpipe.tasks._base import Prediction, Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.models import TrainedModel
    from trainpipe.tasks._info import TaskInfo

TOP_FOR_METRICS = 100  # the top items scored per test user: the largest registered cut-off (mrr is within it)


@runtime_checkable
class RankingAdapter(Protocol):
    """What a ranking model family's adapter offers besides the ModelAdapter protocol (see ``two_tower``):
    ``meta`` holds ``user``/``item`` (column names), ``item_ids``, ``item_id_kind`` and ``top_k``."""

    meta: dict[str, Any]

    def top_k(self, users: Any, k: int, *, exclude_seen: bool = True,
              use_faiss: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def score_pairs(self, users: Any, items: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def ranking_adapter(model: TrainedModel) -> RankingAdapter:
    """The model's adapter as a :class:`RankingAdapter`; a DataError for a model of another family."""
    adapter = model.adapter
    if not isinstance(adapter, RankingAdapter):
        raise DataError(f"a ranking model needs a family that recommends items (two_tower); this model's family "
                        f"{model.spec.family!r} does not")
    return adapter


class RankingTask(Task):
    name: ClassVar[str] = "ranking"
    default_metrics: ClassVar[tuple[str, ...]] = ("ndcg@10", "recall@10", "map@10", "mrr", "coverage@10",
                                                  "popularity_bias@10")
    tuning_metric: ClassVar[str] = "ndcg@10"
    plots: ClassVar[tuple[str, ...]] = ()
    uses_preprocessor: ClassVar[bool] = False
    steps_module: ClassVar[str | None] = "trainpipe.pipeline._steps_ranking"

    @property
    def stratify(self) -> bool:
        return False

    def label_info(self, y: pd.Series, positive_label: Any, target: str, notes: list[str]) -> TaskInfo:
        from trainpipe.tasks._info import TaskInfo

        return TaskInfo(self.name, notes=tuple(notes))

    def encode(self, info: TaskInfo, y: pd.Series) -> np.ndarray:
        return y.to_numpy()

    def decode(self, info: TaskInfo, codes: np.ndarray) -> np.ndarray:
        return codes

    def labels(self, info: TaskInfo, output: Any) -> np.ndarray:
        return output

    def predict_matrix(self, adapter: Any, X: Any) -> Prediction:
        top = adapter.predict(X)
        return Prediction(top, None, top)

    def predict(self, model: TrainedModel, raw: pd.DataFrame) -> Prediction:
        return self.predict_matrix(model.adapter, raw)

    def serving_output(self, model: TrainedModel, raw: pd.DataFrame) -> Any:
        return self.predict_frame(model, raw)

    def columns(self, info: TaskInfo, prediction: Prediction, index: Any = None) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"prediction": [list(r) for r in prediction.output]}, index=index)

    # --- what predict returns ---------------------------------------------------------------------------------

    def predict_frame(self, model: TrainedModel, raw: pd.DataFrame,
                      params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Top-k items per user, or (user, item) pair scores when ``raw`` has the item column too."""
        import numpy as np
        import pandas as pd

        adapter = ranking_adapter(model)
        user, item = adapter.meta["user"], adapter.meta["item"]
        if user not in raw.columns:
            raise DataError(f"predict: the ranking model needs the user id column {user!r}; the input has "
                            f"{list(map(str, raw.columns))[:30]}")
        if item in raw.columns and raw[item].notna().any():
            scores, known_user, known_item = adapter.score_pairs(raw[user].tolist(), raw[item].tolist())
            note = np.where(~known_user, "unknown user", np.where(~known_item, "unknown item", ""))
            return pd.DataFrame({user: raw[user].to_numpy(), item: raw[item].to_numpy(), "score": scores,
                                 "note": note}, index=raw.index)
        k = int((params or {}).get("top_k") or adapter.meta.get("top_k", 10))
        if k < 1:
            raise DataError(f"predict: top_k must be >= 1, got {k}")
        users = raw[user].tolist()
        items, scores, known = adapter.top_k(users, k)
        width = items.shape[1] if items.ndim == 2 else 0
        return pd.DataFrame({
            user: np.repeat(np.asarray(raw[user].to_numpy(), dtype=object), width),
            "rank": np.tile(np.arange(1, width + 1), len(users)),
            "item": items.reshape(-1),
            "score": scores.reshape(-1),
            "fallback": np.repeat(np.where(known, "", "popular: unknown user"), width),
        })

    def optional_inputs(self, model: TrainedModel) -> dict[str, str]:
        """The item column: given, ``predict`` scores (user, item) pairs instead of listing the top items."""
        meta = ranking_adapter(model).meta
        return {meta["item"]: "long" if meta.get("item_id_kind") == "int" else "string"}

    def serving_params(self, model: TrainedModel) -> dict[str, Any]:
        return {"top_k": int(ranking_adapter(model).meta.get("top_k", 10))}

    def conformance_case(self, family: Any, task: str, model_type: str, params: Mapping[str, Any],
                         training: Mapping[str, Any], rows: int) -> Any:
        import importlib

        # by name: the conformance kit's code (config loading, generated data) must not travel in the inference
        # code bundled with a registered model, which follows import statements
        case = importlib.import_module("trainpipe._ranking_case")
        return case.RankingCase(family, task, model_type, params, training, rows)

    def score(self, model: TrainedModel, frame: pd.DataFrame, target: str) -> tuple[np.ndarray, Prediction]:
        """Per test user: the held-out positives (``y``, frozensets of item ids) and the model's top items
        (training items excluded)."""
        ranker = ranking_adapter(model)
        users, relevant = relevant_sets(frame, ranker.meta["user"], ranker.meta["item"])
        top, _, _ = ranker.top_k(users, TOP_FOR_METRICS)
        return relevant, Prediction(top, None, top)

    # --- metrics and the champion ---------------------------------------------------------------------------

    def metric_hint(self, metric: str) -> str:
        if metric in ("recall", "precision", "accuracy", "roc_auc"):
            return f"A ranking task is scored at a cut-off: use {metric}@10 or ndcg@10. " if metric in (
                "recall", "precision") else "A ranking task is scored at a cut-off, e.g. ndcg@10 or recall@10. "
        return ""

    def champion_mismatch(self, champion: TaskInfo, challenger: TaskInfo) -> str | None:
        if champion.task != challenger.task:
            return f"is a {champion.task} model, the challenger a {challenger.task} one"
        return None


def relevant_sets(frame: pd.DataFrame, user: str, item: str) -> tuple[list[Any], np.ndarray]:
    """Users of ``frame`` (first-seen order) and, aligned, the frozenset of each one's items."""
    import numpy as np

    groups = frame.groupby(user, sort=False)[item].agg(lambda s: frozenset(s.tolist()))
    out = np.empty(len(groups), dtype=object)
    out[:] = list(groups.to_numpy())
    return groups.index.tolist(), out
