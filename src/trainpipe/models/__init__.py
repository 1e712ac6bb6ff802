"""Model families behind one adapter Protocol: scikit-learn, XGBoost, LightGBM."""

from trainpipe.models._protocol import FitReport, ModelAdapter
from trainpipe.models._resolver import (
    BUILTIN_TYPES,
    adapter_class,
    check_model_config,
    create_adapter,
    family_of,
)
from trainpipe.models._trained import ModelSpec, TrainedModel

__all__ = [
    "BUILTIN_TYPES",
    "FitReport",
    "ModelAdapter",
    "ModelSpec",
    "TrainedModel",
    "adapter_class",
    "check_model_config",
    "create_adapter",
    "family_of",
]
