"""Any scikit-learn compatible estimator named by its dotted class path; saved with skops, not pickle."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from trainpipe._exceptions import ConfigError
from trainpipe.models import _skops_io
from trainpipe.models._params import check_params
from trainpipe.models._protocol import FitReport, RoundCallback

if TYPE_CHECKING:
    import numpy as np

    from trainpipe.config import TrainingConfig
    from trainpipe.data import TaskInfo

_FILE = "estimator.skops"


def import_estimator(model_type: str) -> type:
    module_name, _, cls_name = model_type.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model.type: cannot import module {module_name!r} for {model_type!r} ({exc}).") from exc
    cls = getattr(module, cls_name, None)
    if cls is None:
        import difflib

        names = [n for n in dir(module) if n[:1].isupper()]
        close = difflib.get_close_matches(cls_name, names, n=1, cutoff=0.6)
        hint = f" Did you mean {module_name}.{close[0]}?" if close else ""
        raise ConfigError(f"model.type: {module_name} has no class {cls_name!r}.{hint}")
    if not isinstance(cls, type) or not hasattr(cls, "fit") or not hasattr(cls, "get_params"):
        raise ConfigError(f"model.type: {model_type!r} is not a scikit-learn estimator class (no fit/get_params).")
    return cls


def _check_task(cls: type, model_type: str, task_name: str) -> None:
    from sklearn.base import is_classifier, is_regressor

    est = cls()
    if task_name == "regression" and is_classifier(est):
        raise ConfigError(f"model.type: {model_type} is a classifier but the task is regression; "
                          "pick a regressor or set task: binary/multiclass.")
    if task_name in ("binary", "multiclass") and is_regressor(est):
        raise ConfigError(f"model.type: {model_type} is a regressor but the task is {task_name}; pick a classifier.")


class SklearnAdapter:
    family: ClassVar[str] = "sklearn"

    def __init__(self, task: TaskInfo, model_type: str, params: Mapping[str, Any], training: TrainingConfig) -> None:
        self.task = task
        self.model_type = model_type
        cls = import_estimator(model_type)
        self.check_config(task.task, params, model_type)
        full = dict(params)
        if "random_state" in cls().get_params() and "random_state" not in full:
            full["random_state"] = training.seed
        self.model: Any = cls(**full)

    @classmethod
    def check_config(cls, task_name: str, params: Mapping[str, Any], model_type: str) -> None:
        est_cls = import_estimator(model_type)
        if task_name != "auto":
            _check_task(est_cls, model_type, task_name)
        check_params(params, est_cls().get_params().keys(), {}, model_type)
        est = est_cls(**params)
        validate = getattr(est, "_validate_params", None)
        if callable(validate):
            try:
                validate()
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"model.params: {exc}") from exc

    def fit(self, X: Any, y: np.ndarray, X_val: Any | None, y_val: np.ndarray | None,
            on_round: RoundCallback | None = None) -> FitReport:
        self.model.fit(X, y)
        if on_round is not None:
            on_round(1, 1, {})
        return FitReport(params={k: v for k, v in self.model.get_params().items()
                                 if isinstance(v, str | int | float | bool | type(None))})

    def predict(self, X: Any) -> np.ndarray:
        return self.model.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray | None:
        if self.task.task == "regression" or not hasattr(self.model, "predict_proba"):
            return None
        try:
            return self.model.predict_proba(X)
        except AttributeError:  # e.g. SVC(probability=False)
            return None

    def feature_importances(self) -> np.ndarray | None:
        import numpy as np

        imp = getattr(self.model, "feature_importances_", None)
        if imp is not None:
            return np.asarray(imp)
        coef = getattr(self.model, "coef_", None)
        if coef is not None:
            coef = np.abs(np.asarray(coef, dtype=float))
            return coef.reshape(-1) if coef.ndim == 1 else coef.mean(axis=0)
        return None

    def save(self, directory: Path) -> None:
        _skops_io.dump(self.model, directory / _FILE)

    @classmethod
    def load(cls, directory: Path, task: TaskInfo, model_type: str) -> SklearnAdapter:
        self = cls.__new__(cls)
        self.task = task
        self.model_type = model_type
        top = model_type.split(".")[0] + "."
        self.model = _skops_io.load(directory / _FILE, extra_prefixes=(top,))
        return self
