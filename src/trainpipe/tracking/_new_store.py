"""Creating a new SQLite tracking store: as a copy of a migrated empty one, else without an ``fdatasync`` per
schema step.

:func:`copy_migrated_template` puts a copy of an empty store that MLflow migrated once (per MLflow, SQLAlchemy
and SQLite version, kept in ``trainpipe/__pycache__``) where the new store goes; MLflow then opens it as an
existing store and adds what it adds to a new one. That spares loading and running the ~60 migration scripts
(~0.65 s CPU of a project's first run). Where no template can be made, MLflow creates the store itself:

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


TEMPLATE_ENV = "TRAINPIPE_STORE_TEMPLATE"  # "0": every new store runs MLflow's migrations itself
_TEMPLATE_PREFIX = "mlflow-store-template-"


def _template_key() -> str | None:
    """What the migrated schema depends on: the MLflow, SQLAlchemy and SQLite versions and MLflow's list of
    migration scripts (a patched MLflow with another script gets another template). None when the scripts
    cannot be listed."""
    import hashlib
    import sqlite3

    import mlflow
    import sqlalchemy

    try:
        scripts = sorted(os.listdir(os.path.join(os.path.dirname(mlflow.__file__), "store", "db_migrations",
                                                 "versions")))
    except OSError:
        return None
    text = "\n".join([mlflow.__version__, sqlalchemy.__version__, sqlite3.sqlite_version, *scripts])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_dir() -> str:
    """``trainpipe/__pycache__``: beside Python's bytecode cache, it goes with the installed package."""
    import trainpipe

    return os.path.join(os.path.dirname(trainpipe.__file__), "__pycache__")


def _is_sqlite_file(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _build_template(path: str) -> None:
    """A SQLite file at ``path`` holding MLflow's migrated schema and nothing else: what MLflow's store does
    for a new file (``_initialize_tables``: create the tables, run the migrations) before it adds its
    ``Default`` experiment, whose artifact location names the folder of the store it opens. Written under a
    temporary name and renamed, so a file at ``path`` is always complete."""
    import uuid

    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    building = f"{path}.{uuid.uuid4().hex[:8]}.building"
    uri = f"sqlite:///{building}"
    try:
        with unsynced_while_created(uri):
            engine = sqlalchemy.create_engine(uri)
            try:
                _initialize_tables(engine)
            finally:
                engine.dispose()
        with open(building, "rb") as fh:  # on disk before it is named: a crash never leaves a torn template
            os.fsync(fh.fileno())
        os.replace(building, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(building)


def copy_migrated_template(uri: str) -> bool:
    """Create the new SQLite store of ``uri`` as a copy of a migrated empty one, instead of running MLflow's
    ~60 schema migrations in it (~0.65 s CPU of a project's first run: the migration scripts are loaded and
    executed one by one). MLflow then opens it as an existing store: it checks the schema version, adds its
    ``Default`` experiment, and the store holds what a store MLflow created itself holds (same tables, indexes,
    alembic version and rows; MLflow's own creations differ from each other only in the order of the DDL).

    The template is made once per MLflow/SQLAlchemy/SQLite version, by MLflow's own table creation, in
    ``trainpipe/__pycache__``; where that folder is read-only, or anything about the template fails, nothing
    is copied and MLflow creates the store as before. Returns whether a copy was made. Call it under the
    store's file lock (two processes creating one store: the second finds it there)."""
    target = _new_sqlite_file(uri)
    if target is None or os.environ.get(TEMPLATE_ENV, "1") == "0":
        return False
    import shutil
    import uuid

    try:
        key = _template_key()
        if key is None:
            return False
        folder = _cache_dir()
        template = os.path.join(folder, f"{_TEMPLATE_PREFIX}{key}.db")
        if not _is_sqlite_file(template):
            os.makedirs(folder, exist_ok=True)
            _build_template(template)
            for old in os.listdir(folder):  # templates of other MLflow versions
                if old.startswith(_TEMPLATE_PREFIX) and old.endswith(".db") and old != os.path.basename(template):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(folder, old))
        partial = f"{target}.{uuid.uuid4().hex[:8]}.template"
        try:
            shutil.copyfile(template, partial)
            os.replace(partial, target)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(partial)
    except Exception:  # a read-only package folder, a full disk, an MLflow without these helpers: as before
        return False
    return True


def discard_copied_store(uri: str) -> None:
    """After MLflow refused a store copied from the template: remove it (and the template) and forget MLflow's
    engine for it, so that the store is created afresh."""
    from trainpipe._locks import sqlite_path

    with contextlib.suppress(Exception):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        engine = SqlAlchemyStore._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()
    with contextlib.suppress(OSError):
        os.unlink(sqlite_path(uri))
    with contextlib.suppress(Exception):
        key = _template_key()
        os.unlink(os.path.join(_cache_dir(), f"{_TEMPLATE_PREFIX}{key}.db"))


__all__ = ["copy_migrated_template", "discard_copied_store", "unsynced_while_created"]
