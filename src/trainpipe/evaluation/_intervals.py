"""Uncertainty of the test metrics, computed where the predictions are (the evaluate step, or its plot
worker): percentile bootstrap intervals, the calibration curve (binary) and a residual summary (regression).

The bootstrap is vectorised: each resample is a row of counts (how often each test row was drawn), and every
metric below is a weighted sum over the rows, so 200 resamples of all metrics cost milliseconds on ordinary test
splits instead of a thousand scikit-learn calls. Time and memory are bounded on large splits (see
:func:`bootstrap_intervals`). Metrics without such a formula (multiclass averages, ranking) get no interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

N_BOOT = 200
MAX_ROWS = 20_000  # above this, the m-out-of-n bootstrap on a subsample of this many rows
CHUNK_CELLS = 2_000_000  # resamples x rows held at once (16 MB of float64 counts)
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


def _ascending(values: np.ndarray) -> bool:
    return bool(len(values) < 2 or (values[1:] >= values[:-1]).all())


def _by_score(s: Scores) -> Scores:
    """Binary scores with their rows in ascending order of the positive class's probability (the rank metrics
    then need no sort per resample); other tasks as they are."""
    import numpy as np

    if s.task != "binary" or s.proba is None:
        return s
    proba = np.asarray(s.proba, dtype=float)
    order = np.argsort(proba[:, 1], kind="stable")
    return Scores(s.task, np.asarray(s.y)[order], np.asarray(s.pred)[order], proba[order])


def _binary_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per resample (rows of ``weights``), ties counted half (the Mann-Whitney statistic)."""
    import numpy as np

    if _ascending(score):  # the bootstrap sorts its rows by score first: no per-call sort or copy
        ranked, w, positive_r = score, weights, positive
    else:
        order = np.argsort(score, kind="stable")
        ranked, w, positive_r = score[order], weights[:, order], positive[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    pos = np.add.reduceat(w * positive_r, starts, axis=1)
    neg = np.add.reduceat(w, starts, axis=1) - pos
    below = np.cumsum(neg, axis=1) - neg
    n1, n0 = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((pos * below + 0.5 * pos * neg).sum(axis=1) / (n1 * n0))


def _average_precision(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision per resample (scikit-learn's definition: sum over thresholds of the recall step times
    the precision at that threshold)."""
    import numpy as np

    if _ascending(score):  # descending is the reversed view (rows of equal score are summed as one group)
        ranked, w, positive_r = score[::-1], weights[:, ::-1], positive[::-1]
    else:
        order = np.argsort(-score, kind="stable")
        ranked, w, positive_r = score[order], weights[:, order], positive[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    tp = np.cumsum(np.add.reduceat(w * positive_r, starts, axis=1), axis=1)
    seen = np.cumsum(np.add.reduceat(w, starts, axis=1), axis=1)
    return _average_precision_from_counts(tp, seen)


def _average_precision_from_counts(tp: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Average precision per row from cumulative true positives and cumulative rows at each threshold (best
    score first): the sum of precision times the recall step."""
    import numpy as np

    total = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.divide(tp, seen, out=np.ones_like(tp), where=seen > 0)  # 1.0 before the first row
        recall = tp / total
    # the recall steps (from 0) times the precision, in place: the same values and the same row sums as
    # np.diff(np.concatenate([0, recall])) * precision, without two more arrays of the resamples' size
    steps = np.empty_like(recall)
    steps[:, :1] = recall[:, :1]
    np.subtract(recall[:, 1:], recall[:, :-1], out=steps[:, 1:])
    np.multiply(steps, precision, out=steps)
    return np.asarray(steps.sum(axis=1))


class _IndicatorCounts:
    """Per resample (row of ``weights``): the weighted count of each 0/1 row indicator (columns of
    ``indicators``: correct rows, true/false positives, false negatives), one matrix product per weights matrix
    for all of them. Whole-count weights times 0/1 values: exact sums whatever the order, so each column equals
    ``weights @ indicator`` bit for bit."""

    def __init__(self, indicators: np.ndarray) -> None:
        self.indicators = indicators
        self._weights: np.ndarray | None = None
        self._counts: np.ndarray | None = None

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        if self._counts is None or self._weights is not weights:
            self._counts = weights @ self.indicators
            self._weights = weights
        return self._counts


class _TieGroupSums:
    """For scores in ascending order: per resample (row of ``weights``), the weighted positives and the weighted
    rows of each group of tied scores, computed once per weights matrix for both rank metrics. The bootstrap's
    weights are whole counts, so these sums are exact whatever the order of addition, and the descending groups
    ``_average_precision`` forms are these, reversed: the same numbers as its own pass (the test compares)."""

    def __init__(self, score: np.ndarray, positive: np.ndarray) -> None:
        import numpy as np

        self.positive = positive
        self.starts = np.flatnonzero(np.r_[True, score[1:] != score[:-1]])
        self._weights: np.ndarray | None = None
        self._sums: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        if self._sums is None or self._weights is not weights:
            self._sums = (np.add.reduceat(weights * self.positive, self.starts, axis=1),
                          np.add.reduceat(weights, self.starts, axis=1))
            self._weights = weights
        return self._sums


def _auc_of_sums(pos: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``_binary_auc`` from the ascending tie-group sums. With whole-count weights every term is a whole or
    half number and every sum is exact, so ``sum(pos * (below + neg / 2))`` in one pass equals
    ``sum(pos * below + 0.5 * pos * neg)`` bit for bit (the test compares)."""
    import numpy as np

    neg = total - pos
    half = np.cumsum(neg, axis=1)
    half -= 0.5 * neg  # rows of lower score, plus half the tied ones: below + neg / 2
    n1, n0 = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.einsum("ij,ij->i", pos, half) / (n1 * n0))


def _ap_of_sums(pos: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``_average_precision`` from the ascending tie-group sums (walked from the highest score down)."""
    import numpy as np

    tp = np.cumsum(pos[:, ::-1], axis=1)
    seen = np.cumsum(total[:, ::-1], axis=1)
    return _average_precision_from_counts(tp, seen)


def _formulas(s: Scores) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """metric -> f(weights B x n) -> B values, for the metrics that have a weighted form here."""
    import numpy as np

    y = np.asarray(s.y)
    n = len(y)
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if s.task in ("binary", "multiclass"):
        correct = (np.asarray(s.pred) == y).astype(float)
        if s.task == "binary":  # accuracy, f1, precision and recall from one product per weights matrix
            positive = (y == 1).astype(float)
            pred1 = (np.asarray(s.pred) == 1).astype(float)
            counts = _IndicatorCounts(np.column_stack([correct, positive * pred1, (1 - positive) * pred1,
                                                       positive * (1 - pred1)]))
            out["accuracy"] = lambda w: counts(w)[:, 0] / n
        else:
            out["accuracy"] = lambda w: w @ correct / n
        if s.proba is not None:
            proba = np.asarray(s.proba, dtype=float)
            picked = np.clip(proba[np.arange(n), y.astype(int)] / np.maximum(proba.sum(axis=1), EPS), EPS, 1 - EPS)
            row_loss = -np.log(picked)
            out["log_loss"] = lambda w: w @ row_loss / n
    if s.task == "binary":

        def f1(w: np.ndarray) -> np.ndarray:
            _, tp, fp, fn = counts(w).T
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)

        def precision(w: np.ndarray) -> np.ndarray:
            _, tp, fp, _ = counts(w).T
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(tp + fp > 0, tp / (tp + fp), 0.0)

        def recall(w: np.ndarray) -> np.ndarray:
            _, tp, _, fn = counts(w).T
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(tp + fn > 0, tp / (tp + fn), 0.0)

        out.update({"f1": f1, "precision": precision, "recall": recall})
        if s.proba is not None:
            score = np.asarray(s.proba, dtype=float)[:, 1]
            sq = (score - positive) ** 2
            if _ascending(score):  # the bootstrap's order (see _by_score): one grouping pass for both
                sums = _TieGroupSums(score, positive)
                out["roc_auc"] = lambda w: _auc_of_sums(*sums(w))
                out["pr_auc"] = lambda w: _ap_of_sums(*sums(w))
            else:
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
                        seed: int = 0, max_rows: int = MAX_ROWS) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval over the test rows for each metric with a formula.

    Bounded in time and memory whatever the test split's size: resamples are drawn in chunks of
    ``CHUNK_CELLS`` row counts, and a split of more than ``max_rows`` rows is bootstrapped on a seeded random
    subsample of ``max_rows`` rows, whose spread is rescaled by sqrt(m / n) around the full split's value (the
    m-out-of-n bootstrap; valid for these metrics, which are asymptotically normal). ``bootstrap_note`` says
    which was done."""
    import numpy as np

    formulas = {m: f for m, f in _formulas(s).items() if m in metrics}
    n = len(s.y)
    if not formulas or n < 2:
        return {}
    full = point_values(s, list(formulas))
    rng = np.random.default_rng(seed)
    sub, scale = s, 1.0
    if n > max_rows:
        keep = np.sort(rng.choice(n, size=max_rows, replace=False))
        sub = Scores(s.task, np.asarray(s.y)[keep], np.asarray(s.pred)[keep],
                     None if s.proba is None else np.asarray(s.proba)[keep])
        scale = float(np.sqrt(max_rows / n))
    sub = _by_score(sub)
    formulas = {m: f for m, f in _formulas(sub).items() if m in formulas}
    m = len(sub.y)
    centre = point_values(sub, list(formulas))
    chunk = max(1, min(n_boot, CHUNK_CELLS // m))
    values: dict[str, list[np.ndarray]] = {k: [] for k in formulas}
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        draws = rng.integers(0, m, size=(b, m))
        weights = np.bincount((np.arange(b)[:, None] * m + draws).ravel(),
                              minlength=b * m).reshape(b, m).astype(float)  # row counts per resample
        for metric, f in formulas.items():
            values[metric].append(np.asarray(f(weights), dtype=float))
        done += b
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for metric in formulas:
        got = np.concatenate(values[metric])
        got = got[np.isfinite(got)]
        if len(got) >= n_boot // 2 and metric in full and np.isfinite(full[metric]):
            lo, hi = np.quantile(got, [alpha, 1.0 - alpha])
            c = centre[metric]
            out[metric] = (float(full[metric] + scale * (lo - c)), float(full[metric] + scale * (hi - c)))
    return out


def bootstrap_note(n: int, n_boot: int = N_BOOT, max_rows: int = MAX_ROWS) -> str:
    """How the intervals were computed, for the page."""
    if n > max_rows:
        return (f"Intervals: percentile bootstrap ({n_boot} resamples) on a seeded random {max_rows:,} of the "
                f"{n:,} test rows, rescaled by sqrt({max_rows:,}/{n:,}) to the whole split (m-out-of-n bootstrap).")
    return f"Intervals: percentile bootstrap over the test rows ({n_boot} resamples)."


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


def analyse_scores(task: str, y: Any, pred: Any, proba: Any, metrics: Sequence[str], *,
                   confidence: float = 0.95) -> dict[str, Any]:
    """Intervals, calibration and residuals of one model's test predictions, as JSON-ready data (what
    ``metrics.json`` keeps under ``intervals``, ``interval_note``, ``calibration`` and ``residuals``)."""
    if task not in ("binary", "multiclass", "regression") or len(y) == 0:
        return {}
    s = Scores(task, y, pred, proba)
    intervals = bootstrap_intervals(s, metrics, confidence=confidence)
    return {"intervals": {k: list(v) for k, v in intervals.items()}, "interval_note": bootstrap_note(len(y)),
            "calibration": [list(c) for c in calibration_curve(s)], "residuals": residual_summary(s)}


__all__ = ["MAX_ROWS", "N_BOOT", "Scores", "analyse_scores", "bootstrap_intervals", "bootstrap_note",
           "calibration_curve", "point_values", "residual_summary"]
