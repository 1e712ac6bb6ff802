"""The training loop shared by every torch model.

Hot path: the data sits on the device as whole tensors; each step indexes them with a slice of a
seeded permutation; the per-step loss is copied into a device buffer (no ``.item()`` per step) that
is checked for NaN/inf every few steps and before every checkpoint, so a checkpoint is never bad.

Resume is exact on CPU: a checkpoint holds model, optimizer, scheduler, scaler, every RNG state, the
callbacks' state and the position (epoch, segment, step) and is written only at an optimizer-step boundary.

The engine never looks inside a batch: the module's ``training_step(batch)`` gives the loss and its
``validation_step``/``validation_epoch_end`` the validation metrics (``_module.py``). Early stopping with
best-weight restore and metric reporting are callbacks (``_callbacks.py``); checkpoints stay in the engine,
which writes them at the exact points a bitwise resume needs.
"""

from __future__ import annotations

import gc
import logging
import math
import pickle
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainpipe._exceptions import ConfigError, DataError, TrainingDiverged, TrainingInterrupted
from trainpipe.models.torch import _checkpoint as ckpt
from trainpipe.models.torch import _distributed as D
from trainpipe.models.torch._callbacks import Callback, EarlyStopping, MetricReporter, overrides
from trainpipe.models.torch._data import DataSource, TensorData, as_source
from trainpipe.models.torch._module import TrainingStepForward, as_module
from trainpipe.models.torch._setup import (
    PER_STEP_SCHEDULES,
    SignalGuard,
    build_optimizer,
    build_scheduler,
    flat_parameters,
    rank_step_seed,
    resolve_device,
    resolve_precision,
    seed_everything,
)

if TYPE_CHECKING:
    from trainpipe.config import TrainingConfig

log = logging.getLogger("trainpipe.torch")
EpochCallback = Callable[[int, int, Mapping[str, float]], None]


@dataclass(frozen=True)
class Objective:
    """The loss and one extra validation metric, computed from per-batch sums so ranks can all-reduce them."""

    loss: nn.Module
    metric_name: str
    metric_sum: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metric_finish: Callable[[float, float], float]  # (sum, count) -> value
    higher_is_better: bool = False


@dataclass
class EngineResult:
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None  # 1-based
    n_epochs: int = 0
    stopped_early: bool = False
    resumed_from: str | None = None
    notes: list[str] = field(default_factory=list)  # things the user should hear about (rank 0's)


@dataclass
class LoopState:
    """Where the loop is (0-based epoch), what it has recorded, and whether a callback asked it to stop."""

    epoch: int = 0
    segment: int = 0  # position in the epoch's segment order
    step: int = 0  # next micro-batch inside the segment
    micro: int = 0  # micro-batches done in this epoch
    global_step: int = 0  # optimizer steps
    history: dict[str, list[float]] = field(default_factory=dict)
    finished: bool = False  # a callback (early stopping) asked to stop
    losses: torch.Tensor | None = None  # per micro-batch losses of the current epoch
    sizes: torch.Tensor | None = None  # rows per micro-batch, same order (recomputed, not saved)


