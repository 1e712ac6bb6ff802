"""Infer the learning task and the label encoding from the target column."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import DataError
from trainpipe.tasks._info import TaskInfo
from trainpipe.tasks._labels import label_key, plain
from trainpipe.tasks._registry import registered_tasks, task_for

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TaskInfo", "check_target_usable", "infer_task"]

_MAX_CLASSES_INTEGER = 20
# kept importable from here: the label helpers and TaskInfo now live in trainpipe.tasks
_plain = plain
_key = label_key


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
    asks_classes = requested in registered_tasks() and task_for(requested).is_classification
    if not asks_classes or not pd.api.types.is_float_dtype(values):
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
    """Decide binary / multiclass / regression (``requested`` ``auto``), then let that task learn its label
    encoding (class order, positive label) from the target."""
    import pandas as pd

    if y.isna().all():
        raise DataError(f"target column {target!r} has no values.")
    check_target_usable(y, requested, target)
    notes: list[str] = []
    task = requested
    if task == "auto":
        values = y.dropna()
        n_unique = values.nunique()
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
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
    return task_for(task).label_info(y, positive_label, target, notes)
