"""Metric registry: one name -> one function over encoded labels, predictions and probabilities."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

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
    import numpy as np
    from sklearn.metrics import log_loss

    # rows of float32 probabilities (XGBoost's) or of a weighted ensemble sum to 1 only within float32
    # rounding; scikit-learn now warns on each such call (hundreds per study) instead of renormalising as it
    # used to, so renormalise here in float64, as it did
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] > 1:
        p = p / p.sum(axis=1, keepdims=True)
    return float(log_loss(y, p, labels=list(range(k))))


def _accuracy(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, pred))


def _balanced_accuracy(y: Any, pred: Any, proba: Any, k: int) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, pred))


def _prf(kind: str, average: str) -> Callable[[Any, Any, Any, int], float]:
    """precision/recall/F1 over encoded labels: ``average="binary"`` scores the positive class (code 1, the
    task's positive label: scikit-learn's default), the others average over every class of the task."""

    def fn(y: Any, pred: Any, proba: Any, k: int) -> float:
        from sklearn import metrics

        score = {"f1": metrics.f1_score, "precision": metrics.precision_score, "recall": metrics.recall_score}[kind]
        if average == "binary":
            return float(score(y, pred, average="binary", pos_label=1, labels=[0, 1], zero_division=0))
        return float(score(y, pred, average=average, labels=list(range(k)), zero_division=0))

    fn.__name__ = f"_{kind}_{average}"
    return fn


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
    # the positive class's value (binary only: a multiclass target has no positive class, see task_hint)
    Metric("f1", ("binary",), True, False, _prf("f1", "binary")),
    Metric("precision", ("binary",), True, False, _prf("precision", "binary")),
    Metric("recall", ("binary",), True, False, _prf("recall", "binary")),
    Metric("f1_macro", _CLS, True, False, _prf("f1", "macro")),
    Metric("f1_weighted", _CLS, True, False, _prf("f1", "weighted")),
    Metric("f1_micro", _CLS, True, False, _prf("f1", "micro")),
    Metric("precision_macro", _CLS, True, False, _prf("precision", "macro")),
    Metric("precision_weighted", _CLS, True, False, _prf("precision", "weighted")),
    Metric("recall_macro", _CLS, True, False, _prf("recall", "macro")),
    Metric("recall_weighted", _CLS, True, False, _prf("recall", "weighted")),
    Metric("rmse", ("regression",), False, False, _rmse),
    Metric("mae", ("regression",), False, False, _mae),
    Metric("r2", ("regression",), True, False, _r2),
)}


def _ranking_metrics() -> dict[str, Metric]:
    """recall@k, ndcg@k, map@k, ..., mrr: over per-user relevant sets and top-k lists (see ``_ranking``)."""
    from trainpipe.evaluation import _ranking

    return {name: Metric(name, ("ranking",), greater, False, _ranking.registry_fn(name))
            for name, greater in _ranking.metric_names()}


METRICS.update(_ranking_metrics())

class _Defaults(Mapping[str, list[str]]):
    """``{task name: its default metric names}``, read from the registered tasks (see :mod:`trainpipe.tasks`):
    a task registered later has its defaults here too."""

    def __getitem__(self, task: str) -> list[str]:
        from trainpipe.tasks import registered_tasks, task_for

        if task not in registered_tasks():
            raise KeyError(task)
        return list(task_for(task).default_metrics)

    def __iter__(self) -> Iterator[str]:
        from trainpipe.tasks import registered_tasks

        return iter(registered_tasks())

    def __len__(self) -> int:
        from trainpipe.tasks import registered_tasks

        return len(registered_tasks())

    def __repr__(self) -> str:
        return repr(dict(self))


DEFAULTS: Mapping[str, list[str]] = _Defaults()


def task_hint(name: str, task: str) -> str:
    """A sentence for a metric refused for ``task`` when another name means what the user likely wants
    (``f1`` on a multiclass task -> ``f1_macro``); empty otherwise (also for ``auto``)."""
    from trainpipe.tasks import registered_tasks, task_for

    return task_for(task).metric_hint(name) if task in registered_tasks() else ""


# Names of per-round validation metrics the libraries write (XGBoost eval_metric, LightGBM metric, the torch
# engine) that are not registry names, where higher is better. Every other unknown name (loss, logloss,
# error, l2, mape, ...) is a loss: lower is better.
_NATIVE_HIGHER = frozenset({"auc", "aucpr", "map", "ndcg", "accuracy", "acc", "r2", "average_precision", "pre"})
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def metric_direction(name: str) -> Literal["maximize", "minimize"]:
    """Whether higher (``maximize``) or lower (``minimize``) is better for a metric name as it is logged.

    A registry name decides by its own ``greater_is_better``, also behind a prefix (``val_accuracy``,
    ``test.roc_auc``, ``test_f1_macro``); the longest registry name that ends ``name`` wins, so
    ``val_balanced_accuracy`` is not read as ``accuracy``. Otherwise the library's own names: ``auc``,
    ``map@5``, ``ndcg`` are maximized (whole words: ``mape`` is not ``map``), and anything else, ``loss``
    and ``error`` included, is minimized.
    """
    low = name.strip().lower()
    for known in sorted(METRICS, key=len, reverse=True):
        if low == known or (low.endswith(known) and not low[-len(known) - 1].isalnum()):
            return "maximize" if METRICS[known].greater_is_better else "minimize"
    tokens = set(_SEPARATORS.split(low))
    if "error" in tokens or "loss" in tokens:
        return "minimize"
    if tokens & _NATIVE_HIGHER or "average_precision" in low:
        return "maximize"
    return "minimize"


def best_value(name: str, values: Iterable[float]) -> float | None:
    """The best of a metric's history (per epoch or boosting round) in the metric's own direction; NaNs are
    skipped. None for an empty (or all-NaN) history."""
    finite = [float(v) for v in values if not math.isnan(float(v))]
    if not finite:
        return None
    return max(finite) if metric_direction(name) == "maximize" else min(finite)


def check_metric_names(names: Iterable[str], key: str = "evaluation.metrics") -> None:
    for name in names:
        if name not in METRICS:
            close = difflib.get_close_matches(name, list(METRICS), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known metrics: {', '.join(METRICS)}."
            raise ConfigError(f"{key}: unknown metric {name!r}.{hint}")


def applicable(task: str) -> list[str]:
    """The metric names that can be computed for ``task``, defaults first."""
    from trainpipe.tasks import task_for

    return task_for(task).applicable_metrics()


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
    from trainpipe.tasks import task_for

    names = list(task_for(task).default_metrics) if requested is None else list(requested)
    if requested is not None:
        check_metric_names(requested)
        wrong = not_applicable(requested, task)
        if wrong:
            listed = ", ".join(repr(m) for m in wrong)
            raise ConfigError(
                f"evaluation.metrics: {listed} {'does' if len(wrong) == 1 else 'do'} not apply to a {task} task "
                f"(only to {tasks_text(METRICS[wrong[0]].tasks)}). {''.join(task_hint(m, task) for m in wrong)}"
                f"Use {task} metrics "
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
