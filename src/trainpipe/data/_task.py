"""Infer the learning task and the label encoding from the target column."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_MAX_CLASSES_INTEGER = 20
_OBVIOUS_POSITIVE = {
    "1", "true", "yes", "y", "positive", "pos", "t",
}
_OBVIOUS_NEGATIVE = {"0", "false", "no", "n", "negative", "neg", "f"}


@dataclass(frozen=True)
class TaskInfo:
    """The task and, for classification, the classes in encoded order (index = encoded label)."""

    task: str
    classes: tuple[Any, ...] = ()
    positive_label: Any = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_classification(self) -> bool:
        return self.task in ("binary", "multiclass")

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": [_plain(c) for c in self.classes],
            "positive_label": _plain(self.positive_label),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInfo:
        return cls(
            task=data["task"],
            classes=tuple(data.get("classes", ())),
            positive_label=data.get("positive_label"),
            notes=tuple(data.get("notes", ())),
        )

    def encode(self, y: pd.Series) -> np.ndarray:
        """Labels -> 0..k-1 (classification) or float (regression)."""
        import numpy as np

        if not self.is_classification:
            return y.to_numpy(dtype=np.float64)
        index = {_key(c): i for i, c in enumerate(self.classes)}
        if y.dtype == object:  # mixed Python objects: 1, 1.0 and True hash alike but are distinct labels
            codes = np.fromiter((index.get(_key(v), -1) for v in y), dtype=np.int64, count=len(y))
        else:  # one dtype: look up each distinct value once
            import pandas as pd

            positions, uniques = pd.factorize(y, use_na_sentinel=False)
            lookup = np.fromiter((index.get(_key(v), -1) for v in uniques), dtype=np.int64, count=len(uniques))
            codes = lookup[positions] if len(uniques) else np.empty(0, dtype=np.int64)
        if (codes < 0).any():
            unknown = sorted({str(v) for v, c in zip(y, codes, strict=True) if c < 0})[:5]
            raise DataError(
                f"target has labels not seen in training: {unknown}. Known: {[str(c) for c in self.classes]}"
            )
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(self.classes, dtype=object)[codes]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _key(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def check_target_usable(y: pd.Series, requested: str, target: str) -> None:
    """Raise :class:`DataError` for a target no task can learn as given: dates and times (read as 2,000
    "classes"), or, on a classification task, many distinct non-integer numbers (a regression target)."""
    import numpy as np
    import pandas as pd

    values = y.dropna()
    if values.empty:
        return
    if pd.api.types.is_datetime64_any_dtype(values) or _looks_like_dates(values):
        examples = ", ".join(repr(str(v)) for v in values.drop_duplicates().head(3))
        raise DataError(
            f"data.target: column {target!r} holds dates or times (e.g. {examples}), which are neither class "
            "labels nor numbers to predict: each distinct time would become its own class. Derive the target "
            "upstream (e.g. a duration in days, or a yes/no event flag) and set data.target to that column."
        )
    if requested not in ("binary", "multiclass") or not pd.api.types.is_float_dtype(values):
        return
    numbers = values.to_numpy(dtype=np.float64)
    fractional = numbers[np.isfinite(numbers) & (numbers % 1 != 0)]
    n_unique = int(values.nunique())
    if fractional.size and n_unique > _MAX_CLASSES_INTEGER:
        raise DataError(
            f"task: {requested} but target {target!r} holds {n_unique} distinct numbers, some not whole "
            f"(e.g. {', '.join(f'{v:g}' for v in fractional[:3])}): that is a regression target, and as classes "
            "each distinct value would be its own class. Set task: regression (or leave task: auto), or bin "
            "the values into classes upstream."
        )


def _looks_like_dates(values: pd.Series, sample: int = 500) -> bool:
    """Text that parses as dates or times (ISO or other common layouts) in nearly every distinct value, with
    more distinct values than a class target has; a few date-like class names ("2020-Q1") pass."""
    import warnings

    import pandas as pd

    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return False
    uniques = pd.Series(values.drop_duplicates().head(sample)).astype(str)
    if len(uniques) <= _MAX_CLASSES_INTEGER or not uniques.str.contains(r"\d").all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(uniques, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.95)


def infer_task(y: pd.Series, requested: str, positive_label: Any, target: str) -> TaskInfo:
    """Decide binary / multiclass / regression, the class order and the positive label."""
    import pandas as pd

    if y.isna().all():
        raise DataError(f"target column {target!r} has no values.")
    check_target_usable(y, requested, target)
    values = y.dropna()
    n_unique = values.nunique()
    is_numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    notes: list[str] = []
    task = requested
    if task == "auto":
        if is_numeric:
            integral = bool((values % 1 == 0).all())
            if n_unique == 2:
                task = "binary"
            elif integral and n_unique <= _MAX_CLASSES_INTEGER:
                task = "multiclass"
            else:
                task = "regression"
        else:
            task = "binary" if n_unique == 2 else "multiclass"
        notes.append(f"task inferred as {task} from target {target!r} ({n_unique} distinct values)")
    if task == "regression":
        if not is_numeric:
            raise DataError(
                f"target {target!r} is not numeric (dtype {y.dtype}), so task 'regression' cannot use it. "
                "Set task: binary or multiclass, or choose a numeric target."
            )
        if n_unique < 2:
            raise DataError(
                f"target {target!r} has a single value ({values.iloc[0]!r}) in every row: there is nothing to "
                "learn, and the test metrics would be meaningless (r2 = 1 for a constant). Check the filter that "
                "produced the file, or the target column name."
            )
        return TaskInfo("regression", notes=tuple(notes))
    if n_unique < 2:
        raise DataError(
            f"target {target!r} has a single class ({values.iloc[0]!r}); classification needs at least two. "
            "Check the filter that produced the file, or the target column name."
        )
    classes = sorted(values.unique().tolist(), key=lambda v: (_key(v).lower(), _key(v)))
    if task == "binary":
        if n_unique != 2:
            raise DataError(f"task is binary but target {target!r} has {n_unique} classes; use multiclass.")
        positive = _pick_positive(values, classes, positive_label, target, notes)
        negative = next(c for c in classes if _key(c) != _key(positive))
        classes = [negative, positive]
        return TaskInfo("binary", tuple(_plain(c) for c in classes), _plain(positive), tuple(notes))
    if task == "multiclass" and n_unique > 1000:
        raise DataError(
            f"target {target!r} has {n_unique} classes; that looks like a regression target or an identifier. "
            "Set task: regression or pick another target."
        )
    return TaskInfo("multiclass", tuple(_plain(c) for c in classes), None, tuple(notes))


def _pick_positive(values: pd.Series, classes: list[Any], requested: Any, target: str, notes: list[str]) -> Any:
    if requested is not None:
        for c in classes:
            if _key(c) == _key(requested):
                return c
        for c in classes:
            if _key(c).lower() == _key(requested).lower():
                return c
        if isinstance(requested, bool):  # YAML reads yes/no/on/off as booleans
            wanted = _OBVIOUS_POSITIVE if requested else _OBVIOUS_NEGATIVE
            for c in classes:
                if _key(c).lower() in wanted:
                    notes.append(f"data.positive_label {requested} (YAML boolean) taken as {c!r}")
                    return c
        raise DataError(
            f"data.positive_label {requested!r} is not a value of target {target!r}; "
            f"its values are {[_key(c) for c in classes]}."
        )
    keys = [_key(c).lower() for c in classes]
    for c, k in zip(classes, keys, strict=True):
        other = keys[1 - keys.index(k)]
        if k in _OBVIOUS_POSITIVE and other in _OBVIOUS_NEGATIVE:
            return c
    counts = values.map(_key).value_counts()
    minority = counts.index[-1]
    chosen = next(c for c in classes if _key(c) == minority)
    notes.append(
        f"positive label not obvious from {[_key(c) for c in classes]}; using the minority class {minority!r}. "
        "Set data.positive_label to choose."
    )
    return chosen
