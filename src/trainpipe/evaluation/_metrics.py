"""Metric registry: one name -> one function over encoded labels, predictions and probabilities."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    tasks: tuple[str, ...]
    greater_is_better: bool
    needs_proba: bool
    fn: Callable[[Any, Any, Any, int], float]


def _roc_auc(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import roc_auc_score

    if k == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=list(range(k))))


def _pr_auc(y: Any, pred: Any, proba: Any, k: int) -> float:
    import numpy as np
    from sklearn.metrics import average_precision_score

    if k == 2:
        return float(average_precision_score(y, proba[:, 1]))
    onehot = np.eye(k)[y]
    present = onehot.sum(axis=0) > 0
    return float(average_precision_score(onehot[:, present], proba[:, present], average="macro"))


def _log_loss(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(y, proba, labels=list(range(k))))


def _accuracy(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, pred))


def _balanced_accuracy(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, pred))


def _f1(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, average="macro", labels=list(range(k)), zero_division=0))


def _precision(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import precision_score

    return float(precision_score(y, pred, average="macro", labels=list(range(k)), zero_division=0))


def _recall(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import recall_score

    return float(recall_score(y, pred, average="macro", labels=list(range(k)), zero_division=0))


def _rmse(y: Any, pred: Any, proba: Any, k: int) -> float:
    import numpy as np

    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(pred, float)) ** 2)))


def _mae(y: Any, pred: Any, proba: Any, k: int) -> float:
    import numpy as np

    return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(pred, float))))


def _r2(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y, pred))


_CLS = ("binary", "multiclass")
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("roc_auc", _CLS, True, True, _roc_auc),
    Metric("pr_auc", _CLS, True, True, _pr_auc),
    Metric("log_loss", _CLS, False, True, _log_loss),
    Metric("accuracy", _CLS, True, False, _accuracy),
    Metric("balanced_accuracy", _CLS, True, False, _balanced_accuracy),
    Metric("f1", _CLS, True, False, _f1),
    Metric("precision", _CLS, True, False, _precision),
    Metric("recall", _CLS, True, False, _recall),
    Metric("rmse", ("regression",), False, False, _rmse),
    Metric("mae", ("regression",), False, False, _mae),
    Metric("r2", ("regression",), True, False, _r2),
)}

DEFAULTS = {
    "binary": ["roc_auc", "pr_auc", "log_loss", "accuracy", "f1"],
    "multiclass": ["roc_auc", "pr_auc", "log_loss", "accuracy", "f1"],
    "regression": ["rmse", "mae", "r2"],
}


def check_metric_names(names: Iterable[str], key: str = "evaluation.metrics") -> None:
    for name in names:
        if name not in METRICS:
            close = difflib.get_close_matches(name, list(METRICS), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known metrics: {', '.join(METRICS)}."
            raise ConfigError(f"{key}: unknown metric {name!r}.{hint}")


def applicable(task: str) -> list[str]:
    """The metric names that can be computed for ``task``, defaults first."""
    return [*DEFAULTS[task], *(m for m, v in METRICS.items() if task in v.tasks and m not in DEFAULTS[task])]


def tasks_text(tasks: Iterable[str]) -> str:
    """``('binary', 'multiclass')`` -> ``'binary or multiclass'``."""
    return " or ".join(tasks)


def not_applicable(names: Iterable[str], task: str) -> list[str]:
    """The metrics in ``names`` that cannot be computed for ``task`` (unknown names are left out)."""
    return [m for m in names if m in METRICS and task not in METRICS[m].tasks]


def gate_metric_names(thresholds: Iterable[str], champion: str | None = None) -> list[str]:
    """The registry metrics the gate reads (``gate.thresholds`` keys other than latency, and the champion
    metric): the evaluation computes these whether or not ``evaluation.metrics`` lists them."""
    out = [m for m in thresholds if m in METRICS]
    if champion is not None and champion in METRICS and champion not in out:
        out.append(champion)
    return out


def metrics_for(task: str, requested: list[str] | None, also: Iterable[str] = ()) -> list[str]:
    """The metrics to compute: ``requested`` (``evaluation.metrics``) or the task's defaults, then each
    metric of ``also`` (those the gate needs, see :func:`gate_metric_names`) not already there."""
    names = list(DEFAULTS[task]) if requested is None else list(requested)
    if requested is not None:
        check_metric_names(requested)
        wrong = not_applicable(requested, task)
        if wrong:
            listed = ", ".join(repr(m) for m in wrong)
            raise ConfigError(
                f"evaluation.metrics: {listed} {'does' if len(wrong) == 1 else 'do'} not apply to a {task} task "
                f"(only to {tasks_text(METRICS[wrong[0]].tasks)}). Use {task} metrics "
                f"({', '.join(applicable(task))}), or remove evaluation.metrics to get the defaults."
            )
    extra = list(also)
    check_metric_names(extra, key="gate.thresholds")
    names += [m for m in extra if m not in names and task in METRICS[m].tasks]
    return names


def compute_metrics(names: list[str], task: str, y: np.ndarray, pred: np.ndarray,
                    proba: np.ndarray | None, n_classes: int) -> dict[str, float | None]:
    """Each metric's value, or None when it cannot be computed (no probabilities, one class in a slice)."""
    out: dict[str, float | None] = {}
    for name in names:
        metric = METRICS[name]
        if metric.needs_proba and proba is None:
            out[name] = None
            continue
        try:
            value = metric.fn(y, pred, proba, n_classes)
        except ValueError:
            value = float("nan")
        out[name] = None if value is None or math.isnan(value) else value
    return out
