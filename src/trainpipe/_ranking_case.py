"""The ranking task's data for ``trainpipe.testing.check_family``: generated interactions of users in taste
groups, the user and item tables, and how a ranking family's output is checked (top items per user, from the
catalogue, no seen item, best first)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from trainpipe.models import ModelFamily, TrainedModel


def interactions(n_users: int, n_items: int, per_user: int, seed: int) -> Any:
    """Users in 4 taste groups, each mostly choosing items of its own quarter of the catalogue; items carry a
    tag list (genres) and a number (year)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        mine = [i for i in range(n_items) if i % 4 == u % 4]
        for t in range(per_user):
            item = int(rng.choice(mine)) if rng.random() < 0.9 else int(rng.integers(n_items))
            rows.append((f"u{u}", item, t))
    df = pd.DataFrame(rows, columns=["user", "item", "t"])
    tags = ["Drama|Romance", "Action|Thriller", "Comedy", "Animation|Comedy"]
    df["genres"] = df["item"].map(lambda i: tags[i % 4])
    df["year"] = df["item"].map(lambda i: 1980.0 + i)
    return df


class RankingCase:
    """What check_family needs for ``task: ranking``: the config, ``X``/``X_val`` (RankingData), the users to
    recommend for (``X_test`` and ``raw``), and the checks of a ranking family's output."""

    def __init__(self, family: ModelFamily, task: str, model_type: str, params: Mapping[str, Any],
                 training: Mapping[str, Any], n: int) -> None:
        import numpy as np
        import pandas as pd

        from trainpipe.config import config_from_dict
        from trainpipe.data._interactions import RankingData, entity_table
        from trainpipe.features import FeatureSpec
        from trainpipe.tasks._info import TaskInfo

        self.config = config_from_dict({
            "name": "check-family", "task": "ranking",
            "data": {"source": "a.csv", "user": "user", "item": "item"}, "features": {"item": ["genres", "year"]},
            "model": {"type": model_type, "params": dict(params)}, "training": dict(training),
        }).config
        n_users = max(8, n // 5)
        df = interactions(n_users, 24, 8, seed=7)
        last = df.groupby("user")["t"].transform("max")
        train, val = df[df["t"] < last], df[df["t"] == last]
        users, items = entity_table(df, "user", []), entity_table(df, "item", ["genres", "year"])

        def data(frame: pd.DataFrame) -> RankingData:
            return RankingData(frame[["user", "item"]].reset_index(drop=True), "user", "item", users, items,
                               item_features=["genres", "year"])

        self.task = TaskInfo("ranking")
        self.X, self.X_val = data(train), data(val)
        self.y = self.y_val = np.empty(0)
        self.raw = pd.DataFrame({"user": users["user"].head(6).tolist()})
        self.X_test = self.test = self.raw
        self.train = train
        self.n_items = len(items)
        self.categorical: list[int] = []
        self.spec = FeatureSpec(numeric=(), categorical=("user",))

    def adapter(self, params: Mapping[str, Any] | None = None) -> Any:
        from trainpipe.models import create_adapter

        model = self.config.model if params is None else self.config.model.model_copy(update={"params": params})
        return create_adapter(self.task, model, self.config.training)

    def one_row_validation(self) -> tuple[Any, Any]:
        from dataclasses import replace

        return replace(self.X_val, interactions=self.X_val.interactions.head(1)), self.y_val

    def check_output(self, pred: np.ndarray, proba: np.ndarray | None) -> str | None:
        """Why a ranking family's ``predict`` output is wrong (None: it is right)."""
        import numpy as np

        pred = np.asarray(pred, dtype=object)
        if proba is not None:
            return "predict_proba: a ranking model has no class probabilities (expected None)"
        if pred.ndim != 2 or pred.shape[0] != len(self.raw):
            return f"predict: expected (users x k) item ids for {len(self.raw)} users, got shape {pred.shape}"
        catalogue = set(self.X.items["item"].tolist())
        if not set(pred.ravel().tolist()) <= catalogue:
            return "predict: recommended items outside the catalogue"
        for user, row in zip(self.raw["user"], pred, strict=True):
            seen = set(self.train.loc[self.train["user"] == user, "item"])
            if seen & set(row.tolist()):
                return f"predict: user {user!r} was recommended items seen in training"
            if len(set(row.tolist())) != len(row):
                return f"predict: user {user!r} got the same item twice"
        return None

    def trained_model(self, family: ModelFamily, model_type: str, adapter: Any) -> TrainedModel:
        from trainpipe.models import ModelSpec, TrainedModel

        spec = ModelSpec(model_type, family.name, self.task, self.spec, feature_names=["user"],
                         input_dtypes={"user": "str"})
        return TrainedModel(spec, None, adapter)

    def save_model(self, model: TrainedModel, directory: Path) -> None:
        import json

        from trainpipe.models._trained import SPEC_FILE

        model.adapter.save(directory)
        (directory / SPEC_FILE).write_text(json.dumps(model.spec.to_dict(), indent=2, default=str))
