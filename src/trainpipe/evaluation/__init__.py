"""Metrics, slices, plots and latency on the held-out test split."""

from trainpipe.evaluation._evaluate import EvaluationResult, evaluate_model
from trainpipe.evaluation._latency import measure_latency
from trainpipe.evaluation._metrics import DEFAULTS, METRICS, Metric, check_metric_names, compute_metrics, metrics_for

__all__ = [
    "DEFAULTS",
    "METRICS",
    "EvaluationResult",
    "Metric",
    "check_metric_names",
    "compute_metrics",
    "evaluate_model",
    "measure_latency",
    "metrics_for",
]
