"""LightGBM adapter: early stopping on the validation split, saved as LightGBM's text model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from trainpipe._imports import optional_import
from trainpipe.models import _family as fam
from trainpipe.models._params import (
    BOOSTER_RULES,
    BOOSTER_TRAINING_SETTINGS,
    booster_rounds,
    booster_training_hint,
    check_params,
)
from trainpipe.models._protocol import FitReport, RoundCallback

if TYPE_CHECKING:
    import numpy as np

    from trainpipe.config import TrainingConfig
    from trainpipe.data import TaskInfo

_FILE = "model.txt"


def _lgb() -> Any:
    return optional_import("lightgbm", "model.type lightgbm", extra="lightgbm")


def _known_params(estimator_class: Any) -> set[str]:
    """The sklearn API's parameters plus every native LightGBM parameter and alias (``verbose``,
    ``min_data_in_leaf``, ``feature_fraction``...), which the sklearn API passes through."""
    from lightgbm.basic import _ConfigAliases

    known = set(estimator_class().get_params().keys())
    for name, aliases in _ConfigAliases._get_all_param_aliases().items():
        known.add(name)
        known.update(aliases)
    return known


_THREAD_KEYS = ("num_threads", "n_jobs", "nthread", "nthreads", "num_thread")


def _default_threads(params: Mapping[str, Any]) -> dict[str, Any]:
    """``n_jobs=0`` (OpenMP's default: ``OMP_NUM_THREADS``, else every core, as XGBoost does) unless the config
    sets a thread count. The sklearn API's own default (``None``) is every *physical* core whatever
    ``OMP_NUM_THREADS`` says: two tuning workers, two xdist test workers or a benchmark pinned to one thread
    each then ran LightGBM on 2 threads each on 2 cores, and OpenMP threads spinning at barriers for a core
    that was busy made one 3,500-row fit take 550 s instead of 1 s."""
    return {} if any(k in params for k in _THREAD_KEYS) else {"n_jobs": 0}


class LightGBMAdapter:
    family: ClassVar[str] = "lightgbm"

    def __init__(self, task: TaskInfo, model_type: str, params: Mapping[str, Any], training: TrainingConfig) -> None:
        self.task = task
        self.check_config(task.task, params)
        self.params: dict[str, Any] = {"n_estimators": 500, "learning_rate": 0.05, "num_leaves": 31,
                                       "random_state": training.seed, "verbosity": -1}
        self.params.update(params)
        self.early_stopping_rounds = training.early_stopping_rounds
        self.booster: Any = None

    @classmethod
    def check_config(cls, task_name: str, params: Mapping[str, Any], model_type: str = "lightgbm") -> None:
        lgb = _lgb()
        est = lgb.LGBMRegressor if task_name == "regression" else lgb.LGBMClassifier
        check_params(params, _known_params(est), BOOSTER_RULES, "lightgbm")

    def fit(self, X: Any, y: np.ndarray, X_val: Any | None, y_val: np.ndarray | None,
            on_round: RoundCallback | None = None) -> FitReport:
        lgb = _lgb()
        total = int(self.params["n_estimators"])
        record: dict[str, Any] = {}
        callbacks: list[Any] = [lgb.record_evaluation(record)]
        has_val = X_val is not None and y_val is not None and len(y_val) > 0
        if has_val and self.early_stopping_rounds:
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        if on_round is not None:
            def _progress(env: Any) -> None:
                on_round(env.iteration + 1, total, {f"{r[1]}": float(r[2]) for r in env.evaluation_result_list})
            callbacks.append(_progress)
        cls = lgb.LGBMRegressor if self.task.task == "regression" else lgb.LGBMClassifier
        model = cls(**self.params, **_default_threads(self.params))
        kwargs: dict[str, Any] = {}
        if has_val:
            import inspect

            if "eval_X" in inspect.signature(model.fit).parameters:  # lightgbm >= 4.7
                kwargs = {"eval_X": (X_val,), "eval_y": (y_val,)}
            else:
                kwargs = {"eval_set": [(X_val, y_val)]}
            kwargs["eval_names"] = ["valid"]
        model.fit(X, y, callbacks=callbacks, **kwargs)
        self.booster = model.booster_
        history = {f"val_{m}": [float(v) for v in vals] for m, vals in record.get("valid", {}).items()}
        best = model.best_iteration_ if has_val and self.early_stopping_rounds else None
        n_iter = max((len(v) for v in history.values()), default=int(self.booster.current_iteration()))
        return FitReport(history=history, best_iteration=int(best) - 1 if best else None,
                         n_iterations=n_iter, params=dict(self.params))

    def _raw(self, X: Any) -> np.ndarray:
        best = self.booster.best_iteration or None
        return self.booster.predict(X, num_iteration=best)

    def predict(self, X: Any) -> np.ndarray:
        import numpy as np

        out = self._raw(X)
        if self.task.task == "regression":
            return out
        if self.task.task == "binary":
            return (out >= 0.5).astype(np.int64)
        return np.argmax(out, axis=1)

    def predict_proba(self, X: Any) -> np.ndarray | None:
        import numpy as np

        if self.task.task == "regression":
            return None
        out = self._raw(X)
        if self.task.task == "binary":
            return np.column_stack([1.0 - out, out])
        return out

    def feature_importances(self) -> np.ndarray | None:
        return self.booster.feature_importance(importance_type="gain")

    def save(self, directory: Path) -> None:
        self.booster.save_model(str(directory / _FILE), num_iteration=self.booster.best_iteration or None)

    @classmethod
    def load(cls, directory: Path, task: TaskInfo, model_type: str) -> LightGBMAdapter:
        self = cls.__new__(cls)
        self.task = task
        self.params = {}
        self.early_stopping_rounds = None
        self.booster = _lgb().Booster(model_file=str(directory / _FILE))
        return self


# tuning.metric -> LightGBM's ``metric`` parameter per task (see the XGBoost family's table)
_EVAL_METRIC = {
    ("roc_auc", "binary"): "auc", ("pr_auc", "binary"): "average_precision",
    ("log_loss", "binary"): "binary_logloss", ("log_loss", "multiclass"): "multi_logloss",
    ("accuracy", "binary"): "binary_error", ("accuracy", "multiclass"): "multi_error",
    ("rmse", "regression"): "rmse", ("mae", "regression"): "l1", ("r2", "regression"): "l2",
}
_REGRESSION = {"regression", "regression_l1", "regression_l2", "l1", "l2", "mse", "mae", "rmse",
               "mean_squared_error", "mean_absolute_error", "root_mean_squared_error", "l2_root",
               "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie"}
_CLASSIFICATION = {"binary", "multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr",
                   "cross_entropy", "xentropy", "cross_entropy_lambda", "xentlambda"}


def _metric_params(metric: str, task: str, params: Mapping[str, Any]) -> dict[str, Any]:
    if {"metric", "metrics", "metric_types"} & set(params):
        return {}
    name = _EVAL_METRIC.get((metric, task))
    return {"metric": name} if name else {}


def _task_requirement(model_type: str, params: Mapping[str, Any]) -> fam.TaskRequirement | None:
    objective = params.get("objective")
    if not isinstance(objective, str):
        return None
    name = objective.lower()
    if name not in _REGRESSION and name not in _CLASSIFICATION:
        return None
    return fam.objective_requirement(objective, regression=name in _REGRESSION)


def _check(task_name: str, params: Mapping[str, Any], model_type: str) -> None:
    LightGBMAdapter.check_config(task_name if task_name != "auto" else "binary", params, model_type)


def _adapter() -> type:
    return LightGBMAdapter


FAMILY = fam.ModelFamily(
    name="lightgbm", names=("lightgbm",), adapter=_adapter, extra="lightgbm", libraries=("lightgbm",),
    default_space={
        "num_leaves": {"type": "int", "low": 8, "high": 128, "log": True},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
        "min_child_samples": {"type": "int", "low": 5, "high": 100, "log": True},
        "colsample_bytree": {"type": "float", "low": 0.5, "high": 1.0},
        # up to 100: strong L2 helps small, noisy tables (FLAML searches 1/1024 .. 1024; its best XGBoost on
        # modeldata's credit_data had reg_lambda 56, above this space's old ceiling of 10)
        "reg_lambda": {"type": "float", "low": 1e-3, "high": 100.0, "log": True},
    },
    round_budget=booster_rounds, metric_params=_metric_params, check_config=_check,
    task_requirement=_task_requirement,
    defer_signals=True,  # it calls back into Python through ctypes while it builds its datasets
    training_settings=BOOSTER_TRAINING_SETTINGS, training_hint=booster_training_hint,
    owned_params={
        **dict.fromkeys(("seed", "random_seed", "random_state"), fam.SEED_TEXT),
        **dict.fromkeys(_THREAD_KEYS, fam.THREADS_TEXT),
        **dict.fromkeys(("verbosity", "verbose"), fam.LOGGING_TEXT),
        **dict.fromkeys(("device_type", "device"), fam.DEVICE_TEXT),
        **dict.fromkeys(("objective", "app", "loss", "application", "objective_type"),
                        fam.OBJECTIVE_TEXT.replace("XGBoost", "LightGBM")),
        **dict.fromkeys(("metric", "metrics", "metric_types"), fam.EVAL_METRIC_TEXT),
        **dict.fromkeys(("early_stopping_round", "early_stopping", "n_iter_no_change", "early_stopping_rounds"),
                        fam.EARLY_STOPPING_TEXT),
    },
)
