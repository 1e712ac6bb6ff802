"""XGBoost adapter: sklearn API, early stopping on the validation split, saved as UBJSON."""

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

_FILE = "model.ubj"
# up to this many rows a prediction runs on one thread (see XGBoostAdapter._for_rows)
SINGLE_THREAD_ROWS = 64


def _xgb() -> Any:
    return optional_import("xgboost", "model.type xgboost", extra="xgboost")


def _estimator_class(task: TaskInfo) -> Any:
    xgb = _xgb()
    return xgb.XGBRegressor if task.task == "regression" else xgb.XGBClassifier


class XGBoostAdapter:
    family: ClassVar[str] = "xgboost"

    def __init__(self, task: TaskInfo, model_type: str, params: Mapping[str, Any], training: TrainingConfig) -> None:
        self.task = task
        cls = _estimator_class(task)
        check_params(params, cls().get_params().keys(), BOOSTER_RULES, "xgboost")
        self.params: dict[str, Any] = {"n_estimators": 500, "learning_rate": 0.1, "max_depth": 6,
                                       "tree_method": "hist", "random_state": training.seed}
        self.params.update(params)
        self.early_stopping_rounds = training.early_stopping_rounds
        self.model: Any = None
        self._single: tuple[Any, Any] | None = None  # (model, its one-thread copy)

    @classmethod
    def check_config(cls, task_name: str, params: Mapping[str, Any], model_type: str = "xgboost") -> None:
        xgb = _xgb()
        est = xgb.XGBRegressor if task_name == "regression" else xgb.XGBClassifier
        check_params(params, est().get_params().keys(), BOOSTER_RULES, "xgboost")

    def fit(self, X: Any, y: np.ndarray, X_val: Any | None, y_val: np.ndarray | None,
            on_round: RoundCallback | None = None) -> FitReport:
        xgb = _xgb()
        total = int(self.params["n_estimators"])

        class _Progress(xgb.callback.TrainingCallback):  # type: ignore[name-defined]
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                if on_round is not None:
                    last = {f"{k}": float(v[-1]) for data in evals_log.values() for k, v in data.items()}
                    on_round(epoch + 1, total, last)
                return False

        params = dict(self.params)
        has_val = X_val is not None and len(y_val if y_val is not None else []) > 0
        if has_val and self.early_stopping_rounds:
            params["early_stopping_rounds"] = self.early_stopping_rounds
        params["callbacks"] = [_Progress()]
        self.model = _estimator_class(self.task)(**params)
        self.model.fit(X, y, eval_set=[(X_val, y_val)] if has_val else None, verbose=False)
        history: dict[str, list[float]] = {}
        if has_val:
            for metric, values in self.model.evals_result().get("validation_0", {}).items():
                history[f"val_{metric}"] = [float(v) for v in values]
        best = getattr(self.model, "best_iteration", None) if has_val and self.early_stopping_rounds else None
        self.model.set_params(callbacks=None)
        n_iter = self.model.get_booster().num_boosted_rounds()
        effective = {k: v for k, v in params.items() if k != "callbacks"}
        return FitReport(history=history, best_iteration=None if best is None else int(best),
                         n_iterations=int(n_iter), params=effective)

    def _for_rows(self, X: Any) -> Any:
        """The model to predict ``X`` with: for a few rows, a copy that predicts on one thread.

        XGBoost predicts on every core by default; for a handful of rows waking the OpenMP threads costs more
        than the trees (10x on a busy 2-core machine), and a server runs many requests side by side anyway.
        The copy holds the same trees, so it predicts the same values.
        """
        if X.shape[0] > SINGLE_THREAD_ROWS:
            return self.model
        single = self._single
        if single is None or single[0] is not self.model:
            import copy

            clone = copy.deepcopy(self.model)
            clone.set_params(n_jobs=1)
            clone.get_booster().set_param({"nthread": 1})
            single = self._single = (self.model, clone)
        return single[1]

    def predict(self, X: Any) -> np.ndarray:
        return self._for_rows(X).predict(X)

    def predict_proba(self, X: Any) -> np.ndarray | None:
        if self.task.task == "regression":
            return None
        return self._for_rows(X).predict_proba(X)

    def feature_importances(self) -> np.ndarray | None:
        return getattr(self.model, "feature_importances_", None)

    def save(self, directory: Path) -> None:
        self.model.save_model(str(directory / _FILE))

    @classmethod
    def load(cls, directory: Path, task: TaskInfo, model_type: str) -> XGBoostAdapter:
        self = cls.__new__(cls)
        self.task = task
        self.params = {}
        self.early_stopping_rounds = None
        self._single = None
        self.model = _estimator_class(task)()
        self.model.load_model(str(directory / _FILE))
        return self