class Engine:
    """Trains ``model``: a :class:`TrainpipeModule` (its own ``training_step``; ``objective`` may be None) or a
    plain ``nn.Module`` with an ``objective`` (forward + loss). ``model``'s own state_dict is what is checkpointed.

    ``callbacks`` run in order after the defaults: an :class:`EarlyStopping` from
    ``training.early_stopping_patience`` unless one is given.
    """

    def __init__(self, model: nn.Module, objective: Objective | None, training: TrainingConfig, *,
                 callbacks: Sequence[Callback] = (), weight_decay: float | None = None,
                 checkpoint_dir: Path | None = None, resume: bool = False,
                 keep_top_k: int = 3, nan_check_every: int = 25, eval_batch_size: int = 8192) -> None:
        self.model = model
        self.module = as_module(model, objective)
        self.training = training
        self.callbacks: list[Callback] = list(callbacks)
        if not any(isinstance(cb, EarlyStopping) for cb in self.callbacks):
            self.callbacks.insert(0, EarlyStopping(training.early_stopping_patience))
        self.state = LoopState()
        self.weight_decay = weight_decay
        self.dist = D.dist_info_from_env()
        self.device = resolve_device(training.device, self.dist.local_rank)
        self.precision = resolve_precision(training.precision, self.device)
        self.checkpoints = ckpt.CheckpointDir(checkpoint_dir, keep_top_k) if checkpoint_dir is not None else None
        self.resume = resume
        self.nan_check_every = max(1, nan_check_every)
        self.eval_batch_size = eval_batch_size
        self.last_good: tuple[Path, int] | None = None

    # ------------------------------------------------------------------ setup
    def _plan(self, source: DataSource) -> tuple[int, list[int]]:
        """Per-rank batch size and the micro-batches of each segment (same on every rank).

        A segment's last micro-batch holds what is left (``perm[step * per_rank:]``). When the model has
        BatchNorm, a micro-batch of one row cannot be trained (``BatchNorm1d`` raises "Expected more than
        1 value per channel when training"), so a 1-row tail is folded into the batch before it, which
        gets ``per_rank + 1`` rows (no row is dropped, unlike ``drop_last``); a segment of a single row
        (per process) has no batch to join and is skipped, with a warning. The plan is a pure function of
        the segment lengths, batch size and world size, so every rank and a resumed run compute the
        same one (resume stays bitwise). Models without BatchNorm keep their 1-row tails.
        """
        world = self.dist.world_size
        per_rank = max(1, self.training.batch_size // world)
        if self.training.batch_size % world and self.dist.is_writer:
            log.warning("training.batch_size %d is not divisible by %d processes; using %d per process",
                        self.training.batch_size, world, per_rank)
        lengths = source.segment_lengths()
        counts = [math.ceil(math.ceil(n / world) / per_rank) for n in lengths]
        if not _has_batch_norm(self.module):
            return per_rank, counts
        procs = f" per process ({world} processes)" if world > 1 else ""
        if per_rank < 2:
            raise ConfigError(
                f"training.batch_size: the model has BatchNorm layers, which need at least 2 rows per batch"
                f"{procs}, got {per_rank}. Use training.batch_size >= {2 * world} or model.params.batch_norm: "
                "false.")
        skipped = 0
        for i, n in enumerate(lengths):
            rows = math.ceil(n / world)
            if counts[i] and rows - per_rank * (counts[i] - 1) == 1:
                counts[i] -= 1  # fold the 1-row tail into the previous batch; a 1-row segment: skip it
                skipped += counts[i] == 0
        if sum(counts) == 0 and sum(lengths) > 0:
            raise DataError(
                f"the model has BatchNorm layers, which need at least 2 training rows per batch, but there is "
                f"only 1 training row{procs}. Use more training data{' or fewer processes' if world > 1 else ''}, "
                "or set model.params.batch_norm: false.")
        if skipped and self.dist.is_writer:
            log.warning("%d data segment(s) of a single row%s skipped in every epoch: BatchNorm cannot train on "
                        "a batch of one row", skipped, procs)
        return per_rank, counts

    def request_stop(self) -> None:
        """Finish after the current epoch (its checkpoint is still written): what early stopping calls."""
        self.state.finished = True

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def fit(self, train: TensorData | DataSource, val: TensorData | DataSource | None = None,
            on_epoch: EpochCallback | None = None) -> EngineResult:
        """Train; ``on_epoch(epoch, total, metrics)`` is a shorthand for a :class:`MetricReporter` for this fit."""
        callbacks = self.callbacks
        if on_epoch is not None:
            self.callbacks = [*callbacks, MetricReporter(on_epoch=on_epoch)]
        try:
            return self._fit(train, val)
        finally:
            self.callbacks = callbacks

    def _fit(self, train: TensorData | DataSource, val: TensorData | DataSource | None) -> EngineResult:
        t = self.training
        created_group = D.init_process_group(self.dist, self.device)
        seed_everything(t.seed)
        source, val_source = as_source(train), (as_source(val) if val is not None else None)
        per_rank, counts = self._plan(source)
        micro_per_epoch = sum(counts)
        steps_per_epoch = math.ceil(micro_per_epoch / t.grad_accum_steps)
        module = self.module.to(self.device)
        optimizer = build_optimizer(t.optimizer, module.configure_parameters(), t.learning_rate, self.weight_decay)
        scheduler = build_scheduler(t.scheduler, optimizer, t, steps_per_epoch * t.epochs)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.scaler)
        st = self.state = LoopState()
        result = EngineResult()
        self._call("on_fit_start")
        if self.checkpoints is not None:
            st, result.resumed_from = self._start(optimizer, scheduler, scaler, st)
            self.state = st
            repaired = self.checkpoints.repair_topk() if self.resume and self.dist.is_writer else None
            if repaired is not None:  # before any training: a damaged list used to fail after the first epoch
                log.info("%s", repaired)  # the caller shows result.notes (the CLI prints them as notes)
                result.notes.append(repaired)
        net: nn.Module = module
        if self.dist.is_distributed:  # the step runs inside DDP's forward, which prepares the gradient all-reduce
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(TrainingStepForward(module), device_ids=ids)
        guard = SignalGuard()
        with guard.active():
            while st.epoch < t.epochs and not st.finished:
                self._call("on_epoch_start", st.epoch + 1)
                self._train_epoch(net, source, per_rank, counts, optimizer, scheduler, scaler, st, guard)
                metrics = self._end_epoch(val_source, scheduler, st)
                path = self._checkpoint_epoch(optimizer, scheduler, scaler, st, metrics)
                if D.any_rank(guard.signum is not None, self.dist, self.device):  # e.g. during validation
                    self._interrupted(guard.signum or signal.SIGTERM, path)
                self._call("on_epoch_end", st.epoch, metrics)
        result.stopped_early = st.finished
        result.history, result.n_epochs = st.history, st.epoch
        self._call("on_fit_end", result)
        D.barrier(self.dist)
        if created_group:
            # Ours to close: a gloo group left to interpreter shutdown can abort a rank that exits while
            # its peer is still writing ("terminate called without an active exception", SIGABRT). DDP's
            # reducer holds the group too, and DDP sits in reference cycles: left to the collector, the C++
            # group (and its worker threads) could be freed only during interpreter finalization, which
            # aborted a rank now and then under CI load although destroy_process_group had been called
            # (pytorch/pytorch#179291 describes the finalization crash). Free the wrapper first, now.
            del net
            gc.collect()
            D.destroy_process_group()
            gc.collect()
        return result

    def _start(self, optimizer: Any, scheduler: Any, scaler: Any,
               st: LoopState) -> tuple[LoopState, str | None]:
        assert self.checkpoints is not None
        if not self.resume:
            if self.dist.is_writer:
                self.checkpoints.clear()
            D.barrier(self.dist)
            return st, None
        try:
            state = self.checkpoints.load_last()
            if state is None:
                return st, None
            self.model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            ckpt.set_rng_state(state["rng"])
            pos = state["position"]
            samples = pos["samples_in_segment"]
            per_rank = max(1, self.training.batch_size // self.dist.world_size)
            st = LoopState(epoch=pos["epoch"], segment=pos["segment"],
                           step=samples // (per_rank * self.dist.world_size), micro=pos["micro"],
                           global_step=pos["global_step"], history=state["history"], finished=state["finished"],
                           losses=state["losses"].to(self.device))
            saved = _callback_states(state)
            for cb in self.callbacks:
                if cb.state_key in saved:
                    cb.load_state_dict(saved[cb.state_key])
        except (RuntimeError, KeyError, ValueError, TypeError, EOFError, OSError, pickle.UnpicklingError) as exc:
            raise DataError(
                f"--resume: the checkpoint {self.checkpoints.last} cannot be used ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]}); it is damaged or from another model. Delete "
                f"{self.checkpoints.directory} or run without --resume to train from scratch."
            ) from exc
        self.last_good = (self.checkpoints.last, st.global_step)
        if self.dist.is_writer:
            log.info("resumed from %s (epoch %d, step %d)", self.checkpoints.last, st.epoch + 1, st.global_step)
        return st, str(self.checkpoints.last)

    # ------------------------------------------------------------------ the loop
    def _train_epoch(self, net: nn.Module, source: DataSource, per_rank: int, counts: list[int], optimizer: Any,
                     scheduler: Any, scaler: Any, st: LoopState, guard: SignalGuard) -> None:
        t, dev, accum = self.training, self.device, self.training.grad_accum_steps
        total_micro = sum(counts)
        if st.losses is None or st.micro == 0:
            st.losses = torch.zeros(total_micro, device=dev)
        losses = st.losses if st.losses.numel() == total_micro else _grown(st.losses, total_micro)
        st.losses = losses
        params = [p for p in flat_parameters(self.module.configure_parameters()) if p.requires_grad]
        training_step = net if self.dist.is_distributed else self.module.training_step
        batch_hooks = [cb for cb in self.callbacks if overrides(cb, "on_train_batch_end")]
        order = D.epoch_permutation(source.n_segments(), t.seed + 7_919, st.epoch).tolist()
        st.sizes = _batch_sizes(order, counts, source.segment_lengths(), per_rank, self.dist.world_size)
        checked = st.micro
        net.train()
        while st.segment < len(order):
            seg_id = order[st.segment]
            n_steps = counts[seg_id]
            if n_steps == 0:  # a 1-row segment of a BatchNorm model (see _plan)
                st.segment += 1
                st.step = 0
                continue
            data = source.segment(seg_id, dev)
            perm = D.shard(D.epoch_permutation(len(data), t.seed + 1_000_003 * seg_id, st.epoch), self.dist)
            perm = perm.to(dev)
            while st.step < n_steps:
                # the segment's last batch takes every row left: one more than per_rank when _plan folded a tail
                end = (st.step + 1) * per_rank if st.step + 1 < n_steps else perm.numel()
                idx = perm[st.step * per_rank:end]
                batch = data.take(idx)
                last_micro = st.micro + 1 == total_micro
                boundary = (st.micro + 1) % accum == 0 or last_micro
                ddp_hold = self.dist.is_distributed and not boundary
                sync = net.no_sync() if ddp_hold else _null()  # type: ignore[operator]
                if self.dist.is_distributed:
                    torch.manual_seed(rank_step_seed(t.seed, self.dist.rank, st.epoch, st.segment, st.step))
                with sync:
                    with self.precision.autocast(dev):
                        loss = training_step(batch)
                    # the mean over the micro-batches of this window: the last window of an epoch can be short
                    window = min(accum, total_micro - (st.micro // accum) * accum)
                    scaled = loss / window if window > 1 else loss
                    if self.precision.scaler:
                        scaled = scaler.scale(scaled)
                    scaled.backward()
                detached = loss.detach()
                losses[st.micro].copy_(detached)
                st.micro += 1
                st.step += 1
                if boundary:
                    self._optimizer_step(params, optimizer, scheduler, scaler)
                    st.global_step += 1
                for cb in batch_hooks:
                    cb.on_train_batch_end(self, detached)
                if not boundary:
                    continue
                if st.global_step % self.nan_check_every == 0:
                    self._check_finite(st, checked, params)
                    checked = st.micro
                stop = False
                if not self.dist.is_distributed or st.global_step % 10 == 0:
                    stop = D.any_rank(guard.signum is not None, self.dist, dev)
                periodic = self.checkpoints is not None and st.global_step % t.checkpoint_every == 0
                if (periodic and not last_micro) or stop:
                    self._check_finite(st, checked, params)
                    checked = st.micro
                    path = self._save_last(optimizer, scheduler, scaler, st)
                    if stop:
                        self._interrupted(guard.signum or signal.SIGTERM, path)
            st.segment += 1
            st.step = 0
        self._check_finite(st, checked, params)

    def _optimizer_step(self, params: list[nn.Parameter], optimizer: Any, scheduler: Any, scaler: Any) -> None:
        clip = self.training.gradient_clip_norm
        if self.precision.scaler:
            if clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            if clip is not None:
                nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None and self.training.scheduler in PER_STEP_SCHEDULES:
            scheduler.step()

    def _check_finite(self, st: LoopState, start: int, params: list[nn.Parameter] | None = None) -> None:
        """Losses since ``start`` (and, before a checkpoint or at epoch end, the weights) are finite."""
        assert st.losses is not None
        window = st.losses[start:st.micro]
        bad = bool((~torch.isfinite(window)).any().item()) if window.numel() else False
        weights_bad = not bad and params is not None and not all(bool(p.isfinite().all()) for p in params)
        if not D.any_rank(bad or weights_bad, self.dist, self.device):
            return
        first = start + int((~torch.isfinite(window)).nonzero()[0].item()) if bad else st.micro - 1
        step = first // self.training.grad_accum_steps + 1
        t = self.training
        raise TrainingDiverged(
            f"training diverged: the {'loss' if bad else 'model weights'} became NaN or infinite at epoch "
            f"{st.epoch + 1}, batch {first + 1} of "
            f"the epoch (optimizer step {st.global_step - (st.micro - first - 1) // t.grad_accum_steps}, "
            f"{step} in this epoch). {self._divergence_advice()}"
        )

    def _divergence_advice(self) -> str:
        t = self.training
        where = (f"{self.last_good[0]} (optimizer step {self.last_good[1]})" if self.last_good
                 else "none (no checkpoint was written before this point)")
        hints = [f"lower training.learning_rate (now {t.learning_rate:g})"]
        hints.append("set training.gradient_clip_norm (e.g. 1.0)" if t.gradient_clip_norm is None
                     else f"lower training.gradient_clip_norm (now {t.gradient_clip_norm:g})")
        if t.precision != "fp32":
            hints.append(f"use training.precision: fp32 (now {t.precision})")
        hints.append("check the features for extreme values")
        return f"Last good checkpoint: {where}. Try: {'; '.join(hints)}."

    def _end_epoch(self, val: DataSource | None, scheduler: Any, st: LoopState) -> dict[str, float]:
        assert st.losses is not None and st.sizes is not None
        sizes = st.sizes.to(st.losses.device)
        sums = torch.stack([(st.losses * sizes).sum(), sizes.sum()])
        sums = D.all_reduce_sum(sums.double(), self.dist)
        metrics = {"train_loss": float(sums[0] / sums[1])}
        if val is not None:
            metrics.update(self.evaluate(val))
            if not math.isfinite(metrics.get("val_loss", 0.0)):  # the same on every rank: it is all-reduced
                raise TrainingDiverged(
                    f"training diverged: the validation loss is {metrics['val_loss']} after epoch {st.epoch + 1} "
                    f"while the training loss is {metrics['train_loss']:.6g}: the model's outputs overflow on "
                    f"validation rows. {self._divergence_advice()}")
        for key, value in metrics.items():
            st.history.setdefault(key, []).append(value)
        monitor = metrics.get("val_loss", metrics["train_loss"])
        if scheduler is not None and self.training.scheduler == "plateau":
            scheduler.step(monitor)
        elif scheduler is not None and self.training.scheduler == "step":
            scheduler.step()
        if val is not None:
            self._call("on_validation_end", st.epoch + 1, metrics)
        self._call("on_train_epoch_end", st.epoch + 1, metrics)
        st.epoch, st.segment, st.step, st.micro = st.epoch + 1, 0, 0, 0
        return metrics

    @torch.no_grad()
    def evaluate(self, val: DataSource | TensorData) -> dict[str, float]:
        """The module's validation metrics over this rank's share, its per-batch sums all-reduced across ranks."""
        module, dev = self.module, self.device  # no DDP forward: ranks may have one batch more or less here
        module.eval()
        keys = module.validation_keys
        totals = torch.zeros(len(keys), dtype=torch.float64, device=dev)
        source = as_source(val)
        for i in range(source.n_segments()):
            data = source.segment(i, dev)
            mine = torch.arange(self.dist.rank, len(data), self.dist.world_size, device=dev)
            for start in range(0, mine.numel(), self.eval_batch_size):
                with self.precision.autocast(dev):
                    sums = module.validation_step(data.take(mine[start:start + self.eval_batch_size]))
                totals += _stacked(sums, keys, type(module).__name__, dev)
        totals = D.all_reduce_sum(totals, self.dist)
        module.train()
        return module.validation_epoch_end(dict(zip(keys, totals.tolist(), strict=True)))

    # ------------------------------------------------------------------ checkpoints
    def _full_state(self, optimizer: Any, scheduler: Any, scaler: Any, st: LoopState) -> dict[str, Any]:
        per_rank = max(1, self.training.batch_size // self.dist.world_size)
        return {
            "format": 2, "model": _unwrap(self.model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(), "rng": ckpt.rng_state(),
            "position": {"epoch": st.epoch, "segment": st.segment, "micro": st.micro,
                         "samples_in_segment": st.step * per_rank * self.dist.world_size,
                         "global_step": st.global_step, "world_size": self.dist.world_size},
            "history": st.history, "finished": st.finished,
            "callbacks": {cb.state_key: cb.state_dict() for cb in self.callbacks},
            "losses": (st.losses if st.losses is not None else torch.zeros(0)).detach().cpu(),
        }

    def _save_last(self, optimizer: Any, scheduler: Any, scaler: Any, st: LoopState) -> Path | None:
        if self.checkpoints is None:
            return None
        if self.dist.is_writer:
            self.checkpoints.save_last(self._full_state(optimizer, scheduler, scaler, st))
        D.barrier(self.dist)
        self.last_good = (self.checkpoints.last, st.global_step)
        self._call("on_checkpoint", self.checkpoints.last)
        return self.checkpoints.last

    def _checkpoint_epoch(self, optimizer: Any, scheduler: Any, scaler: Any, st: LoopState,
                          metrics: Mapping[str, float]) -> Path | None:
        if self.checkpoints is None:
            return None
        path = self._save_last(optimizer, scheduler, scaler, st)
        if self.dist.is_writer and "val_loss" in metrics:
            self.checkpoints.offer_epoch(st.epoch, metrics["val_loss"], _unwrap(self.model).state_dict())
        return path

    def _interrupted(self, signum: int, path: Path | None) -> None:
        name = signal.Signals(signum).name
        where = f"checkpoint written to {path}; resume with --resume" if path is not None \
            else "no checkpoint directory was configured, so nothing was saved"
        raise TrainingInterrupted(signum, f"interrupted by signal {name}; {where}")


def _callback_states(state: Mapping[str, Any]) -> dict[str, Any]:
    """The callbacks' saved state; a format-1 checkpoint kept early stopping's fields at the top level."""
    if "callbacks" in state:
        saved: dict[str, Any] = state["callbacks"]
        return saved
    return {"early_stopping": {k: state[k] for k in ("best", "best_epoch", "best_state", "bad_epochs")}}


def _stacked(sums: Mapping[str, torch.Tensor], keys: tuple[str, ...], name: str,
             device: torch.device) -> torch.Tensor:
    """A validation_step's values in ``validation_keys`` order, as one float64 vector."""
    if set(sums) != set(keys):
        raise TypeError(f"{name}.validation_step returned the keys {sorted(sums)}, but its validation_keys are "
                        f"{list(keys)}: return exactly those (per-batch sums), or change validation_keys")
    return torch.stack([torch.as_tensor(sums[k], device=device).to(torch.float64).reshape(()) for k in keys])


def _has_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def _unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def _batch_sizes(order: list[int], counts: list[int], lengths: list[int], per_rank: int,
                 world: int) -> torch.Tensor:
    """Rows per micro-batch in processing order (a segment's last batch may be short): weights of the loss."""
    sizes: list[float] = []
    for seg in order:
        rows = math.ceil(lengths[seg] / world)
        n = counts[seg]
        if n == 0:
            continue
        sizes.extend([float(per_rank)] * (n - 1))
        sizes.append(float(rows - per_rank * (n - 1)))
    return torch.tensor(sizes)


def _grown(t: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.zeros(n, device=t.device, dtype=t.dtype)
    out[: min(n, t.numel())] = t[: min(n, t.numel())]
    return out


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
