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
import pickle
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAST = "last.pt"
TOPK = "topk.json"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    _atomic_write(path, "wb", lambda fh: torch.save(obj, fh))


def atomic_write_text(text: str, path: Path) -> None:
    _atomic_write(path, "w", lambda fh: fh.write(text))


def _atomic_write(path: Path, mode: str, write: Callable[[Any], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        """The list in ``topk.json``; rebuilt from the ``epoch-*.pt`` files when it is missing or damaged."""
        return self._read_topk()[0]

    def repair_topk(self) -> str | None:
        """Rewrite a damaged ``topk.json`` from the epoch files present; says what it did (None: nothing to do).

        The list is only an index of the epoch files, which hold their own epoch and metric: a damaged list
        (a disk that filled up, a hand edit) is rebuilt rather than stopping a resume, the way a damaged
        ``last.pt`` must. Called before training, so the note comes first and ``offer_epoch`` reads a good list.
        """
        entries, problem = self._read_topk()
        if problem is None:
            return None
        atomic_write_text(json.dumps(entries, indent=1), self.directory / TOPK)
        kept = ", ".join(str(e["epoch"]) for e in entries) or "none"
        return (f"{self.directory / TOPK} was damaged ({problem}); rebuilt it from the epoch checkpoint files "
                f"present (epochs kept: {kept})")

    def _read_topk(self) -> tuple[list[dict[str, Any]], str | None]:
        """(entries, why the file could not be used: None when it was fine or absent)."""
        path = self.directory / TOPK
        if not path.exists():
            return self._scan_epochs(), None
        try:
            return _checked_entries(json.loads(path.read_text())), None
        except (ValueError, TypeError, KeyError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError too
            detail = str(exc).splitlines()[0][:120] if str(exc) else ""
            return self._scan_epochs(), f"{type(exc).__name__}: {detail}"

    def _scan_epochs(self) -> list[dict[str, Any]]:
        """The k best of the readable ``epoch-*.pt`` files (an unreadable one is left to the orphan sweep)."""
        entries = []
        for file in sorted(self.directory.glob("epoch-*.pt")):
            try:
                state = load(file)
                entry = _checked_entries([{"epoch": state["epoch"], "metric": state["metric"], "file": file.name}])
            except (RuntimeError, KeyError, ValueError, TypeError, EOFError, OSError, pickle.UnpicklingError):
                continue  # damaged too: not listed, so the next offer_epoch deletes it as an orphan
            entries.extend(entry)
        return self._ranked(entries)[: self.keep_top_k]

    def _ranked(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sign = 1.0 if self.mode == "min" else -1.0
        return sorted(entries, key=lambda e: (sign * e["metric"], e["epoch"]))

    def offer_epoch(self, epoch: int, metric: float, model_state: dict[str, Any]) -> bool:
        """Keep this epoch's weights if it is among the k best; returns whether it was kept."""
        entries = [e for e in self.topk() if e["epoch"] != epoch]
        ranked = self._ranked([*entries, {"epoch": epoch, "metric": metric, "file": _epoch_file(epoch)}])
        keep, drop = ranked[: self.keep_top_k], ranked[self.keep_top_k:]
        kept = any(e["epoch"] == epoch for e in keep)
        if kept:
            atomic_save({"epoch": epoch, "metric": metric, "model": model_state}, self.directory / _epoch_file(epoch))
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


def _epoch_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.pt"


def _checked_entries(data: Any) -> list[dict[str, Any]]:
    """``topk.json``'s entries, or ValueError/TypeError/KeyError if they are not what ``offer_epoch`` writes.
    A ``file`` must be the epoch's own name: the list decides what is deleted, so never a path elsewhere."""
    if not isinstance(data, list):
        raise TypeError(f"expected a list, got {type(data).__name__}")
    entries = []
    for item in data:
        epoch, metric, file = item["epoch"], item["metric"], item["file"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or isinstance(metric, bool) \
                or not isinstance(metric, int | float) or file != _epoch_file(epoch):
            raise ValueError(f"not an entry written by trainpipe: {item!r}"[:200])
        entries.append({"epoch": epoch, "metric": float(metric), "file": file})
    return entries
