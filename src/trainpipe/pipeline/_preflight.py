"""Checks of the whole config that need a library but no data: model type and params, metrics, tuning."""

from __future__ import annotations

from trainpipe.config import PipelineConfig


def preflight(config: PipelineConfig) -> None:
    """Raise ConfigError for anything that would fail later for a config reason."""
    from trainpipe.evaluation import check_metric_names
    from trainpipe.models import check_model_config

    check_model_config(config.model, config.task)
    if config.tuning is not None:
        _check_tuning(config)
    if config.evaluation.metrics is not None:
        check_metric_names(config.evaluation.metrics)
    check_metric_names([m for m in config.gate.thresholds if not m.startswith(("latency_", "batch_"))],
                       key="gate.thresholds")
    if config.gate.champion.metric is not None:
        check_metric_names([config.gate.champion.metric], key="gate.champion.metric")
        _check_task_fit(config, config.gate.champion.metric, "gate.champion.metric")
    for metric in config.gate.thresholds:
        if not metric.startswith(("latency_", "batch_")):
            _check_task_fit(config, metric, "gate.thresholds")


def _check_task_fit(config: PipelineConfig, metric: str, key: str) -> None:
    """A classification metric on a declared regression task (or the reverse) can never be computed."""
    from trainpipe._exceptions import ConfigError
    from trainpipe.evaluation import METRICS

    if config.task in ("auto", "ranking"):
        return
    if config.task not in METRICS[metric].tasks:
        raise ConfigError(f"{key}: {metric!r} does not apply to a {config.task} task "
                          f"(it applies to {', '.join(METRICS[metric].tasks)}).")


def _check_tuning(config: PipelineConfig) -> None:
    """The search space against the model family (unknown parameter, bound out of range), the metric and
    its direction, the storage URL: all before any data is read or any trial runs."""
    from trainpipe.tuning import check_space, infer_direction, objective_metric, parse_storage

    tuning = config.tuning
    if tuning is None:
        return
    metric = objective_metric(tuning, config.task)
    infer_direction(metric, tuning.direction)
    parse_storage(tuning.storage)
    check_space(config)
