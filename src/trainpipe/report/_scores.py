"""What the run page computes from the model's scores on the test split: bootstrap confidence intervals of the
test metrics, the calibration curve (binary) and the residuals (regression).

The evaluation step stores metrics, not predictions, so the model is scored once more here (its own folder
and the test split of the run; no file is trusted beyond what ``TrainedModel.load`` checks). The bootstrap
is vectorised: each resample is a row of counts (how often each test row was drawn), and every metric below is
a weighted sum over the rows, so 200 resamples of all metrics cost a few milliseconds instead of a thousand
scikit-learn calls. Metrics without such a formula (multiclass averages, ranking) get no interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

N_BOOT = 200
EPS = 1e-15  # scikit-learn's log_loss clips probabilities the same way (float64)


@dataclass
class Scores:
    task: str  # binary | multiclass | regression
    y: Any
    pred: Any
    proba: Any
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    calibration: list[tuple[float, float, int]] = field(default_factory=list)  # (mean predicted, observed, rows)
    residuals: dict[str, Any] = field(default_factory=dict)


def score_test(model_dir: Path, test_file: Path, target: str) -> Scores | None:
    """The model of ``model_dir`` scored on ``test_file``; None for a task without row scores (ranking)."""
    import pandas as pd

    from trainpipe.models import TrainedModel

    model = TrainedModel.load(model_dir)
    task = model.task.kind
    if task.name not in ("binary", "multiclass", "regression"):
        return None
    test = pd.read_parquet(test_file)
    if len(test) == 0:
        return None
    from trainpipe.features import prepare_frame

    # the fitted ColumnTransformer itself: compiling the fast serving path (TrainedModel.transform) for one
    # batch would cost more than the transform
    y = task.encode(model.task, test[target])
    prediction = task.predict_matrix(model.adapter,
                                     model.preprocessor.transform(prepare_frame(test, model.spec.features)))
    return Scores(task.name, y, prediction.pred, prediction.proba)


def _binary_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per resample (rows of ``weights``), ties counted half (the Mann-Whitney statistic)."""
    import numpy as np

    order = np.argsort(score, kind="stable")
    ranked = score[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w, starts, axis=1) - pos
    below = np.cumsum(neg, axis=1) - neg
    n1, n0 = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((pos * below + 0.5 * pos * neg).sum(axis=1) / (n1 * n0))


