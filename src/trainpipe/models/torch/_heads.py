"""What a torch model's output layer means for each task: class probabilities (sigmoid for binary, softmax for
multiclass), class indices, or a regression value put back on the target's scale. Shared by the torch
families (``torch_mlp``, ``text_encoder``), computed in float64 with numpy: serving needs no torch for this."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def head_proba(task: str, outputs: np.ndarray) -> np.ndarray | None:
    """Class probabilities from the output layer's logits (None for regression)."""
    import numpy as np

    if task == "regression":
        return None
    out = np.asarray(outputs, dtype=np.float64)
    if task == "binary":
        p = 1.0 / (1.0 + np.exp(-out[:, 0]))
        return np.column_stack([1.0 - p, p])
    out = out - out.max(axis=1, keepdims=True)
    e = np.exp(out)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def head_predict(task: str, outputs: np.ndarray, meta: Mapping[str, Any]) -> np.ndarray:
    """Predictions: class indices, or the regression output scaled back with the target's mean and std."""
    import numpy as np

    if task == "regression":
        out = np.asarray(outputs, dtype=np.float64)[:, 0]
        return np.asarray(out * meta["target_std"] + meta["target_mean"])
    proba = head_proba(task, outputs)
    if proba is None:  # unreachable: only regression has no probabilities
        raise ValueError(f"task {task!r}: no class probabilities")
    return np.asarray(proba.argmax(axis=1), dtype=np.int64)


__all__ = ["head_predict", "head_proba"]
