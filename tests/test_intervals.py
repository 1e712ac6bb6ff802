"""Bootstrap intervals of the test metrics (evaluation/_intervals.py): equal to the plain percentile bootstrap
on ordinary splits, bounded in time and memory on large ones (the m-out-of-n bootstrap), and they contain the
test value."""

from __future__ import annotations

import numpy as np
import pytest

from trainpipe.evaluation._intervals import MAX_ROWS, Scores, analyse_scores, bootstrap_intervals, point_values

METRICS = ["roc_auc", "pr_auc", "log_loss", "accuracy", "f1", "precision", "recall", "brier"]


def _binary(n: int, seed: int = 0) -> Scores:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)
    return Scores("binary", y, (p > 0.5).astype(int), np.c_[1 - p, p])


def _plain_bootstrap(s: Scores, n_boot: int = 200, seed: int = 0) -> dict[str, tuple[float, float]]:
    """The textbook version: draw n rows with replacement, compute each metric with scikit-learn."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    rng = np.random.default_rng(seed)
    n = len(s.y)
    acc, auc = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        acc.append(accuracy_score(s.y[idx], s.pred[idx]))
        auc.append(roc_auc_score(s.y[idx], s.proba[idx, 1]))
    return {"accuracy": tuple(np.quantile(acc, [0.025, 0.975])), "roc_auc": tuple(np.quantile(auc, [0.025, 0.975]))}


def test_small_splits_get_the_plain_percentile_bootstrap() -> None:
    s = _binary(1500)
    mine = bootstrap_intervals(s, METRICS)
    plain = _plain_bootstrap(s)
    for metric in ("accuracy", "roc_auc"):  # other draws than the textbook loop: agree to sampling noise
        assert mine[metric][0] == pytest.approx(plain[metric][0], abs=0.01)
        assert mine[metric][1] == pytest.approx(plain[metric][1], abs=0.01)
    values = point_values(s, METRICS)
    for metric, (lo, hi) in mine.items():
        assert lo <= values[metric] <= hi and lo < hi, metric


def test_large_splits_are_bootstrapped_on_a_subsample_and_rescaled() -> None:
    """The width of a percentile interval shrinks as 1/sqrt(n): the rescaled subsample bootstrap of a 200k-row
    split must have the width the normal approximation gives for the whole split (accuracy: a binomial share;
    log loss: a mean of row losses), not the subsample's sqrt(10) times wider one, and hold memory to chunks (a
    dense 200 x 200k count matrix would be 320 MB)."""
    n = 10 * MAX_ROWS
    s = _binary(n, seed=1)
    fast = bootstrap_intervals(s, ["accuracy", "roc_auc", "log_loss"])
    values = point_values(s, ["accuracy", "roc_auc", "log_loss"])
    for metric in ("accuracy", "roc_auc", "log_loss"):
        lo, hi = fast[metric]
        assert lo < values[metric] < hi, metric
    acc = values["accuracy"]
    row_loss = -np.log(np.clip(s.proba[np.arange(n), s.y], 1e-15, 1))
    expected = {"accuracy": 2 * 1.96 * np.sqrt(acc * (1 - acc) / n),
                "log_loss": 2 * 1.96 * row_loss.std() / np.sqrt(n)}
    for metric, width in expected.items():
        assert fast[metric][1] - fast[metric][0] == pytest.approx(width, rel=0.25), metric
    note = analyse_scores("binary", s.y, s.pred, s.proba, ["accuracy"])["interval_note"]
    assert f"random {MAX_ROWS:,} of the {n:,} test rows" in note and "m-out-of-n" in note


def test_tasks_without_row_scores_get_no_analysis() -> None:
    assert analyse_scores("ranking", np.arange(3), np.arange(3), None, ["mrr"]) == {}
    assert analyse_scores("binary", np.array([], dtype=int), np.array([], dtype=int), None, ["accuracy"]) == {}
