"""A scikit-learn classifier or regressor named by its class path; saved with skops, not pickle.

``model.type`` may name only the estimators in :mod:`trainpipe.models._allowlist` (scikit-learn's
``all_estimators`` classifiers and regressors, by their public path such as
``sklearn.linear_model.LogisticRegression`` or their defining path such as
``sklearn.linear_model._logistic.LogisticRegression``). Nothing named in a config is imported: the class is
looked up in that fixed table, and only the table's own modules are imported.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from trainpipe._exceptions import ConfigError
from trainpipe.models import _allowlist, _skops_io
from trainpipe.models import _family as fam
from trainpipe.models._params import check_params
from trainpipe.models._protocol import FitReport, RoundCallback

if TYPE_CHECKING:
    import numpy as np

    from trainpipe.config import TrainingConfig
    from trainpipe.data import TaskInfo

_FILE = "estimator.skops"


# the other built-in types, named in refusals (this module is imported by the family registry, so it does not ask it)
_OTHER_TYPES = ("xgboost", "lightgbm", "torch_mlp")


def public_name(model_type: str) -> str | None:
    """The table entry ``model_type`` names (public path as written, or a defining path
    ``sklearn.<package>.<private module>.<Class>`` of the same class), by the text alone; None if none."""
    known = _allowlist.sklearn_estimators()
    if model_type in known:
        return model_type
    parts = model_type.split(".")
    if len(parts) > 3 and parts[0] == "sklearn":
        candidate = f"sklearn.{parts[1]}.{parts[-1]}"
        if candidate in known:
            return candidate
    return None


def refuse_unknown(model_type: str) -> ConfigError:
    """The ConfigError for a ``model.type`` that is neither built in nor in the scikit-learn table."""
    known = _allowlist.sklearn_estimators()
    reason = _allowlist.NOT_TRAINABLE.get(model_type)
    if reason is None and model_type.startswith("sklearn."):
        cls_name = model_type.rpartition(".")[2]
        if not any(k.rpartition(".")[2] == cls_name for k in (*known, *_allowlist.NOT_TRAINABLE)):
            reason = f"it is not a scikit-learn classifier or regressor (there is no class {cls_name!r} among them)"
        else:
            reason = "it is not a scikit-learn classifier or regressor at that path"
    elif reason is None:
        reason = "only scikit-learn classifiers/regressors and the built-in types can be named; nothing else is " \
                 "imported"
    pool = [*known, *_OTHER_TYPES]
    close = difflib.get_close_matches(model_type, pool, n=1, cutoff=0.85)
    if not close:  # match on the class name alone: sklearn.linear_models.Ridge, sklearn.svm.LogisticRegression
        by_cls = {k.rpartition(".")[2].lower(): k for k in known}
        hit = difflib.get_close_matches(model_type.rpartition(".")[2].lower(), list(by_cls), n=1, cutoff=0.8)
        close = [by_cls[hit[0]]] if hit else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"model.type: {model_type!r} cannot be trained: {reason}.{hint} Use one of the built-in types "
        f"({', '.join(_OTHER_TYPES)}) or a scikit-learn classifier or regressor such as "
        "sklearn.linear_model.LogisticRegression or sklearn.ensemble.RandomForestRegressor "
        "(sklearn.utils.all_estimators lists them)."
    )


def import_estimator(model_type: str) -> type:
    """The estimator class ``model_type`` names; a ConfigError for anything outside the fixed table."""
    public = public_name(model_type)
    if public is None:
        raise refuse_unknown(model_type)
    cls = _allowlist.import_public(public)
    if cls is None:
        raise ConfigError(f"model.type: {model_type!r} is not in the installed scikit-learn "
                          "(a newer or older version?). Pick another estimator or install scikit-learn 1.9.")
    if public != model_type and _allowlist.type_path(cls) != model_type:
        raise ConfigError(f"model.type: {model_type!r} is not where this scikit-learn defines {cls.__name__}. "
                          f"Write the public path {public!r}.")
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
    def load(cls, directory: Path, task: TaskInfo, model_type: str,
             unsafe_trust_types: tuple[str, ...] = ()) -> SklearnAdapter:
        """Read ``estimator.skops``: only the fixed allow-list of types loads, whatever ``model_type`` says."""
        self = cls.__new__(cls)
        self.task = task
        self.model_type = model_type
        self.model = _skops_io.load(directory / _FILE, unsafe_trust_types)
        return self


# the first rule whose parameters the estimator has gives the default search space
_DEFAULT_SPACES: tuple[tuple[tuple[str, ...], dict[str, dict[str, Any]]], ...] = (
    (("C",), {"C": {"type": "float", "low": 1e-3, "high": 100.0, "log": True}}),
    (("n_estimators", "max_depth", "min_samples_leaf"), {
        "max_depth": {"type": "int", "low": 2, "high": 16},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": True},
        "max_features": {"type": "float", "low": 0.2, "high": 1.0},
    }),
    (("learning_rate", "max_leaf_nodes"), {
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
        "max_leaf_nodes": {"type": "int", "low": 8, "high": 64, "log": True},
    }),
    (("alpha",), {"alpha": {"type": "float", "low": 1e-4, "high": 10.0, "log": True}}),
    (("n_neighbors",), {"n_neighbors": {"type": "int", "low": 1, "high": 50, "log": True}}),
)


def _default_space(model_type: str) -> dict[str, Any] | None:
    keys = set(import_estimator(model_type)().get_params())
    for needed, space in _DEFAULT_SPACES:
        if set(needed) <= keys:
            return dict(space)
    return None


def _training_hint(model_type: str, setting: str) -> str:
    own = {"epochs": ("max_iter", "n_estimators"), "learning_rate": ("learning_rate", "learning_rate_init", "eta0"),
           "early_stopping_rounds": ("n_iter_no_change",), "early_stopping_patience": ("n_iter_no_change",)}
    params = set(import_estimator(model_type)().get_params())
    match = [p for p in own.get(setting, ()) if p in params]
    hint = f": tune its own parameter {match[0]} (no training. prefix) instead" if match else ""
    return f"it is fitted by one call of its fit(), which takes no training.* settings{hint}"


def _task_requirement(model_type: str, params: Mapping[str, Any]) -> fam.TaskRequirement | None:
    from sklearn.base import is_classifier, is_regressor

    est = import_estimator(model_type)()
    if is_classifier(est):
        return fam.TaskRequirement("model.type", f"{model_type} (a classifier)", fam.CLASSIFICATION,
                                   "Pick a regressor (e.g. sklearn.linear_model.Ridge), or set task: binary or "
                                   "multiclass if the target holds class codes.")
    if is_regressor(est):
        return fam.TaskRequirement("model.type", f"{model_type} (a regressor)", ("regression",),
                                   "Pick a classifier (e.g. sklearn.linear_model.LogisticRegression), or set "
                                   "task: regression if the target is a number to predict.")
    return None


def _claims(model_type: str) -> bool:
    """Every dotted name: one outside the fixed table is refused here, naming why (nothing is imported)."""
    if "." not in model_type:
        return False
    if public_name(model_type) is None:
        raise refuse_unknown(model_type)
    return True


def _load(directory: Path, task: TaskInfo, model_type: str, unsafe_trust_types: tuple[str, ...]) -> SklearnAdapter:
    return SklearnAdapter.load(directory, task, model_type, unsafe_trust_types)


def _adapter() -> type:
    return SklearnAdapter


FAMILY = fam.ModelFamily(
    name="sklearn", names=(), adapter=_adapter, claims=_claims, loader=_load, extra=None, libraries=(),
    default_space=_default_space, check_config=SklearnAdapter.check_config, task_requirement=_task_requirement,
    training_settings=frozenset({"seed"}), training_hint=_training_hint,
    owned_params={"random_state": fam.SEED_TEXT, "n_jobs": fam.THREADS_TEXT, "verbose": fam.LOGGING_TEXT},
)
