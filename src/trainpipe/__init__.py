"""trainpipe: one validated YAML file takes a dataset to a tracked, evaluated model.

``import trainpipe`` is light: heavy libraries (mlflow, xgboost, lightgbm, torch, sklearn) load where used.

From Python: ``trainpipe.run("pipeline.yaml", overrides={...})`` does what ``trainpipe run`` does and returns a
:class:`RunResult`; ``trainpipe.load_config`` reads and validates a pipeline file.
"""

from trainpipe._api import RunResult, run
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
from trainpipe._hooks import HookList, Hooks, RecordingHooks
from trainpipe._version import __version__
from trainpipe.config import load_config

__all__ = [
    "ConfigError",
    "DataError",
    "DataValidationError",
    "GateRefused",
    "HookList",
    "Hooks",
    "MissingExtraError",
    "RecordingHooks",
    "RunResult",
    "StorageFull",
    "StoreError",
    "TrackingUnavailable",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainpipeError",
    "TuningFailed",
    "__version__",
    "load_config",
    "run",
]
