"""Callbacks of the torch engine: a base class of no-op hooks (Lightning's ``callbacks/callback.py``).

The engine calls, in this order::

    on_fit_start                      before a checkpoint is restored (then load_state_dict, on --resume)
    per epoch:
      on_epoch_start(epoch)
      on_train_batch_end(loss)        after every micro-batch's backward (and optimizer step, at a boundary)
      on_validation_end(epoch, m)     when there is validation data
      on_train_epoch_end(epoch, m)    the epoch's metrics, before its checkpoint: decide to stop here
      on_checkpoint(path)             after every ``last.pt`` write (periodic, epoch end, interrupt)
      on_epoch_end(epoch, m)          after the epoch's checkpoint and the signal check: report here
    on_fit_end(result)

``epoch`` is 1-based (the number users see); ``engine.state`` holds the 0-based position (``epoch``,
``micro``, ``global_step``) and the history. A callback that keeps state across a resume returns it from
``state_dict`` (tensors, numbers, strings, lists, dicts: checkpoints load with ``weights_only=True``) and
takes it back in ``load_state_dict``; it is stored under ``state_key``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from trainpipe.models.torch._engine import Engine, EngineResult

EpochFn = Callable[[int, int, Mapping[str, float]], None]
StepFn = Callable[[int, float], None]


class Callback:
    """Hooks with no-op defaults; override the ones you need. Every rank calls them under DDP."""

    @property
    def state_key(self) -> str:
        return type(self).__qualname__

    def on_fit_start(self, engine: Engine) -> None:
        """Before training (and before a checkpoint is restored): reset per-fit state here."""

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        """Before the first micro-batch of ``epoch`` (also when a resumed run continues inside it)."""

    def on_train_batch_end(self, engine: Engine, loss: torch.Tensor) -> None:
        """After each micro-batch: ``loss`` is its detached loss on the device (reading it syncs the device)."""

    def on_validation_end(self, engine: Engine, epoch: int, metrics: Mapping[str, float]) -> None:
        """After validation at the end of ``epoch``; ``metrics`` holds ``train_loss`` and the ``val_*`` values."""

    def on_train_epoch_end(self, engine: Engine, epoch: int, metrics: Mapping[str, float]) -> None:
        """The epoch's metrics, before its checkpoint is written: call ``engine.request_stop()`` here."""

    def on_checkpoint(self, engine: Engine, path: Any) -> None:
        """After ``last.pt`` was written (rank 0 wrote it; every rank is told)."""

    def on_epoch_end(self, engine: Engine, epoch: int, metrics: Mapping[str, float]) -> None:
        """After the epoch's checkpoint: report metrics here (an exception, e.g. a pruned trial, ends the fit)."""

    def on_fit_end(self, engine: Engine, result: EngineResult) -> None:
        """After the last epoch, before the engine returns ``result`` (which callbacks may fill in)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without improvement of ``monitor``; keep and restore the best weights.

    Without ``monitor`` in the metrics (no validation data) the best weights are tracked on ``fallback``
    and training never stops early: the same rule the engine had before callbacks.
    """

    def __init__(self, patience: int, monitor: str = "val_loss", fallback: str = "train_loss",
                 mode: str = "min", restore_best: bool = True) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping mode: expected 'min' or 'max', got {mode!r}")
        self.patience, self.monitor, self.fallback = patience, monitor, fallback
        self.mode, self.restore_best = mode, restore_best
        self.on_fit_start(None)  # type: ignore[arg-type]

    def on_fit_start(self, engine: Engine) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0

    def _better(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

    def on_train_epoch_end(self, engine: Engine, epoch: int, metrics: Mapping[str, float]) -> None:
        watched = self.monitor in metrics
        value = metrics[self.monitor] if watched else metrics[self.fallback]
        if self._better(value) or self.best_state is None:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in engine.model.state_dict().items()}
        else:
            self.bad_epochs += 1
        if watched and self.bad_epochs >= self.patience:
            engine.request_stop()

    def on_fit_end(self, engine: Engine, result: EngineResult) -> None:
        result.best_epoch = self.best_epoch
        if self.restore_best and self.best_state is not None:
            engine.model.load_state_dict(self.best_state)

    @property
    def state_key(self) -> str:
        return "early_stopping"

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_state": self.best_state,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.best_state, self.bad_epochs = state["best_state"], state["bad_epochs"]


class MetricReporter(Callback):
    """Hands metrics to plain functions: ``on_epoch(epoch, total_epochs, metrics)`` after every epoch (the
    adapters' ``on_round``: progress, MLflow, Optuna pruning) and ``on_step(global_step, mean_loss)`` every
    ``every_n_steps`` optimizer steps, the mean over the micro-batches since the last report (the device is
    read only then, not at every step)."""

    def __init__(self, on_epoch: EpochFn | None = None, on_step: StepFn | None = None,
                 every_n_steps: int = 50) -> None:
        self.on_epoch, self.on_step, self.every_n_steps = on_epoch, on_step, max(1, every_n_steps)
        self.on_fit_start(None)  # type: ignore[arg-type]

    def on_fit_start(self, engine: Engine) -> None:
        self._sum: torch.Tensor | None = None
        self._count = 0
        self._reported = 0

    def on_train_batch_end(self, engine: Engine, loss: torch.Tensor) -> None:
        if self.on_step is None:
            return
        self._sum = loss.double() if self._sum is None else self._sum + loss
        self._count += 1
        step = engine.state.global_step
        if step > self._reported and step % self.every_n_steps == 0:
            self.on_step(step, float(self._sum) / self._count)
            self._sum, self._count, self._reported = None, 0, step

    def on_epoch_end(self, engine: Engine, epoch: int, metrics: Mapping[str, float]) -> None:
        if self.on_epoch is not None:
            self.on_epoch(epoch, engine.training.epochs, metrics)

    def state_dict(self) -> dict[str, Any]:  # a resumed run reports the same step means as an uninterrupted one
        return {"sum": float(self._sum) if self._sum is not None else None, "count": self._count,
                "reported": self._reported}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        total = state["sum"]
        self._sum = None if total is None else torch.tensor(total, dtype=torch.float64)
        self._count, self._reported = state["count"], state["reported"]


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` defines ``hook`` itself (the engine calls per-batch hooks only on those)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)
