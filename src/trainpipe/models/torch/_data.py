"""Data for the engine: whole tensors in memory, batches by index slicing; optional Parquet chunks.

The engine sees a *source*: a number of segments, each a :class:`TensorData` that fits in memory.
An in-memory table is one segment. A Parquet file larger than memory is read one row group at a
time (:class:`ParquetChunks`); the engine shuffles the order of the row groups and the rows inside
each, so an epoch still visits every row once. No per-row ``Dataset.__getitem__`` anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch


class Batch(NamedTuple):
    """One batch of a :class:`TensorData`: what the engine hands to a module's ``training_step`` and
    ``validation_step``. The engine never looks inside it; it unpacks like ``inputs, target = batch``."""

    inputs: tuple[torch.Tensor, ...]
    target: torch.Tensor


@dataclass(frozen=True)
class TensorData:
    """Model inputs (one or more tensors, same first dimension) and the target."""

    inputs: tuple[torch.Tensor, ...]
    target: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def to(self, device: torch.device) -> TensorData:
        if self.target.device == device:
            return self
        return TensorData(tuple(t.to(device, non_blocking=True) for t in self.inputs),
                          self.target.to(device, non_blocking=True))

    def take(self, index: torch.Tensor) -> Batch:
        return Batch(tuple(t[index] for t in self.inputs), self.target[index])


class DataSource(Protocol):
    """Segments of data, each small enough to hold in memory (as tensors on the training device)."""

    def n_segments(self) -> int: ...

    def segment_lengths(self) -> list[int]: ...

    def segment(self, i: int, device: torch.device) -> TensorData: ...


class InMemory:
    """One segment: the whole table, moved to the device once."""

    def __init__(self, data: TensorData) -> None:
        self.data = data
        self._on: TensorData | None = None

    def n_segments(self) -> int:
        return 1

    def segment_lengths(self) -> list[int]:
        return [len(self.data)]

    def segment(self, i: int, device: torch.device) -> TensorData:
        if self._on is None or self._on.target.device != device:
            self._on = self.data.to(device)
        return self._on


def as_source(data: TensorData | DataSource) -> DataSource:
    return InMemory(data) if isinstance(data, TensorData) else data


MakeData = Callable[[np.ndarray, np.ndarray], TensorData]


def default_make_data(X: np.ndarray, y: np.ndarray) -> TensorData:
    y = np.ascontiguousarray(y)
    return TensorData((torch.from_numpy(dense_float32(X)),),
                      torch.from_numpy(y if y.flags.writeable else y.copy()))


class ParquetChunks:
    """A Parquet file read one row group at a time; ``make`` turns (features, target) arrays into tensors."""

    def __init__(self, path: Path | str, feature_columns: Sequence[str], target_column: str,
                 make: MakeData = default_make_data) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.feature_columns = list(feature_columns)
        self.target_column = target_column
        self.make = make
        meta = pq.ParquetFile(self.path).metadata
        self._lengths = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]

    def n_segments(self) -> int:
        return len(self._lengths)

    def segment_lengths(self) -> list[int]:
        return list(self._lengths)

    def segment(self, i: int, device: torch.device) -> TensorData:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(self.path).read_row_group(i, columns=[*self.feature_columns, self.target_column])
        X = np.column_stack([_column(table, c) for c in self.feature_columns]).astype(np.float32, copy=False)
        y = _column(table, self.target_column)
        return self.make(X, y).to(device)


def _column(table: Any, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))


# a sparse matrix (TF-IDF text features) is densified for the torch models up to this size, else refused
DENSE_LIMIT_BYTES = 2 * 1024**3


def dense_float32(X: Any) -> np.ndarray:
    """Dense, C-contiguous float32 from a numpy array or a scipy sparse matrix (at most
    :data:`DENSE_LIMIT_BYTES` once dense: a DataError, exit 2, names the size and what to change)."""
    if hasattr(X, "toarray"):
        rows, cols = X.shape
        if rows * cols * 4 > DENSE_LIMIT_BYTES:
            from trainpipe._exceptions import DataError

            raise DataError(
                f"the torch model trains on a dense matrix, and these sparse features ({rows} rows x {cols} "
                f"columns, most of them TF-IDF text features) would take {rows * cols * 4 / 1024**3:.1f} GiB "
                f"dense (limit {DENSE_LIMIT_BYTES / 1024**3:.0f} GiB). Lower features.text_options.max_features, "
                "or use a model that keeps them sparse (lightgbm, xgboost) or reads the text itself "
                "(text_encoder).")
        X = X.toarray()
    out = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    # torch.from_numpy shares memory and wants a writable array (a caller may pass a read-only or memory-mapped one)
    return out if out.flags.writeable else out.copy()
