"""File locks for what SQLite's own locking leaves racy between processes on one machine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def sqlite_file_lock(url: str) -> Iterator[None]:
    """An exclusive ``flock`` on a file beside a ``sqlite:///`` database; nothing for other URLs.

    Serialises what SQLite's own locking leaves racy between processes: MLflow's and Optuna's schema
    creation and migration on a fresh file, Optuna's read-then-update trial claim. SQLite files are local
    to one machine, so a file lock covers every process that can open one.
    """
    path = url[len("sqlite:///"):].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    if path in ("", ":memory:"):
        yield
        return
    import fcntl

    fd = os.open(f"{path}.trainpipe-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


__all__ = ["sqlite_file_lock"]
