"""Creating a new SQLite tracking store without an ``fdatasync`` per schema step.

MLflow creates a store by running its ~60 schema migrations, each its own transaction: about 1,080
``fdatasync`` calls for one empty file (``strace -f -c``). On a quiet disk they cost ~0.7 s of the first run of
a project; on a busy one seconds (7 s against 1.7 s without them, measured on a shared 2-core machine). A store
that is being created holds nothing yet: if the machine crashes half-way, it is broken either way (which is why
the creation runs under the store's file lock). So while a *new* ``sqlite:///`` file is created, its
connections run with ``PRAGMA synchronous=OFF``; when the creation is over, every connection opened meanwhile
goes back to the level it had (SQLite's default, FULL), so the run's own writes are as durable as before, and
the first of them syncs the whole file to disk.

Only connections to that one file are touched (checked with ``PRAGMA database_list``); an existing store,
any other URI, and other databases of the process are left alone.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


def _new_sqlite_file(uri: str) -> str | None:
    """The file of a ``sqlite:///`` URI that does not exist yet (or is empty), else None."""
    from trainpipe._locks import sqlite_path

    path = sqlite_path(uri)
    if not path:
        return None
    try:
        return None if os.path.getsize(path) > 0 else os.path.realpath(path)
    except OSError:
        return os.path.realpath(path)


def _file_of(connection: Any) -> str | None:
    try:
        rows = connection.execute("PRAGMA database_list").fetchall()
    except Exception:  # not an sqlite3 connection
        return None
    for _, name, file in rows:
        if name == "main" and file:
            return os.path.realpath(file)
    return None


@contextlib.contextmanager
def unsynced_while_created(uri: str) -> Iterator[None]:
    """Inside the block, connections to the new SQLite file of ``uri`` skip ``fdatasync``; on leaving it they
    sync again. Does nothing when ``uri`` is not a SQLite file that is about to be created."""
    target = _new_sqlite_file(uri)
    if target is None:
        yield
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    touched: list[tuple[Any, int]] = []  # (sqlite3 connection, its level before); held only for the block

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if _file_of(dbapi_connection) != target:
            return
        with contextlib.suppress(Exception):  # never in the way of creating the store: it then syncs as before
            level = int(dbapi_connection.execute("PRAGMA synchronous").fetchone()[0])
            dbapi_connection.execute("PRAGMA synchronous=OFF")
            touched.append((dbapi_connection, level))

    event.listen(Engine, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(Engine, "connect", on_connect)
        for connection, level in touched:
            with contextlib.suppress(Exception):  # closed meanwhile: nothing left to restore
                connection.execute(f"PRAGMA synchronous={level}")
        touched.clear()


__all__ = ["unsynced_while_created"]
