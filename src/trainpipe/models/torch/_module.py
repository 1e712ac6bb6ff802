"""The model side of the torch engine: a network that says how to get its loss from a batch.

Lightning's split of model and Trainer. A :class:`TrainpipeModule` is an ``nn.Module`` with hooks the
engine calls; the engine owns the loop, precision (autocast, grad scaler), gradient accumulation,
clipping, DDP, checkpoints and callbacks, and never looks inside a batch:

- ``training_step(batch) -> loss``: a scalar tensor for one micro-batch, called under the engine's
  autocast with gradients on. The engine divides it over an accumulation window and calls ``backward``.
- ``validation_step(batch) -> {name: tensor}``: per-batch *sums* (one entry per name in
  ``validation_keys``), called under ``torch.no_grad()`` and autocast, in eval mode. The engine adds
  them up over the batches and all-reduces them across DDP ranks.
- ``validation_epoch_end(totals) -> {metric: float}``: turns the summed totals into the epoch's
  validation metrics (``val_loss`` is the one early stopping, top-k checkpoints and the plateau
  schedule watch).
- ``configure_parameters()``: what the optimizer trains (default: every parameter, in order);
  ``configure_objective(objective)``: the loss and metric of the default steps.

A batch is what the data source's ``take`` returns; for :class:`~trainpipe.models.torch.TensorData` a
``Batch(inputs, target)``. The defaults reproduce plain supervised training with an
:class:`~trainpipe.models.torch.Objective`: ``objective.loss(self(*inputs), target)``. A two-tower model
with in-batch negatives overrides ``training_step`` (scores of every query against every item of the
batch, cross-entropy against the diagonal) and keeps the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from trainpipe.models.torch._engine import Objective


class TrainpipeModule(nn.Module):
    """Base class of models trained by the engine; override the hooks that differ from supervised training."""

    #: the names ``validation_step`` returns, in a fixed order: every rank all-reduces the same vector,
    #: also a rank that has no validation rows.
    validation_keys: ClassVar[tuple[str, ...]] = ("loss", "metric", "count")

    def __init__(self, objective: Objective | None = None) -> None:
        super().__init__()
        # an Objective is a plain dataclass (its loss module is not registered): state_dict is the network's only
        self.objective = objective

    # ------------------------------------------------------------------ configure_*
    def configure_objective(self, objective: Objective) -> None:
        """The loss and the extra validation metric used by the default steps."""
        self.objective = objective

    def configure_parameters(self) -> Iterable[nn.Parameter]:
        """The parameters the optimizer updates (and gradient clipping sees), in a stable order."""
        return self.parameters()

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Any) -> torch.Tensor:
        """The loss of one micro-batch (a scalar tensor with a graph)."""
        inputs, target = batch
        loss: torch.Tensor = self._objective().loss(self(*inputs), target)
        return loss

    def validation_step(self, batch: Any) -> Mapping[str, torch.Tensor]:
        """Sums over the rows of one validation batch: the loss times the rows, the metric's sum, the rows."""
        obj = self._objective()
        inputs, target = batch
        out = self(*inputs).float()
        n = target.shape[0]
        return {"loss": obj.loss(out, target).double() * n, "metric": obj.metric_sum(out, target).double(),
                "count": torch.tensor(float(n), dtype=torch.float64, device=target.device)}

    def validation_epoch_end(self, totals: Mapping[str, float]) -> dict[str, float]:
        """The epoch's validation metrics from the summed (all-reduced) ``validation_step`` values."""
        obj = self._objective()
        n = totals["count"]
        return {"val_loss": totals["loss"] / max(n, 1.0),
                f"val_{obj.metric_name}": obj.metric_finish(totals["metric"], n)}

    def _objective(self) -> Objective:
        if self.objective is None:
            raise TypeError(
                f"{type(self).__name__} has no objective: pass one to the Engine or to configure_objective(), "
                "or override training_step, validation_step and validation_epoch_end")
        return self.objective


class SupervisedModule(TrainpipeModule):
    """A plain ``nn.Module`` plus an :class:`Objective`, trained with the default steps.

    The engine checkpoints the wrapped network itself (its own state_dict keys), not this wrapper.
    """

    def __init__(self, net: nn.Module, objective: Objective) -> None:
        super().__init__(objective)
        self.net = net

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.net(*inputs)


def as_module(model: nn.Module, objective: Objective | None) -> TrainpipeModule:
    """The module whose hooks the engine calls: ``model`` itself when it has them, else a supervised wrapper."""
    if isinstance(model, TrainpipeModule):
        if objective is not None:
            model.configure_objective(objective)
        return model
    if objective is None:
        raise TypeError(f"{type(model).__name__} is a plain nn.Module: pass an Objective to the Engine, or make it "
                        "a TrainpipeModule with its own training_step")
    return SupervisedModule(model, objective)


class TrainingStepForward(nn.Module):
    """``forward(batch) = module.training_step(batch)``: what DDP wraps, so that the step runs inside DDP's
    forward (which prepares the gradient all-reduce) while the module keeps its own ``forward``."""

    def __init__(self, module: TrainpipeModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: Any) -> torch.Tensor:
        return self.module.training_step(batch)
