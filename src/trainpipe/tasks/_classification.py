"""Binary and multiclass classification: labels encoded 0..k-1, predictions from class probabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from trainpipe._exceptions import DataError
from trainpipe.tasks._base import Prediction, Task
from trainpipe.tasks._labels import label_key, plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.models import TrainedModel
    from trainpipe.tasks._info import TaskInfo

_OBVIOUS_POSITIVE = {"1", "true", "yes", "y", "positive", "pos", "t"}
_OBVIOUS_NEGATIVE = {"0", "false", "no", "n", "negative", "neg", "f"}
_MAX_CLASSES = 1000
# For a name that has no meaning on a multiclass target: the averaged names to use there instead.
_AVERAGED = {
    "f1": ("f1_macro", "f1_weighted", "f1_micro"),
    "precision": ("precision_macro", "precision_weighted"),
    "recall": ("recall_macro", "recall_weighted"),
}


class ClassificationTask(Task):
    """Shared by binary and multiclass: the classes are sorted labels, encoded by position."""

    is_classification: ClassVar[bool] = True
    plots: ClassVar[tuple[str, ...]] = ("confusion_matrix", "roc_pr")

    def _classes(self, values: pd.Series, target: str) -> list[Any]:
        n_unique = values.nunique()
        if n_unique < 2:
            raise DataError(
                f"target {target!r} has a single class ({values.iloc[0]!r}); classification needs at least two. "
                "Check the filter that produced the file, or the target column name."
            )
        return sorted(values.unique().tolist(), key=lambda v: (label_key(v).lower(), label_key(v)))

    def encode(self, info: TaskInfo, y: pd.Series) -> np.ndarray:
        import numpy as np

        index = {label_key(c): i for i, c in enumerate(info.classes)}
        if y.dtype == object:  # mixed Python objects: 1, 1.0 and True hash alike but are distinct labels
            codes = np.fromiter((index.get(label_key(v), -1) for v in y), dtype=np.int64, count=len(y))
        else:  # one dtype: look up each distinct value once
            import pandas as pd

            positions, uniques = pd.factorize(y, use_na_sentinel=False)
            lookup = np.fromiter((index.get(label_key(v), -1) for v in uniques), dtype=np.int64,
                                 count=len(uniques))
            codes = lookup[positions] if len(uniques) else np.empty(0, dtype=np.int64)
        if (codes < 0).any():
            unknown = sorted({str(v) for v, c in zip(y, codes, strict=True) if c < 0})[:5]
            raise DataError(
                f"target has labels not seen in training: {unknown}. Known: {[str(c) for c in info.classes]}"
            )
        return codes

    def decode(self, info: TaskInfo, codes: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(info.classes, dtype=object)[codes]

    def predict_matrix(self, adapter: Any, X: Any) -> Prediction:
        import numpy as np

        proba = adapter.predict_proba(X)
        if proba is not None:
            pred = np.argmax(proba, axis=1).astype(np.int64)
            return Prediction(pred, proba, pred)
        output = adapter.predict(X)  # a classifier without probabilities (LinearSVC, RidgeClassifier)
        return Prediction(np.asarray(output, dtype=np.int64), None, output)

    def labels(self, info: TaskInfo, output: Any) -> np.ndarray:
        import numpy as np

        return self.decode(info, np.asarray(output, dtype=np.int64))

    def serving_output(self, model: TrainedModel, raw: pd.DataFrame) -> Any:
        return model.predict_proba(raw)

    def columns(self, info: TaskInfo, prediction: Prediction, index: Any = None) -> pd.DataFrame:
        import pandas as pd

        columns: dict[str, Any] = {"prediction": self.decode(info, prediction.pred)}
        if prediction.proba is not None:  # built at once: 100+ classes, one frame
            proba = prediction.proba
            columns.update({f"proba_{cls}": proba[:, i] for i, cls in enumerate(info.classes)})
        return pd.DataFrame(columns, index=index)


class BinaryTask(ClassificationTask):
    """Two classes; code 1 is the positive label (``data.positive_label``, else an obvious or the minority one)."""

    name: ClassVar[str] = "binary"
    default_metrics: ClassVar[tuple[str, ...]] = ("roc_auc", "pr_auc", "log_loss", "accuracy", "f1")
    tuning_metric: ClassVar[str] = "roc_auc"

    def label_info(self, y: pd.Series, positive_label: Any, target: str, notes: list[str]) -> TaskInfo:
        from trainpipe.tasks._info import TaskInfo

        values = y.dropna()
        classes = self._classes(values, target)
        n_unique = values.nunique()
        if n_unique != 2:
            raise DataError(f"task is binary but target {target!r} has {n_unique} classes; use multiclass.")
        positive = _pick_positive(values, classes, positive_label, target, notes)
        negative = next(c for c in classes if label_key(c) != label_key(positive))
        return TaskInfo(self.name, (plain(negative), plain(positive)), plain(positive), tuple(notes))


class MulticlassTask(ClassificationTask):
    """Three or more classes (or two, when asked for), in sorted order; no positive class."""

    name: ClassVar[str] = "multiclass"
    default_metrics: ClassVar[tuple[str, ...]] = ("roc_auc", "pr_auc", "log_loss", "accuracy", "f1_macro")
    tuning_metric: ClassVar[str] = "log_loss"

    def label_info(self, y: pd.Series, positive_label: Any, target: str, notes: list[str]) -> TaskInfo:
        from trainpipe.tasks._info import TaskInfo

        values = y.dropna()
        classes = self._classes(values, target)
        n_unique = values.nunique()
        if n_unique > _MAX_CLASSES:
            raise DataError(
                f"target {target!r} has {n_unique} classes; that looks like a regression target or an identifier. "
                "Set task: regression or pick another target."
            )
        return TaskInfo(self.name, tuple(plain(c) for c in classes), None, tuple(notes))

    def metric_hint(self, metric: str) -> str:
        alternatives = _AVERAGED.get(metric)
        if alternatives is None:
            return ""
        return (f"{metric!r} is the positive class's {metric} of a binary target; a multiclass target has no "
                f"positive class: use {alternatives[0]!r} (the unweighted mean over classes), or "
                f"{' or '.join(repr(a) for a in alternatives[1:])}. ")


def _pick_positive(values: pd.Series, classes: list[Any], requested: Any, target: str, notes: list[str]) -> Any:
    if requested is not None:
        for c in classes:
            if label_key(c) == label_key(requested):
                return c
        for c in classes:
            if label_key(c).lower() == label_key(requested).lower():
                return c
        if isinstance(requested, bool):  # YAML reads yes/no/on/off as booleans
            wanted = _OBVIOUS_POSITIVE if requested else _OBVIOUS_NEGATIVE
            for c in classes:
                if label_key(c).lower() in wanted:
                    notes.append(f"data.positive_label {requested} (YAML boolean) taken as {c!r}")
                    return c
        raise DataError(
            f"data.positive_label {requested!r} is not a value of target {target!r}; "
            f"its values are {[label_key(c) for c in classes]}."
        )
    keys = [label_key(c).lower() for c in classes]
    for c, k in zip(classes, keys, strict=True):
        other = keys[1 - keys.index(k)]
        if k in _OBVIOUS_POSITIVE and other in _OBVIOUS_NEGATIVE:
            return c
    counts = values.map(label_key).value_counts()
    minority = counts.index[-1]
    chosen = next(c for c in classes if label_key(c) == minority)
    notes.append(
        f"positive label not obvious from {[label_key(c) for c in classes]}; using the minority class {minority!r}. "
        "Set data.positive_label to choose."
    )
    return chosen
