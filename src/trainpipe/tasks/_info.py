"""``TaskInfo``: the task of a trained model and its label encoding, as stored in a model's ``spec.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainpipe.tasks._labels import plain
from trainpipe.tasks._registry import task_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.tasks._base import Task


@dataclass(frozen=True)
class TaskInfo:
    """The task and, for classification, the classes in encoded order (index = encoded label).

    This is data (``to_dict``/``from_dict`` is the form saved models keep); the behaviour belongs to the
    :class:`~trainpipe.tasks.Task` named by ``task``, reached through :attr:`kind`.
    """

    task: str
    classes: tuple[Any, ...] = ()
    positive_label: Any = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def kind(self) -> Task:
        """The :class:`~trainpipe.tasks.Task` object for this task's name."""
        return task_for(self.task)

    @property
    def is_classification(self) -> bool:
        return self.kind.is_classification

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": [plain(c) for c in self.classes],
            "positive_label": plain(self.positive_label),
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
        return self.kind.encode(self, y)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Encoded labels -> the labels as in the training data."""
        return self.kind.decode(self, codes)
