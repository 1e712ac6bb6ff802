"""The PyTorch training engine shared by every torch model, and the tabular MLP.

A model family subclasses :class:`TrainpipeModule` (``training_step(batch) -> loss`` and the validation
hooks); the :class:`Engine` owns the loop, precision, DDP, checkpoints and :class:`Callback` s.

Importing this package imports torch; ``trainpipe`` itself never does at start-up.
"""

from trainpipe.models.torch._callbacks import Callback, EarlyStopping, MetricReporter
from trainpipe.models.torch._checkpoint import CheckpointDir
from trainpipe.models.torch._data import Batch, DataSource, InMemory, ParquetChunks, TensorData
from trainpipe.models.torch._distributed import DistInfo, dist_info_from_env
from trainpipe.models.torch._engine import Engine, EngineResult, LoopState, Objective
from trainpipe.models.torch._mlp import MLPSpec, TabularMLP, objective_for
from trainpipe.models.torch._module import SupervisedModule, TrainpipeModule
from trainpipe.models.torch._plots import loss_curve_png
from trainpipe.models.torch._setup import seed_everything

__all__ = [
    "Batch",
    "Callback",
    "CheckpointDir",
    "DataSource",
    "DistInfo",
    "EarlyStopping",
    "Engine",
    "EngineResult",
    "InMemory",
    "LoopState",
    "MLPSpec",
    "MetricReporter",
    "Objective",
    "ParquetChunks",
    "SupervisedModule",
    "TabularMLP",
    "TensorData",
    "TrainpipeModule",
    "dist_info_from_env",
    "loss_curve_png",
    "objective_for",
    "seed_everything",
]
