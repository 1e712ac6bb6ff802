"""Pipeline configuration: YAML + profile overlay + env + ``--set`` -> frozen ``PipelineConfig``."""

from trainpipe.config._loader import (
    PROFILE_ENV,
    LoadedConfig,
    apply_override,
    config_from_dict,
    config_hash,
    deep_merge,
    load_config,
)
from trainpipe.config._orchestration import OrchestrationConfig
from trainpipe.config._schema import (
    ColumnCheck,
    CostConfig,
    DataConfig,
    EvaluationConfig,
    FeaturesConfig,
    GateConfig,
    ModelConfig,
    PipelineConfig,
    RegistryConfig,
    SplitConfig,
    TrackingConfig,
    TrainingConfig,
    TuningConfig,
    ValidationConfig,
)
from trainpipe.config._secrets import is_secret_name, redact, redact_uri

__all__ = [
    "PROFILE_ENV",
    "ColumnCheck",
    "CostConfig",
    "DataConfig",
    "EvaluationConfig",
    "FeaturesConfig",
    "GateConfig",
    "LoadedConfig",
    "ModelConfig",
    "OrchestrationConfig",
    "PipelineConfig",
    "RegistryConfig",
    "SplitConfig",
    "TrackingConfig",
    "TrainingConfig",
    "TuningConfig",
    "ValidationConfig",
    "apply_override",
    "config_from_dict",
    "config_hash",
    "deep_merge",
    "is_secret_name",
    "load_config",
    "redact",
    "redact_uri",
]
