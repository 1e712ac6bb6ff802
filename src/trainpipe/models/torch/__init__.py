"""The PyTorch training engine shared by every torch model, and the tabular MLP.

Importing this package imports torch; ``trainpipe`` itself never does at start-up.
"""

from trainpipe.models.torch._checkpoint import CheckpointDir
from trainpipe.models.torch._data import DataSource, InMemory, ParquetChunks, TensorData
from trainpipe.models.torch._distributed import DistInfo, dist_info_from_env
from trainpipe.models.torch._engine import Engine, EngineResult, Objective
from trainpipe.models.torch._mlp import MLPSpec, TabularMLP, objective_for
from trainpipe.models.torch._plots import loss_curve_png
from trainpipe.models.torch._setup import seed_everything

__all__ = [
    "CheckpointDir",
    "DataSource",
    "DistInfo",
    "Engine",
    "EngineResult",
    "InMemory",
    "MLPSpec",
    "Objective",
    "ParquetChunks",
    "TabularMLP",
    "TensorData",
    "dist_info_from_env",
    "loss_curve_png",
    "objective_for",
    "seed_everything",
]
