"""DDP plumbing: rank/world from the torchrun environment, process group, index sharding, all-reduce."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Only rank 0 logs, writes checkpoints and files."""
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    """``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as set by torchrun; a plain process is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def init_process_group(info: DistInfo, device: torch.device) -> bool:
    """Initialise the default group (nccl on CUDA, gloo on CPU) unless done already; True if we did it."""
    if not info.is_distributed or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    # A rank that died (disk full while checkpointing, a tracking error on rank 0) must not leave the others
    # waiting in a collective for torch's default 30 minutes: TRAINPIPE_DDP_TIMEOUT seconds, default 600.
    timeout = timedelta(seconds=float(os.environ.get("TRAINPIPE_DDP_TIMEOUT", "600")))
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, timeout=timeout)
    return True


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The same permutation on every rank for a given (seed, epoch): DistributedSampler's ``set_epoch``."""
    gen = torch.Generator()
    gen.manual_seed(seed + epoch)
    return torch.randperm(n, generator=gen)


def shard(indices: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's share, padded by wrapping so every rank gets the same count (DistributedSampler semantics)."""
    if not info.is_distributed:
        return indices
    n = indices.numel()
    per_rank = -(-n // info.world_size)
    total = per_rank * info.world_size
    if total > n:
        indices = torch.cat([indices, indices[: total - n]])
    return indices[info.rank:total:info.world_size]


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.is_distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True if the flag is set on any rank (used so every rank stops at the same step on SIGTERM)."""
    if not info.is_distributed:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.is_distributed and dist.is_initialized():
        dist.barrier()
