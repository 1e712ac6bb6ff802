"""Checkpoints: full training state (incl. every RNG) written atomically; top-k epoch checkpoints.

Everything is stored as tensors, numbers, strings, lists and dicts so that every file loads with
``torch.load(..., weights_only=True)``: no pickled objects.

Layout of a checkpoint directory::

    last.pt                 the latest full state (resume reads this)
    epoch-0007.pt           model weights of the k best epochs by validation metric
    topk.json               [{"epoch": 7, "metric": 0.31, "file": "epoch-0007.pt"}, ...]
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAST = "last.pt"
TOPK = "topk.json"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and (when present) CUDA generator states, as weights_only-safe values."""
    py = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos),
                  int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointDir:
    """A persistent folder of checkpoints; only the writer rank calls the write methods."""

    def __init__(self, directory: Path, keep_top_k: int = 3, mode: str = "min") -> None:
        self.directory = Path(directory)
        self.keep_top_k = keep_top_k
        self.mode = mode

    @property
    def last(self) -> Path:
        return self.directory / LAST

    def clear(self) -> None:
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def load_last(self) -> dict[str, Any] | None:
        return load(self.last) if self.last.exists() else None

    def save_last(self, state: dict[str, Any]) -> Path:
        atomic_save(state, self.last)
        return self.last

    def topk(self) -> list[dict[str, Any]]:
        path = self.directory / TOPK
        if not path.exists():
            return []
        entries: list[dict[str, Any]] = json.loads(path.read_text())
        return entries

    def offer_epoch(self, epoch: int, metric: float, model_state: dict[str, Any]) -> bool:
        """Keep this epoch's weights if it is among the k best; returns whether it was kept."""
        entries = [e for e in self.topk() if e["epoch"] != epoch]
        sign = 1.0 if self.mode == "min" else -1.0
        ranked = sorted([*entries, {"epoch": epoch, "metric": metric, "file": f"epoch-{epoch:04d}.pt"}],
                        key=lambda e: (sign * e["metric"], e["epoch"]))
        keep, drop = ranked[: self.keep_top_k], ranked[self.keep_top_k:]
        kept = any(e["epoch"] == epoch for e in keep)
        if kept:
            atomic_save({"epoch": epoch, "metric": metric, "model": model_state},
                        self.directory / f"epoch-{epoch:04d}.pt")
        atomic_write_text(json.dumps(keep, indent=1), self.directory / TOPK)
        for entry in drop:
            (self.directory / entry["file"]).unlink(missing_ok=True)
        # A process killed between writing an epoch file and the list (or before the unlinks above) left
        # files that no list names: they would never be deleted.
        listed = {e["file"] for e in keep}
        for orphan in self.directory.glob("epoch-*.pt"):
            if orphan.name not in listed:
                orphan.unlink(missing_ok=True)
        return kept
