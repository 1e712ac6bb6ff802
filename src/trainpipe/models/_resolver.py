"""Map ``model.type`` to its family and adapter, with typo and install hints.

A ``model.type`` names an installed family (see :mod:`trainpipe.models._families`: the built-ins and the
``trainpipe.model_families`` entry points) or a scikit-learn classifier/regressor from the fixed table in
:mod:`trainpipe.models._allowlist`. Nothing named in a config is imported: ``this.X``, ``os.system`` or a
``evilmod.Model`` beside the config is a ConfigError, not an import."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from trainpipe.models._families import PLANNED_TYPES, family_for

if TYPE_CHECKING:
    from trainpipe.config import ModelConfig, TrainingConfig
    from trainpipe.data import TaskInfo
    from trainpipe.models._protocol import CategoricalAdapter, CheckpointingAdapter, ModelAdapter

BUILTIN_TYPES = ("xgboost", "lightgbm", "torch_mlp")
__all__ = ["BUILTIN_TYPES", "PLANNED_TYPES", "adapter_class", "check_model_config", "configure_checkpoints",
           "create_adapter", "family_for", "family_of"]


def family_of(model_type: str) -> str:
    """The family name ``model_type`` belongs to (recorded in ``spec.json``)."""
    return family_for(model_type).name


def adapter_class(model_type: str) -> Any:
    return family_for(model_type).adapter_class()


def check_model_config(model: ModelConfig, task_name: str) -> None:
    """Validate ``model.type`` and ``model.params`` before any data is read (imports the family's library)."""
    family_for(model.type).check(task_name, dict(model.params), model.type)


def create_adapter(task: TaskInfo, model: ModelConfig, training: TrainingConfig,
                   categorical_indices: Sequence[int] | None = None) -> ModelAdapter:
    """The family's adapter for ``model``; ``categorical_indices`` (ordinal-coded columns of X) are handed to
    families that embed them."""
    family = family_for(model.type)
    adapter = family.create(task, model.type, model.params, training)
    if family.categorical_indices and categorical_indices is not None:
        cast("CategoricalAdapter", adapter).set_categorical_columns(list(categorical_indices))
    return adapter


def configure_checkpoints(model_type: str, adapter: ModelAdapter, directory: Path, resume: bool) -> bool:
    """Point a checkpointing family's adapter at ``directory``; False when the family keeps no checkpoints."""
    if not family_for(model_type).checkpoints:
        return False
    cast("CheckpointingAdapter", adapter).configure_checkpoints(Path(directory), resume)
    return True
