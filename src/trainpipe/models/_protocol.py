"""The one Protocol every model family implements, and what a fit reports back."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from trainpipe.config import TrainingConfig
    from trainpipe.data import TaskInfo

RoundCallback = Callable[[int, int, Mapping[str, float]], None]


@dataclass
class FitReport:
    """Per-round validation curves (metric -> values), the best round, the effective parameters, notes."""

    history: dict[str, list[float]] = field(default_factory=dict)
    best_iteration: int | None = None
    n_iterations: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the user should know, e.g. "resumed from ..."


@runtime_checkable
class ModelAdapter(Protocol):
    """One model family. ``X`` is the preprocessed matrix; ``y`` is encoded (class codes or floats)."""

    family: ClassVar[str]

    def fit(
        self,
        X: Any,
        y: np.ndarray,
        X_val: Any | None,
        y_val: np.ndarray | None,
        on_round: RoundCallback | None = None,
    ) -> FitReport: ...

    def predict(self, X: Any) -> np.ndarray:
        """Class codes (classification) or values (regression)."""
        ...

    def predict_proba(self, X: Any) -> np.ndarray | None:
        """(n, n_classes) probabilities, or None when the model has none."""
        ...

    def feature_importances(self) -> np.ndarray | None: ...

    def save(self, directory: Path) -> None:
        """Write the model in its library's own format into ``directory``."""
        ...


@runtime_checkable
class CategoricalAdapter(Protocol):
    """An adapter of a family declaring ``categorical_indices``: it embeds ordinal-coded columns."""

    def set_categorical_columns(self, indices: Sequence[int]) -> None: ...


@runtime_checkable
class CheckpointingAdapter(Protocol):
    """An adapter of a family declaring ``checkpoints``: it writes checkpoints there and resumes from them."""

    def configure_checkpoints(self, directory: Path, resume: bool) -> None: ...


class AdapterFactory(Protocol):
    def __call__(self, task: TaskInfo, model_type: str, params: Mapping[str, Any],
                 training: TrainingConfig) -> ModelAdapter: ...


class LoadableAdapter(Protocol):
    @classmethod
    def load(cls, directory: Path, task: TaskInfo, model_type: str) -> ModelAdapter: ...
