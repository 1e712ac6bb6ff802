"""What the loop is built from: device, precision, optimizer, schedule, seeding, the signal guard."""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainpipe._exceptions import ConfigError

if TYPE_CHECKING:
    from trainpipe.config import TrainingConfig

log = logging.getLogger("trainpipe.torch")

PER_STEP_SCHEDULES = ("cosine", "one_cycle")


def seed_everything(seed: int) -> None:
    """Python, numpy and torch generators from ``training.seed`` (dropout draws from torch's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


_MASK64 = (1 << 64) - 1


def rank_step_seed(seed: int, rank: int, epoch: int, segment: int, step: int) -> int:
    """A seed for one micro-batch of one DDP rank: a pure function of where it is, so that every rank
    draws its own dropout masks (with one seed everywhere, all ranks would drop the same units on
    different rows) and a resumed run, which restores only rank 0's generator state, still draws exactly
    what an uninterrupted run would. splitmix64 over the five numbers; below 2**63 for ``manual_seed``."""
    x = 0
    for part in (seed, rank, epoch, segment, step):
        x = (x ^ (part & _MASK64)) + 0x9E3779B97F4A7C15 & _MASK64
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
        x ^= x >> 31
    return x >> 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device: 'cuda' was asked for but no CUDA device is available to torch "
                          f"{torch.__version__}. Use device: auto or cpu.")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return torch.device("cpu")


@dataclass(frozen=True)
class Precision:
    """Autocast dtype (None: fp32) and whether a gradient scaler is used (fp16 on CUDA only)."""

    dtype: torch.dtype | None
    scaler: bool

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def resolve_precision(name: str, device: torch.device) -> Precision:
    if name == "bf16":
        return Precision(torch.bfloat16, scaler=False)
    if name == "fp16":
        if device.type == "cuda":
            return Precision(torch.float16, scaler=True)
        log.warning("training.precision fp16 needs CUDA; using bf16 autocast on %s instead", device.type)
        return Precision(torch.bfloat16, scaler=False)
    return Precision(None, scaler=False)


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float,
                    weight_decay: float | None) -> torch.optim.Optimizer:
    """adam, adamw (default weight decay 0.01) or sgd (momentum 0.9); the fused kernels where torch has them
    (CPU and CUDA: one kernel per step instead of a loop over parameters).

    ``params`` may also be parameter groups (``{"params": [...], "lr_scale": s}``, what a module's
    ``configure_parameters`` returns for layer-wise learning rates): each group trains at ``lr * lr_scale``."""
    groups: list[Any] = list(params)
    if any(isinstance(g, dict) for g in groups):
        groups = [{"params": list(g["params"]), "lr": lr * float(g.get("lr_scale", 1.0))}
                  if isinstance(g, dict) else {"params": [g]} for g in groups]
    params = flat_parameters(groups)
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    extra: dict[str, Any] = {"fused": True} if fused else {}
    if groups and isinstance(groups[0], dict):
        params = groups
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay or 0.0, **extra)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay or 0.0, **extra)
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01 if weight_decay is None else weight_decay, **extra)


def flat_parameters(params: Iterable[Any]) -> list[torch.nn.Parameter]:
    """The parameters of a list of parameters or of parameter groups (dicts with ``params``), in order."""
    out: list[torch.nn.Parameter] = []
    for item in params:
        out.extend(item["params"] if isinstance(item, dict) else [item])
    return out


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, training: TrainingConfig,
                    total_steps: int) -> Any:
    """cosine and one_cycle step per optimizer step; step and plateau once per epoch; none: None."""
    sched = torch.optim.lr_scheduler
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if name == "one_cycle":
        # each parameter group peaks at its own learning rate (layer-wise decay), the first at training's
        return sched.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                total_steps=max(1, total_steps))
    if name == "step":
        return sched.StepLR(optimizer, step_size=max(1, training.epochs // 3), gamma=0.1)
    if name == "plateau":
        return sched.ReduceLROnPlateau(optimizer, mode="min", factor=0.5,
                                       patience=max(0, training.early_stopping_patience // 2))
    return None


class SignalGuard:
    """While active, SIGTERM/SIGINT only set a flag; the loop checkpoints at the next step and stops.

    A repeated signal (an impatient second Ctrl-C while the interrupt checkpoint is being written) is only
    counted: it cannot cut the write or replace the message that names the checkpoint. The first signal is
    the one reported, except that SIGTERM wins over SIGINT (a preemption: exit 143), as in
    ``trainpipe._signals.Deferred``. Once the engine has raised, the handlers in place before are back.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.repeats = 0
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None or signum == signal.SIGTERM:
            self.repeats += self.signum is not None
            self.signum = signum
        else:
            self.repeats += 1

    @contextlib.contextmanager
    def active(self) -> Iterator[SignalGuard]:
        main = threading.current_thread() is threading.main_thread()
        if main:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            if main:
                for sig, handler in self._previous.items():
                    signal.signal(sig, handler)
                self._previous.clear()
