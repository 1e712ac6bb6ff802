"""The champion comparison's bootstrap for binary ROC AUC (evaluation/_gate.py): resamples scored from row
counts on scores sorted once give exactly the values of scoring each resample on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainpipe.evaluation import _gate
from trainpipe.evaluation._gate import _binary_auc, _WeightedAuc, paired_bootstrap


def _reference(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int,
               confidence: float) -> tuple[float, float, float, float, float, int]:
    """The bootstrap as it was: every resample copied out and ranked (scipy's rankdata) for each model."""
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), size=len(y))
        try:
            d = _binary_auc(y[idx], a[idx]) - _binary_auc(y[idx], b[idx])
        except ValueError:
            continue
        if not math.isnan(d):
            deltas.append(d)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(np.asarray(deltas), [alpha, 1.0 - alpha])
    va, vb = _binary_auc(y, a), _binary_auc(y, b)
    return va, vb, va - vb, float(lo), float(hi), len(deltas)


def _two_columns(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - p, p])


@pytest.mark.parametrize("n, levels", [(2_000, None), (3_000, 7), (40, 3)])  # continuous, heavy ties, tiny
def test_the_bootstrap_gives_exactly_the_resample_by_resample_values(n: int, levels: int | None) -> None:
    rng = np.random.default_rng(n)
    y = (rng.random(n) < 0.3).astype(np.int64)
    a = np.clip(0.3 * y + rng.normal(0.4, 0.2, n), 0, 1)
    b = np.clip(0.2 * y + rng.normal(0.4, 0.2, n), 0, 1)
    if levels is not None:  # scores from a few leaves: many tied values, inside and across the classes
        a, b = np.round(a * levels) / levels, np.round(b * levels) / levels
    pred_a, pred_b = (a > 0.5).astype(np.int64), (b > 0.5).astype(np.int64)
    got = paired_bootstrap("roc_auc", y, (pred_a, _two_columns(a)), (pred_b, _two_columns(b)), 2,
                           confidence=0.95, n_boot=300, seed=3)
    assert got == _reference(y, a, b, 300, 3, 0.95)  # bit for bit: the gate's verdict and report are unchanged


def test_a_resample_with_one_class_only_is_dropped_as_before() -> None:
    y = np.array([0] * 9 + [1])  # one positive in ten rows: many resamples miss it
    a = np.linspace(0, 1, 10)
    b = a[::-1].copy()
    got = paired_bootstrap("roc_auc", y, (y, _two_columns(a)), (y, _two_columns(b)), 2, confidence=0.9,
                           n_boot=200, seed=0)
    want = _reference(y, a, b, 200, 0, 0.9)
    assert got == want and got[5] < 200
    with pytest.raises(ValueError, match="one class only"):
        _WeightedAuc(y, a).auc(np.bincount(np.zeros(10, dtype=np.int64), minlength=10))


def test_resamples_are_not_sorted_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = _gate._binary_auc

    def counting(y: np.ndarray, score: np.ndarray) -> float:
        calls.append(len(y))
        return real(y, score)

    monkeypatch.setattr(_gate, "_binary_auc", counting)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = rng.random(500)
    paired_bootstrap("roc_auc", y, (y, _two_columns(p)), (y, _two_columns(p[::-1].copy())), 2, confidence=0.95,
                     n_boot=100, seed=0)
    assert len(calls) == 2  # the two full-split values; the 100 resamples are scored from counts


def test_missing_scores_keep_the_resample_by_resample_path() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    a, b = rng.random(200), rng.random(200)
    a[5] = np.nan
    got = paired_bootstrap("roc_auc", y, (y, _two_columns(a)), (y, _two_columns(b)), 2, confidence=0.95, n_boot=50)
    np.testing.assert_equal(got, _reference(y, a, b, 50, 0, 0.95))  # whatever ranking NaNs gives, as before
