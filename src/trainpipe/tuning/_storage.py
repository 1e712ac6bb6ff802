"""Where a study lives: in-process, SQLite or PostgreSQL (Optuna's RDB storage), or a journal file.

* no ``tuning.storage``: in memory, gone when the process ends;
* ``sqlite:///optuna.db``: resumable after an interruption (one machine; a few processes at most);
* ``postgresql://user@host/db``: many workers on many machines share one study;
* ``journal:///path/to/study.log``: several processes on one machine without SQLite's locking.

RDB storages record a heartbeat per running trial; a trial whose worker stopped beating (killed,
preempted machine) is failed by the next worker that looks and retried once (Optuna's
``RetryHeartbeatStaleTrialCallback(max_retry=1)``; ``RetryFailedTrialCallback`` before Optuna 4.9). The
journal has no heartbeat: there a trial whose worker process on this host no longer exists is failed and
retried the same way (see ``_queue``).
"""

from __future__ import annotations

import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError
from trainpipe._locks import sqlite_file_lock
from trainpipe.config._secrets import redact_uri

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna
    from optuna.trial import FrozenTrial

HEARTBEAT_ENV = "TRAINPIPE_TUNING_HEARTBEAT"  # seconds between heartbeats (default 10)
GRACE_ENV = "TRAINPIPE_TUNING_GRACE"  # seconds without a heartbeat before a trial is stale (default 3x)
MAX_RETRY = 1
_SCHEMA_ATTEMPTS = 6


def _schema_race(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(m in text for m in ("already exists", "duplicate key", "uniqueviolation", "database is locked",
                                   "unique constraint failed"))


@dataclass(frozen=True)
class StorageSpec:
    kind: str  # memory | rdb | journal
    url: str  # "" for memory; the RDB URL; the journal file path

    @property
    def shown(self) -> str:
        return redact_uri(self.url) if self.url else "in-memory"


def parse_storage(url: str | None) -> StorageSpec:
    """Check ``tuning.storage`` without connecting (config time)."""
    if not url:
        return StorageSpec("memory", "")
    if url.startswith("journal://"):
        path = url[len("journal://"):]
        if not path:
            raise ConfigError("tuning.storage: journal:// needs a file path, e.g. journal:///tmp/study.log.")
        return StorageSpec("journal", path)
    if url.startswith("sqlite:///") or url.startswith(("postgresql", "mysql")):
        if url.startswith("sqlite:///") and len(url) == len("sqlite:///"):
            raise ConfigError("tuning.storage: sqlite:/// needs a file path, e.g. sqlite:///optuna.db.")
        return StorageSpec("rdb", url)
    raise ConfigError(
        f"tuning.storage: unsupported storage {redact_uri(url)!r}. Expected sqlite:///path.db, "
        "postgresql://user@host:port/db, journal:///path/to/file.log, or nothing (in memory)."
    )


def heartbeat_settings() -> tuple[int, int]:
    def read(name: str, default: int) -> int:
        raw = os.environ.get(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a whole number of seconds, got {raw!r}.") from None
        if value < 1:
            raise ConfigError(f"{name}: expected at least 1 second, got {value}.")
        return value

    interval = read(HEARTBEAT_ENV, 10)
    return interval, read(GRACE_ENV, 3 * interval)


def open_storage(spec: StorageSpec) -> optuna.storages.BaseStorage:
    import optuna

    if spec.kind == "memory":
        return optuna.storages.InMemoryStorage()
    if spec.kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(spec.url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    interval, grace = heartbeat_settings()
    engine_kwargs: dict[str, Any] = {}
    if spec.url.startswith("sqlite:///"):
        Path(spec.url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        with sqlite_file_lock(spec.url):
            return _open_rdb(spec.url, engine_kwargs, interval, grace)
    except ImportError as exc:
        raise ConfigError(f"tuning.storage: {spec.shown} needs a database driver that is not installed "
                          f"({exc}). For PostgreSQL: pip install 'psycopg[binary]'.") from exc
    except Exception as exc:  # SQLAlchemy raises many types for an unreachable or invalid database
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"tuning.storage: cannot open the study storage {spec.shown} "
                          f"({redact_uri(first)}). Is the database running and reachable?") from exc


def retry_callback() -> Callable[[optuna.Study, FrozenTrial], None]:
    """Optuna's callback that queues a failed trial again with the same parameters (once)."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)  # Optuna >= 4.9
        if cls is None:
            cls = optuna.storages.RetryFailedTrialCallback
        return cls(max_retry=MAX_RETRY)


def _open_rdb(url: str, engine_kwargs: dict[str, Any], interval: int, grace: int) -> optuna.storages.RDBStorage:
    import optuna
    from optuna.exceptions import ExperimentalWarning

    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                # Optuna 4.9 renamed the argument (failed_trial_callback, deprecated, goes in 6.0)
                new_name = hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
                key = "heartbeat_stale_trial_callback" if new_name else "failed_trial_callback"
                callback: dict[str, Any] = {key: retry_callback()}
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=interval,
                                                  grace_period=grace, **callback)
        except Exception as exc:
            # Workers starting together on a fresh PostgreSQL database race to create Optuna's tables (on
            # SQLite the file lock serialises them); the losers see "duplicate key"/"already exists" and
            # find the tables there on the next try.
            if attempt + 1 == _SCHEMA_ATTEMPTS or not _schema_race(exc):
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))
    raise AssertionError("unreachable")
