"""File locks for what SQLite's own locking leaves racy between processes on one machine.

Only commands that write take a lock. Reading a store (``models list/show/history``, ``predict``) takes none,
so a read-only store (a mounted volume, a folder owned by another user) can still be read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL ("" for other URLs and for in-memory databases)."""
    path = url[len("sqlite:///"):].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    return "" if path == ":memory:" else path


@contextlib.contextmanager
def sqlite_file_lock(url: str) -> Iterator[None]:
    """An exclusive ``flock`` on a file beside a ``sqlite:///`` database; nothing for other URLs.

    Serialises what SQLite's own locking leaves racy between processes: MLflow's and Optuna's schema
    creation and migration on a fresh file, Optuna's read-then-update trial claim, alias moves. SQLite files
    are local to one machine, so a file lock covers every process that can open one. Only writers take it:
    a lock file that cannot be created (read-only folder or file system) is a :class:`ConfigError` (exit 2)
    naming it, raised before anything is changed.
    """
    path = sqlite_path(url)
    if not path:
        yield
        return
    import fcntl

    lock = f"{path}.trainpipe-lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        from trainpipe._exceptions import ConfigError

        raise ConfigError(
            f"the store {path} is not writable by this user: cannot open its lock file {lock} "
            f"({exc.strerror or type(exc).__name__}). This command changes the store, so it needs write access "
            f"to the folder {os.path.dirname(path) or '.'} (and the database file). Make them writable, or run "
            "it where the store is writable; nothing was changed. Reading commands (models list/show/history, "
            "predict) work on a read-only store."
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


__all__ = ["sqlite_file_lock", "sqlite_path"]
