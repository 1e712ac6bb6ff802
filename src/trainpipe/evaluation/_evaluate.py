"""Evaluate a trained model on the held-out test split: metrics, slices, plots, latency."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe.evaluation._metrics import compute_metrics, metrics_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.config import EvaluationConfig
    from trainpipe.evaluation._plot_worker import PlotWorker
    from trainpipe.models import TrainedModel

_MAX_SLICE_LEVELS = 20


@dataclass
class EvaluationResult:
    metrics: dict[str, float | None]
    slices: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    analysis: dict[str, Any] = field(default_factory=dict)  # intervals, interval_note, calibration, residuals
    n_test: int = 0

    def flat_metrics(self) -> dict[str, float]:
        """Metrics for the tracker: overall ``test_*`` and latency, numbers only."""
        out = {f"test_{k}": v for k, v in self.metrics.items() if v is not None}
        out.update(self.latency)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"n_test": self.n_test, "metrics": self.metrics, "latency": self.latency,
                "slices": self.slices, "plots": self.plots, **self.analysis}


def evaluate_model(model: TrainedModel, test: pd.DataFrame, target: str, config: EvaluationConfig,
                   out_dir: Path, also: Sequence[str] = (), plot_worker: PlotWorker | None = None) -> EvaluationResult:
    """``also``: metrics computed even when ``config.metrics`` leaves them out (those the gate needs).
    ``plot_worker``: draws the plots in its own process while the metrics are computed here (see
    :mod:`~trainpipe.evaluation._plot_worker`); without one, or when it fails, they are drawn here."""
    import time

    info = model.task
    task = info.kind
    names = metrics_for(task.name, config.metrics, also)
    y = task.encode(info, test[target])
    t0 = time.perf_counter()
    prediction = task.predict(model, test)
    batch_s = time.perf_counter() - t0
    pred, proba = prediction.pair
    k = info.n_classes
    out_dir.mkdir(parents=True, exist_ok=True)
    handed_off = config.plots and _submit_plots(plot_worker, model, y, pred, proba, out_dir)
    result = EvaluationResult(compute_metrics(names, task.name, y, pred, proba, k), n_test=len(test))
    text = [c for c in model.spec.features.text if c in test.columns]
    if text and info.is_classification and len(test):  # per-class report and top misclassified texts
        from trainpipe.evaluation._text_report import write_text_report

        write_text_report(test[text], [str(c) for c in info.classes], y, pred, proba, out_dir)
    for col in config.slices:
        result.slices[col] = _slice_metrics(test[col], names, task.name, y, pred, proba, k)
    if config.latency:
        result.latency = _latency(model, test.drop(columns=[target]))
        result.latency["batch_rows_per_s"] = float(len(test) / batch_s) if batch_s > 0 else float("inf")
    from trainpipe.evaluation._intervals import analyse_scores

    # bootstrap intervals, calibration, residuals: here, while the worker (if any) draws the plots
    result.analysis = analyse_scores(task.name, y, pred, proba, names)
    if config.plots:
        collected = _collect_plots(plot_worker) if handed_off and plot_worker is not None else None
        result.plots = collected if collected is not None else _plots(model, y, pred, proba, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return result


def _latency(model: TrainedModel, raw: pd.DataFrame) -> dict[str, float]:
    from trainpipe.evaluation._latency import measure_latency

    task = model.task.kind
    return measure_latency(lambda rows: task.serving_output(model, rows), raw, batch=False)


def _slice_metrics(col: pd.Series, names: list[str], task: str, y: np.ndarray, pred: np.ndarray,
                   proba: np.ndarray | None, k: int) -> list[dict[str, Any]]:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col) and col.nunique() > _MAX_SLICE_LEVELS:
        groups = pd.qcut(col, q=4, duplicates="drop").astype(str)
    else:
        groups = col.astype(object).where(col.notna(), "(missing)").astype(str)
        top = groups.value_counts().index[:_MAX_SLICE_LEVELS]
        groups = groups.where(groups.isin(top), "(other)")
    groups = groups.where(groups != "nan", "(missing)")
    rows = []
    for level, positions in groups.groupby(groups.to_numpy()).indices.items():
        pos = np.asarray(positions)
        values = compute_metrics(names, task, y[pos], pred[pos], None if proba is None else proba[pos], k)
        rows.append({"slice": str(level), "count": len(pos), **values})
    rows.sort(key=lambda r: -float(r["count"] or 0))
    return rows


def _plot_inputs(model: TrainedModel) -> tuple[tuple[str, ...], list[str], list[str], Any]:
    """What the plots need besides the predictions: the task's plot names (what applies to it), class labels,
    feature names and importances."""
    info = model.task
    labels = [str(c) for c in info.classes]
    return info.kind.plots, labels, list(model.spec.feature_names), model.adapter.feature_importances()


def _plots(model: TrainedModel, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
           out_dir: Path) -> list[str]:
    from trainpipe.evaluation._plots import draw_plots

    plots, labels, names, importances = _plot_inputs(model)
    return draw_plots(plots, y, pred, proba, labels, names, importances, out_dir)


def _submit_plots(worker: PlotWorker | None, model: TrainedModel, y: np.ndarray, pred: np.ndarray,
                  proba: np.ndarray | None, out_dir: Path) -> bool:
    """Hand the plots to ``worker``; False (draw them here) when there is none or it is gone."""
    if worker is None:
        return False
    from trainpipe.evaluation._plot_worker import PlotWorkerError

    plots, labels, names, importances = _plot_inputs(model)
    try:
        worker.submit(plots, y, pred, proba, labels, names, importances, out_dir)
    except PlotWorkerError as exc:
        warnings.warn(f"evaluation plots drawn in the step's own process: {exc}", RuntimeWarning, stacklevel=2)
        return False
    return True


def _collect_plots(worker: PlotWorker) -> list[str] | None:
    """The worker's files for the submitted plots; None (draw them here) when it failed."""
    from trainpipe.evaluation._plot_worker import PlotWorkerError

    try:
        return worker.collect()
    except PlotWorkerError as exc:
        warnings.warn(f"evaluation plots drawn in the step's own process: {exc}", RuntimeWarning, stacklevel=2)
        return None
