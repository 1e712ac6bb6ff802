"""Label keys: how a class label read from a file is compared with the classes a model was trained on."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (JSON-friendly); anything else unchanged."""
    return value.item() if hasattr(value, "item") else value


def label_key(value: Any) -> str:
    """The text a label is matched by: ``1``, ``1.0`` and ``np.int64(1)`` are the same class."""
    value = plain(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