# tuning.metric -> XGBoost's eval_metric per task, so that the per-round value the pruner sees (and early
# stopping) measures what the study optimizes. A low learning rate looks bad on log loss after a few
# rounds but not on AUC: pruning on the library's default loss would favour fast, overfitting trials.
_EVAL_METRIC = {
    ("roc_auc", "binary"): "auc", ("roc_auc", "multiclass"): "auc", ("pr_auc", "binary"): "aucpr",
    ("log_loss", "binary"): "logloss", ("log_loss", "multiclass"): "mlogloss",
    ("accuracy", "binary"): "error", ("accuracy", "multiclass"): "merror",
    ("rmse", "regression"): "rmse", ("mae", "regression"): "mae", ("r2", "regression"): "rmse",
}


def _metric_params(metric: str, task: str, params: Mapping[str, Any]) -> dict[str, Any]:
    if "eval_metric" in params:
        return {}
    name = _EVAL_METRIC.get((metric, task))
    return {"eval_metric": name} if name else {}


def _task_requirement(model_type: str, params: Mapping[str, Any]) -> fam.TaskRequirement | None:
    """The tasks an explicit ``objective`` can learn (``reg:``/``count:``/``survival:`` or ``binary:``/``multi:``)."""
    objective = params.get("objective")
    if not isinstance(objective, str):
        return None
    name = objective.lower()
    regression = name.startswith(("reg:", "count:", "survival:"))
    if not regression and not name.startswith(("binary:", "multi:")):
        return None
    return fam.objective_requirement(objective, regression=regression)


def _check(task_name: str, params: Mapping[str, Any], model_type: str) -> None:
    XGBoostAdapter.check_config(task_name if task_name != "auto" else "binary", params, model_type)


def _adapter() -> type:
    return XGBoostAdapter


FAMILY = fam.ModelFamily(
    name="xgboost", names=("xgboost",), adapter=_adapter, extra="xgboost",
    libraries=("xgboost-cpu", "xgboost"),
    default_space={
        "max_depth": {"type": "int", "low": 3, "high": 10},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
        "subsample": {"type": "float", "low": 0.6, "high": 1.0},
        "colsample_bytree": {"type": "float", "low": 0.5, "high": 1.0},
        "min_child_weight": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
        # up to 100: strong L2 helps small, noisy tables (FLAML searches 1/1024 .. 1024; its best XGBoost on
        # modeldata's credit_data had reg_lambda 56, above this space's old ceiling of 10)
        "reg_lambda": {"type": "float", "low": 1e-3, "high": 100.0, "log": True},
    },
    round_budget=booster_rounds, metric_params=_metric_params, check_config=_check,
    task_requirement=_task_requirement,
    # XGBoost calls back into Python through ctypes while it builds its data matrices: an exception raised
    # there by a signal handler is dropped by ctypes and the C++ side carries on broken
    defer_signals=True,
    training_settings=BOOSTER_TRAINING_SETTINGS, training_hint=booster_training_hint,
    owned_params={"random_state": fam.SEED_TEXT, "seed": fam.SEED_TEXT, "n_jobs": fam.THREADS_TEXT,
                  "nthread": fam.THREADS_TEXT, "verbosity": fam.LOGGING_TEXT, "device": fam.DEVICE_TEXT,
                  "objective": fam.OBJECTIVE_TEXT, "eval_metric": fam.EVAL_METRIC_TEXT,
                  "early_stopping_rounds": fam.EARLY_STOPPING_TEXT,
                  "callbacks": "trainpipe sets its own callbacks (progress, pruning). Remove it from tuning.space"},
)
