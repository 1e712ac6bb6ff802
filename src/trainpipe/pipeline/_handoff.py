"""In-process hand-off of step artifacts: a file a step wrote or read is not decoded again by a later step
of the same process.

Every step still writes its outputs to disk (the cache, ``trainpipe step`` and the orchestrators read
them there); this only spares the re-reading when the whole pipeline runs in one process. An entry is
keyed by the file's identity, ``(device, inode, size, mtime)``, not by its path: the runner publishes a
step's outputs by renaming and hard-linking them into the cache and the run directory, which keeps the
identity, while a file that was replaced or rewritten gets a new one and is read again, never served
stale.

- Data frames are kept after they are first *read* (``read_frame``): the second reader gets exactly what
  ``pandas.read_parquet`` returned, as a shallow copy (pandas copy-on-write keeps the entry unchanged).
- Values derived from such a frame (``derived``: the row hashes validate and split both take of the
  ingested table) are kept with the file's identity and a key naming what they are, read-only.
- Numeric arrays are kept when they are *written* (``save_array``): ``np.load(np.save(a))`` is ``a`` bit for
  bit. They are handed over, not shared: the first reader gets the very array (writable, as from
  ``np.load``; a custom estimator may centre X in place) and the entry is gone, so a second reader of the
  file (the train step after tune) loads it from disk.

Entries are dropped oldest-first beyond ``TRAINPIPE_HANDOFF_MB`` (default 2048 MB; 0 turns it off), and
all of them when a pipeline run ends (``clear``), so a long-lived process holds nothing between runs.

:func:`background_writes` lets a step write its large outputs on a worker thread while it goes on computing
(``numpy.save`` and Parquet writes run without the GIL): every write is finished, or its error raised, before
the block ends, so the runner still seals only complete files.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import numpy as np
    import pandas as pd

_DEFAULT_MB = 2048
_lock = threading.Lock()
_entries: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()


def _limit_bytes() -> int:
    try:
        return max(0, int(os.environ.get("TRAINPIPE_HANDOFF_MB", _DEFAULT_MB))) * 1024 * 1024
    except ValueError:
        return _DEFAULT_MB * 1024 * 1024


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _get(path: Path, take: bool = False) -> Any:
    key = _identity(path)
    if key is None:
        return None
    with _lock:
        entry = _entries.pop(key, None) if take else _entries.get(key)
        if entry is None:
            return None
        if not take:
            _entries.move_to_end(key)
        return entry[0]


def _put(path: Path, value: Any, nbytes: int, suffix: tuple[str, ...] = ()) -> None:
    limit = _limit_bytes()
    identity = _identity(path)
    if identity is None or nbytes > limit:
        return
    key = (*identity, *suffix)
    with _lock:
        _entries[key] = (value, nbytes)
        _entries.move_to_end(key)
        total = sum(e[1] for e in _entries.values())
        while total > limit and _entries:
            _, (_, dropped) = _entries.popitem(last=False)
            total -= dropped


def clear() -> None:
    """Forget every entry (tests; a long-lived process between pipelines)."""
    with _lock:
        _entries.clear()


def read_frame(path: Path) -> pd.DataFrame:
    """``pandas.read_parquet(path)``, decoded once per process while the file is unchanged."""
    import pandas as pd

    cached = _get(path)
    if cached is None:
        cached = pd.read_parquet(path)
        _put(path, cached, int(cached.memory_usage(index=True, deep=True).sum()))
    return cached.copy(deep=False)


def derived(path: Path, key: tuple[str, ...], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``: an array derived from the frame :func:`read_frame` gives for ``path`` and from ``key``
    alone (e.g. ``("row_hashes", *columns)``), kept while the file is unchanged, so a later step of this process
    that derives the same ``key`` from the same file gets it without computing it again. Read-only: every
    caller shares it."""
    identity = _identity(path)
    full = None if identity is None else (*identity, *key)
    if full is not None:
        with _lock:
            entry = _entries.get(full)
        if entry is not None:
            return entry[0]
    value = compute()
    value.setflags(write=False)
    _put(path, value, int(value.nbytes), key)
    return value


def save_array(array: np.ndarray, path: Path) -> None:
    """``numpy.save`` (``path`` ends in ``.npy``); a numeric array is also kept for :func:`load_array`."""
    import numpy as np

    array = np.ascontiguousarray(array)
    np.save(path, array)
    if array.dtype.kind in "biufc" and array.flags.writeable:  # numbers only: load_array takes no pickles
        _put(path, array, int(array.nbytes))


def load_array(path: Path) -> np.ndarray:
    """``numpy.load(path)`` (no pickles), or, once, the array :func:`save_array` wrote to this unchanged
    file (the caller owns it from then on)."""
    import numpy as np

    cached = _get(path, take=True)
    if cached is not None:
        return cached
    return np.load(path, allow_pickle=False)


@contextlib.contextmanager
def background_writes() -> Iterator[Callable[..., None]]:
    """``with background_writes() as submit: submit(save_array, X, path)``: each call runs, in order, on one
    worker thread while the block goes on. When the block ends every write has finished: the first write
    error is raised then (an error of the block itself wins, and the writes still finish first, so nothing
    is left writing into a folder the runner removes)."""
    from concurrent.futures import Future, ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainpipe-write")
    futures: list[Future[Any]] = []

    def submit(fn: Callable[..., Any], *args: Any) -> None:
        futures.append(pool.submit(fn, *args))

    try:
        yield submit
    finally:
        pool.shutdown(wait=True)
    for future in futures:
        future.result()  # re-raises a failed write in the step's thread
