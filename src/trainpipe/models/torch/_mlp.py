"""The tabular MLP: numeric features beside embeddings of categorical codes. No training logic here: it is a
:class:`TrainpipeModule` with the default steps (forward, then the task's :class:`Objective`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainpipe.models.torch._module import TrainpipeModule

if TYPE_CHECKING:
    from trainpipe.models.torch._engine import Objective

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


def embedding_dim(cardinality: int) -> int:
    """Embedding width from the number of rows of the table (fast.ai's rule of thumb, capped at 50)."""
    return max(2, min(50, round(1.6 * cardinality**0.56)))


@dataclass(frozen=True)
class MLPSpec:
    """Everything needed to rebuild the network (stored as JSON next to the state_dict)."""

    n_inputs: int
    out_dim: int
    hidden_dims: tuple[int, ...] = (256, 128, 64)
    dropout: float = 0.1
    activation: str = "relu"
    batch_norm: bool = False
    categorical_columns: tuple[int, ...] = ()
    cardinalities: tuple[int, ...] = ()  # rows per embedding table, "unknown" row 0 included
    embedding_dims: tuple[int, ...] = field(default=())

    @property
    def numeric_columns(self) -> tuple[int, ...]:
        cats = set(self.categorical_columns)
        return tuple(i for i in range(self.n_inputs) if i not in cats)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MLPSpec:
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


class TabularMLP(TrainpipeModule):
    """``forward(x_num, x_cat)``: float (n, n_numeric) and int64 (n, n_categorical) codes shifted by +1.

    Trained with the default ``training_step`` (``objective.loss(self(*inputs), target)``); ``objective`` may
    be left out when the model is only used for prediction.
    """

    def __init__(self, spec: MLPSpec, objective: Objective | None = None) -> None:
        super().__init__(objective)
        self.spec = spec
        dims = spec.embedding_dims or tuple(embedding_dim(c) for c in spec.cardinalities)
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(spec.cardinalities, dims, strict=True))
        with torch.no_grad():  # row 0 is "unknown / unseen / missing": neutral, not random, if training never saw it
            for table in self.embeddings:
                weight: torch.Tensor = table.weight  # type: ignore[assignment]
                weight[0].zero_()
        width = len(spec.numeric_columns) + sum(dims)
        layers: list[nn.Module] = []
        act = ACTIVATIONS[spec.activation]
        for hidden in spec.hidden_dims:
            layers.append(nn.Linear(width, hidden))
            if spec.batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(act())
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            width = hidden
        layers.append(nn.Linear(width, spec.out_dim))
        self.body = nn.Sequential(*layers)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor | None = None) -> torch.Tensor:
        if x_cat is not None and self.embeddings:
            x_num = torch.cat([x_num, *(emb(x_cat[:, j]) for j, emb in enumerate(self.embeddings))], dim=1)
        out: torch.Tensor = self.body(x_num)
        return out

    def first_layer_importance(self) -> list[float]:
        """Per input column: norm of the first-layer weights it feeds (embeddings: weights x embedding spread)."""
        first = next(m for m in self.body if isinstance(m, nn.Linear))
        w = first.weight.detach().float()
        n_num = len(self.spec.numeric_columns)
        scores = [0.0] * self.spec.n_inputs
        for j, col in enumerate(self.spec.numeric_columns):
            scores[col] = float(w[:, j].norm())
        start = n_num
        for j, col in enumerate(self.spec.categorical_columns):
            table: nn.Embedding = self.embeddings[j]  # type: ignore[assignment]
            emb = table.weight.detach().float()
            block = w[:, start:start + emb.shape[1]]
            centred = emb - emb.mean(dim=0, keepdim=True)
            scores[col] = float((centred @ block.T).norm(dim=1).mean())
            start += emb.shape[1]
        return scores


def objective_for(task: str, target_std: float = 1.0) -> Objective:
    """Loss chosen from the task, plus one validation metric (accuracy, or RMSE in the target's units).

    binary: BCE-with-logits on one logit; multiclass: cross-entropy; regression: MSE on the standardised target.
    """
    from trainpipe.models.torch._engine import Objective

    if task == "binary":
        return Objective(nn.BCEWithLogitsLoss(), "accuracy",
                         lambda out, y: ((out > 0).to(y.dtype) == y).sum(), _ratio, higher_is_better=True)
    if task == "multiclass":
        return Objective(nn.CrossEntropyLoss(), "accuracy",
                         lambda out, y: (out.argmax(dim=1) == y).sum(), _ratio, higher_is_better=True)
    return Objective(nn.MSELoss(), "rmse", lambda out, y: ((out - y) ** 2).sum(),
                     lambda total, n: math.sqrt(total / max(n, 1.0)) * target_std)


def _ratio(total: float, n: float) -> float:
    return total / max(n, 1.0)


def out_dim_for(task: str, n_classes: int) -> int:
    return n_classes if task == "multiclass" else 1


def model_inputs(X: torch.Tensor, spec: MLPSpec) -> tuple[torch.Tensor, ...]:
    """Float matrix -> (numeric float32,) or (numeric, categorical int64 codes + 1; unseen/negative -> 0)."""
    num_idx = list(spec.numeric_columns)
    if not spec.categorical_columns:
        return (X.to(torch.float32).contiguous(),)
    x_num = X[:, num_idx].to(torch.float32).contiguous()
    codes = torch.nan_to_num(X[:, list(spec.categorical_columns)], nan=-1.0).round().to(torch.int64) + 1
    limits = torch.tensor(spec.cardinalities, dtype=torch.int64)
    codes = torch.where((codes < 0) | (codes >= limits), torch.zeros_like(codes), codes)
    return x_num, codes.contiguous()


def cardinalities_from(X: torch.Tensor, columns: Sequence[int]) -> tuple[int, ...]:
    """Max code seen in training + 2 per column (+1 for the shift, +1 for the count)."""
    out = []
    for col in columns:
        values = torch.nan_to_num(X[:, col], nan=-1.0)
        out.append(int(values.max().item()) + 2 if values.numel() else 2)
    return tuple(max(2, c) for c in out)
