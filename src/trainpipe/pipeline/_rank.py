"""The process's place under ``torchrun`` (leaf module: imports nothing of trainpipe)."""

from __future__ import annotations

import os


def distributed_rank() -> int:
    """This process's rank when started by ``torchrun`` (its ``RANK`` variable), else 0."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def world_size() -> int:
    """How many processes ``torchrun`` started (``WORLD_SIZE``), else 1."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


__all__ = ["distributed_rank", "world_size"]
