"""trainpipe: one validated YAML file takes a dataset to a tracked, evaluated model.

``import trainpipe`` is light: heavy libraries (mlflow, xgboost, lightgbm, torch, sklearn) load where used.
"""

from trainpipe._exceptions import (
    ConfigError,
    DataError,
    DataValidationError,
    GateRefused,
    MissingExtraError,
    StorageFull,
    StoreError,
    TrackingUnavailable,
    TrainingDiverged,
    TrainingInterrupted,
    TrainpipeError,
    TuningFailed,
)
from trainpipe._hooks import Hooks, RecordingHooks
from trainpipe._version import __version__

__all__ = [
    "ConfigError",
    "DataError",
    "DataValidationError",
    "GateRefused",
    "Hooks",
    "MissingExtraError",
    "RecordingHooks",
    "StorageFull",
    "StoreError",
    "TrackingUnavailable",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainpipeError",
    "TuningFailed",
    "__version__",
]