def _average_precision(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision per resample (scikit-learn's definition: sum over thresholds of the recall step times
    the precision at that threshold)."""
    import numpy as np

    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    w = weights[:, order]
    tp = np.cumsum(np.add.reduceat(w * positive[order], starts, axis=1), axis=1)
    seen = np.cumsum(np.add.reduceat(w, starts, axis=1), axis=1)
    total = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen > 0, tp / seen, 1.0)
        recall = tp / total
    steps = np.diff(np.concatenate([np.zeros_like(recall[:, :1]), recall], axis=1), axis=1)
    return np.asarray((steps * precision).sum(axis=1))


def _formulas(s: Scores) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """metric -> f(weights B x n) -> B values, for the metrics that have a weighted form here."""
    import numpy as np

    y = np.asarray(s.y)
    n = len(y)
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if s.task in ("binary", "multiclass"):
        correct = (np.asarray(s.pred) == y).astype(float)
        out["accuracy"] = lambda w: w @ correct / n
        if s.proba is not None:
            proba = np.asarray(s.proba, dtype=float)
            picked = np.clip(proba[np.arange(n), y.astype(int)] / np.maximum(proba.sum(axis=1), EPS), EPS, 1 - EPS)
            row_loss = -np.log(picked)
            out["log_loss"] = lambda w: w @ row_loss / n
    if s.task == "binary":
        positive = (y == 1).astype(float)
        pred1 = (np.asarray(s.pred) == 1).astype(float)
        tp_rows, fp_rows, fn_rows = positive * pred1, (1 - positive) * pred1, positive * (1 - pred1)

        def f1(w: np.ndarray) -> np.ndarray:
            tp, fp, fn = w @ tp_rows, w @ fp_rows, w @ fn_rows
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)

        def precision(w: np.ndarray) -> np.ndarray:
            tp, fp = w @ tp_rows, w @ fp_rows
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(tp + fp > 0, tp / (tp + fp), 0.0)

        def recall(w: np.ndarray) -> np.ndarray:
            tp, fn = w @ tp_rows, w @ fn_rows
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(tp + fn > 0, tp / (tp + fn), 0.0)

        out.update({"f1": f1, "precision": precision, "recall": recall})
        if s.proba is not None:
            score = np.asarray(s.proba, dtype=float)[:, 1]
            sq = (score - positive) ** 2
            out["roc_auc"] = lambda w: _binary_auc(score, positive, w)
            out["pr_auc"] = lambda w: _average_precision(score, positive, w)
            out["brier"] = lambda w: w @ sq / n
    if s.task == "regression":
        yf, pf = y.astype(float), np.asarray(s.pred, dtype=float)
        sq, ab = (yf - pf) ** 2, np.abs(yf - pf)
        out["rmse"] = lambda w: np.sqrt(w @ sq / n)
        out["mae"] = lambda w: w @ ab / n

        def r2(w: np.ndarray) -> np.ndarray:
            total = w @ (yf**2) - (w @ yf) ** 2 / n
            with np.errstate(invalid="ignore", divide="ignore"):
                return 1.0 - (w @ sq) / total

        out["r2"] = r2
    return out


def point_values(s: Scores, metrics: Sequence[str]) -> dict[str, float]:
    """Each metric with a formula, on the test split itself (all weights 1): equal to the evaluation's."""
    import numpy as np

    formulas = _formulas(s)
    ones = np.ones((1, len(s.y)))
    return {m: float(formulas[m](ones)[0]) for m in metrics if m in formulas}


def bootstrap_intervals(s: Scores, metrics: Sequence[str], *, confidence: float = 0.95, n_boot: int = N_BOOT,
                        seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval over the test rows for each metric with a formula."""
    import numpy as np

    formulas = {m: f for m, f in _formulas(s).items() if m in metrics}
    n = len(s.y)
    if not formulas or n < 2:
        return {}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    weights = np.bincount((np.arange(n_boot)[:, None] * n + draws).ravel(),
                          minlength=n_boot * n).reshape(n_boot, n).astype(float)  # row counts per resample
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for metric, f in formulas.items():
        values = np.asarray(f(weights), dtype=float)
        values = values[np.isfinite(values)]
        if len(values) >= n_boot // 2:
            lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
            out[metric] = (float(lo), float(hi))
    return out


def calibration_curve(s: Scores, bins: int = 10) -> list[tuple[float, float, int]]:
    """Binary: (mean predicted probability, observed share of positives, rows) per probability bin."""
    import numpy as np

    if s.task != "binary" or s.proba is None:
        return []
    p = np.asarray(s.proba, dtype=float)[:, 1]
    y = (np.asarray(s.y) == 1).astype(float)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append((float(p[mask].mean()), float(y[mask].mean()), int(mask.sum())))
    return out


def residual_summary(s: Scores, points: int = 400) -> dict[str, Any]:
    """Regression: a sample of (predicted, actual) pairs and residual quantiles."""
    import numpy as np

    if s.task != "regression":
        return {}
    y, p = np.asarray(s.y, dtype=float), np.asarray(s.pred, dtype=float)
    idx = np.linspace(0, len(y) - 1, min(points, len(y))).astype(int)
    r = y - p
    q = np.quantile(r, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"pairs": [(float(p[i]), float(y[i])) for i in idx], "quantiles": dict(zip(
        ("p5", "p25", "p50", "p75", "p95"), map(float, q), strict=True))}


def analyse(model_dir: Path, test_file: Path, target: str, metrics: Sequence[str], *,
            confidence: float = 0.95) -> Scores | None:
    """Score once, then the intervals, calibration and residuals."""
    s = score_test(model_dir, test_file, target)
    if s is None:
        return None
    s.intervals = bootstrap_intervals(s, metrics, confidence=confidence)
    s.calibration = calibration_curve(s)
    s.residuals = residual_summary(s)
    return s


__all__ = ["Scores", "analyse", "bootstrap_intervals", "calibration_curve", "point_values", "residual_summary",
           "score_test"]
