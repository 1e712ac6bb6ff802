"""Model families behind one adapter Protocol, each declared by a ``ModelFamily`` found through the
``trainpipe.model_families`` entry points: scikit-learn, XGBoost, LightGBM, the torch MLP, and third-party ones."""

from trainpipe.models._families import families, family_for, register_family
from trainpipe.models._family import ModelFamily, TaskRequirement
from trainpipe.models._protocol import FitReport, ModelAdapter
from trainpipe.models._resolver import (
    BUILTIN_TYPES,
    adapter_class,
    check_model_config,
    configure_checkpoints,
    create_adapter,
    family_of,
)
from trainpipe.models._trained import ModelSpec, TrainedModel

__all__ = [
    "BUILTIN_TYPES",
    "FitReport",
    "ModelAdapter",
    "ModelFamily",
    "ModelSpec",
    "TaskRequirement",
    "TrainedModel",
    "adapter_class",
    "check_model_config",
    "configure_checkpoints",
    "create_adapter",
    "families",
    "family_for",
    "family_of",
    "register_family",
]
