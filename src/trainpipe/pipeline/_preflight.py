"""Checks of the whole config that need a library but no data: model type and params, metrics."""

from __future__ import annotations

from trainpipe._exceptions import ConfigError
from trainpipe.config import PipelineConfig


def preflight(config: PipelineConfig) -> None:
    """Raise ConfigError for anything that would fail later for a config reason."""
    from trainpipe.evaluation import check_metric_names
    from trainpipe.models import check_model_config

    if config.tuning is not None:
        raise ConfigError(
            "tuning: hyperparameter tuning is not available in this version of trainpipe. "
            "Remove the tuning section (model.params are used as given)."
        )
    check_model_config(config.model, config.task)
    if config.evaluation.metrics is not None:
        check_metric_names(config.evaluation.metrics)
    check_metric_names([m for m in config.gate.thresholds if not m.startswith(("latency_", "batch_"))],
                       key="gate.thresholds")
