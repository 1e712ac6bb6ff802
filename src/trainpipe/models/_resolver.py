"""Map ``model.type`` to an adapter class, with typo and install hints.

A ``model.type`` is one of :data:`BUILTIN_TYPES` or a scikit-learn classifier/regressor from the fixed table
in :mod:`trainpipe.models._allowlist`. Nothing named in a config is imported: ``this.X``, ``os.system`` or a
``evilmod.Model`` beside the config is a ConfigError, not an import. (Third-party families through the
``trainpipe.model_families`` entry-point group are not supported yet.)"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError

if TYPE_CHECKING:
    from trainpipe.config import ModelConfig, TrainingConfig
    from trainpipe.data import TaskInfo
    from trainpipe.models._protocol import ModelAdapter

BUILTIN_TYPES = ("xgboost", "lightgbm", "torch_mlp")
PLANNED_TYPES = {"two_tower": "the two-tower ranking model"}


def family_of(model_type: str) -> str:
    if model_type in BUILTIN_TYPES:
        return "torch" if model_type == "torch_mlp" else model_type
    if model_type in PLANNED_TYPES:
        raise ConfigError(
            f"model.type: {model_type!r} ({PLANNED_TYPES[model_type]}) is not available in this version. "
            f"Use one of {', '.join(BUILTIN_TYPES)} or a scikit-learn class path."
        )
    if "." in model_type:
        from trainpipe.models._sklearn import public_name, refuse_unknown

        if public_name(model_type) is None:
            raise refuse_unknown(model_type)
        return "sklearn"
    close = difflib.get_close_matches(model_type, [*BUILTIN_TYPES, *PLANNED_TYPES], n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"model.type: unknown model type {model_type!r}.{hint} Expected xgboost, lightgbm, torch_mlp, or a "
        "scikit-learn classifier or regressor such as sklearn.linear_model.LogisticRegression."
    )


def adapter_class(model_type: str) -> Any:
    family = family_of(model_type)
    if family == "xgboost":
        from trainpipe.models._xgboost import XGBoostAdapter

        return XGBoostAdapter
    if family == "lightgbm":
        from trainpipe.models._lightgbm import LightGBMAdapter

        return LightGBMAdapter
    if family == "torch":
        from trainpipe.models._torch_mlp import TorchMLPAdapter

        return TorchMLPAdapter
    from trainpipe.models._sklearn import SklearnAdapter

    return SklearnAdapter


def check_model_config(model: ModelConfig, task_name: str) -> None:
    """Validate ``model.type`` and ``model.params`` before any data is read (imports the family's library)."""
    cls = adapter_class(model.type)
    if cls.family == "sklearn":
        cls.check_config(task_name, model.params, model.type)
    else:
        cls.check_config(task_name if task_name != "auto" else "binary", model.params)


def create_adapter(task: TaskInfo, model: ModelConfig, training: TrainingConfig) -> ModelAdapter:
    cls = adapter_class(model.type)
    adapter: ModelAdapter = cls(task, model.type, _plain(model.params), training)
    return adapter


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    return dict(params)
