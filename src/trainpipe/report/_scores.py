"""What the run page computes from the model's scores on the test split: bootstrap confidence intervals of the
test metrics, the calibration curve (binary) and the residuals (regression).

The evaluation step stores metrics, not predictions, so the model is scored once more here (its own folder
and the test split of the run; no file is trusted beyond what ``TrainedModel.load`` checks). The bootstrap
is vectorised: each resample is a row of counts (how often each test row was drawn), and every metric below is
a weighted sum over the rows, so 200 resamples of all metrics cost a few milliseconds instead of a thousand
scikit-learn calls. Metrics without such a formula (multiclass averages, ranking) get no interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from trainpipe.evaluation._intervals import (
    Scores,
    bootstrap_intervals,
    calibration_curve,
    point_values,
    residual_summary,
)


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
