"""Checks of ``model.params`` before any data is read: unknown names and obviously wrong values."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trainpipe._exceptions import ConfigError


@dataclass(frozen=True)
class Rule:
    kind: type  # int or float
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def describe(self) -> str:
        name = "an integer" if self.kind is int else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"<= {self.high:g}")
        return f"{name} {' and '.join(parts)}".strip()

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if self.kind is float and not isinstance(value, int | float):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and value > self.high)


def check_params(params: Mapping[str, Any], known: Iterable[str], rules: Mapping[str, Rule], model_type: str) -> None:
    known = sorted(set(known))
    problems = []
    for key, value in params.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            if NATIVE_NAMES.get(key) in known:
                hint = (f" It is the library's native name for {NATIVE_NAMES[key]!r}; trainpipe takes the "
                        f"scikit-learn names: write {NATIVE_NAMES[key]}.")
            problems.append(f"model.params.{key}: unknown parameter for {model_type}.{hint}")
            continue
        rule = rules.get(key)
        if rule is not None and value is not None and not rule.accepts(value):
            problems.append(f"model.params.{key}: expected {rule.describe()}, got {value!r}")
    if problems:
        raise ConfigError("\n".join(problems))


# XGBoost's and LightGBM's native parameter names -> the scikit-learn names the adapters take
NATIVE_NAMES = {"eta": "learning_rate", "shrinkage_rate": "learning_rate", "lambda": "reg_lambda",
                "lambda_l2": "reg_lambda", "alpha": "reg_alpha", "lambda_l1": "reg_alpha",
                "num_boost_round": "n_estimators", "num_iterations": "n_estimators", "num_round": "n_estimators",
                "n_iter": "n_estimators", "feature_fraction": "colsample_bytree", "bagging_fraction": "subsample",
                "min_data_in_leaf": "min_child_samples", "min_sum_hessian_in_leaf": "min_child_weight",
                "min_split_loss": "gamma"}

BOOSTER_RULES: dict[str, Rule] = {
    "n_estimators": Rule(int, 1),
    "max_depth": Rule(int, -1),
    "learning_rate": Rule(float, 0.0, None, low_open=True),
    "subsample": Rule(float, 0.0, 1.0, low_open=True),
    "colsample_bytree": Rule(float, 0.0, 1.0, low_open=True),
    "min_child_weight": Rule(float, 0.0),
    "reg_alpha": Rule(float, 0.0),
    "reg_lambda": Rule(float, 0.0),
    "gamma": Rule(float, 0.0),
    "num_leaves": Rule(int, 2),
    "min_child_samples": Rule(int, 1),
    "max_bin": Rule(int, 2),
}


# -- what the two boosters declare alike in their ModelFamily ---------------------------------------------------

BOOSTER_TRAINING_SETTINGS = frozenset({"early_stopping_rounds", "seed"})


def booster_rounds(params: Mapping[str, Any], training: Any) -> int:
    """Per-round values a booster reports: one per boosting round."""
    return int(params.get("n_estimators", 500))


def booster_training_hint(model_type: str, setting: str) -> str:
    """What a booster uses in place of a ``training.*`` setting it ignores."""
    if setting == "epochs":
        return "it trains boosting rounds, set by model.params.n_estimators: tune n_estimators instead"
    if setting == "learning_rate":
        return "its learning rate is the model parameter learning_rate: tune learning_rate (no training. prefix)"
    if setting == "early_stopping_patience":
        return ("it stops after training.early_stopping_rounds rounds without improvement: tune "
                "training.early_stopping_rounds instead")
    return ("it fits the whole matrix with its own tree-growing algorithm, with no mini-batches, optimizer, "
            "schedule or mixed precision")
