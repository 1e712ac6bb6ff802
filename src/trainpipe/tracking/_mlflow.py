"""The real tracker: MLflow through ``MlflowClient`` (no global fluent state), batched writes."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainpipe._locks import sqlite_file_lock
from trainpipe.config._secrets import redact_uri, scrub

_PARAM_MAX = 6000
_BATCH_PARAMS = 100
_BATCH_METRICS = 1000
_BATCH_TAGS = 100


def _key(name: str) -> str:
    """A metric, param or tag name MLflow accepts: ``@`` (ranking cut-offs, ``ndcg@10``) is refused in keys, so
    it is written ``_at_`` (``test_ndcg_at_10``)."""
    return name.replace("@", "_at_")
DEFAULT_DIR = ".trainpipe"
# The MLflow UI (3.x) opens an experiment by this tag: without it, in the GenAI view; "custom_model_development"
# (the UI's name for model training, next to "genai_development" and "finetuning") opens it on its runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


# MLflow's own defaults (7 retries with backoff, 120 s timeout) keep one call to a dead server busy for
# about 4 minutes; every one of a run's calls would wait that long. Users can still set their own.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5"}


def bound_http_defaults() -> None:
    """Bounded retries and timeouts for MLflow's HTTP calls, unless the user set them (read per call)."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


# A database URI (MLflow's SQLAlchemy store): libpq waits for ever on a host that drops packets (it reads
# PGCONNECT_TIMEOUT), and MLflow's engine creation retries 10 times with backoff (about 100 s) before it says
# the database is down. trainpipe asks once itself, with a bounded wait, before MLflow does.
DB_CONNECT_TIMEOUT = "10"


def _is_database_uri(uri: str) -> bool:
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    return scheme in {"postgresql", "postgres", "mysql", "mssql"}


def probe_database(uri: str) -> None:
    """Connect once to the database a SQLAlchemy store URI names; a database that does not answer is a
    :class:`~trainpipe.ConfigError` naming the URI (password redacted) and what to do."""
    if not _is_database_uri(uri):
        return
    os.environ.setdefault("PGCONNECT_TIMEOUT", DB_CONNECT_TIMEOUT)
    _quiet_store_logger()
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from trainpipe._exceptions import ConfigError
    from trainpipe.tracking._journal import is_unreachable

    try:
        engine = sqlalchemy.create_engine(uri, poolclass=NullPool)
    except Exception:  # a driver or URL problem: MLflow's own message (below) says which
        return
    try:
        with engine.connect():
            pass
    except Exception as exc:
        orig = getattr(exc, "orig", None) or exc
        why = scrub(redact_uri(" ".join(str(orig).split())[:300]))
        if is_unreachable(exc):
            raise ConfigError(
                f"tracking.uri: the MLflow tracking database {redact_uri(uri)} does not answer ({why}). Start the "
                "database (or check its host, port and firewall) and run again, or point tracking.uri (or "
                "MLFLOW_TRACKING_URI) at a store that is running; nothing was run."
            ) from None
        if type(orig).__name__ in {"OperationalError", "InterfaceError"} or type(exc).__name__ == "OperationalError":
            raise ConfigError(  # a wrong password, user or database name: MLflow would retry it for ~100 s too
                f"tracking.uri: cannot connect to the MLflow tracking database {redact_uri(uri)} ({why}). Check "
                "the user, password and database name in the URI (the database must exist); nothing was run."
            ) from None
        return  # anything else: MLflow's own error, below, says it
    finally:
        engine.dispose()


class _DropUnreachable:
    """MLflow logs every SQLAlchemy OperationalError with a traceback (``mlflow.store.db.utils``); a database
    that went away is reported by trainpipe (offline, ``runs sync``), so those records are dropped."""

    def filter(self, record: Any) -> bool:
        from trainpipe.tracking._journal import _DB_GONE, is_unreachable

        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            return not is_unreachable(exc)
        text = record.getMessage().lower()
        return not ("sqlalchemy" in text and any(marker in text for marker in _DB_GONE))


def _quiet_store_logger() -> None:
    import logging

    logger = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _DropUnreachable) for f in logger.filters):
        logger.addFilter(_DropUnreachable())


def default_tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{(workdir / DEFAULT_DIR / 'mlflow.db').resolve()}"


def resolve_tracking_uri(configured: str | None, workdir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` wins, then ``tracking.uri``, then the embedded SQLite store."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if configured:
        return configured
    return default_tracking_uri(workdir)


class MlflowTracker:
    """Implements :class:`~trainpipe.tracking.Tracker` on an MLflow tracking store or server."""

    def __init__(self, uri: str, experiment: str, artifact_root: Path | None = None) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        bound_http_defaults()
        # MLflow prints "View run NAME at: URI" after every run it ends on a server, credentials included
        if redact_uri(uri) != uri or "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT" not in os.environ:
            os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        from mlflow.tracking import MlflowClient

        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self._uri = uri
        probe_database(uri)  # a database that is down: exit 2 now, not after MLflow's ~100 s of retries
        from trainpipe.tracking._relocate import check_moved

        # a copied or moved project: its store names the old artifact folder (see tracking/_relocate.py)
        note = check_moved(uri, artifact_root.parent) if artifact_root is not None else ""
        self.notes = [note] if note else []
        try:
            # Two runs starting on a fresh store race through MLflow's table creation and migrations, which
            # can leave the file broken for good: the first one in creates the store, the other waits.
            # a new SQLite file is a copy of a migrated empty store, or else created without an fdatasync per
            # migration (see tracking/_new_store.py)
            from trainpipe.tracking import _new_store

            copied = False
            with sqlite_file_lock(uri):
                copied = _new_store.copy_migrated_template(uri)
                with _new_store.unsynced_while_created(uri):
                    self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
                    self.experiment_id = self._experiment(experiment, artifact_root)
                    if uri.startswith("sqlite:///"):
                        self.client.search_registered_models(max_results=1)  # the registry's tables too, now
        except Exception as exc:  # MLflow raises several unrelated types for a bad or unreachable URI
            from trainpipe._exceptions import ConfigError

            if copied:  # never seen: the next run creates the store (and the template) afresh
                _new_store.discard_copied_store(uri)

            first = redact_uri(str(exc).strip().splitlines()[0][:300]) if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"tracking.uri: cannot use the MLflow tracking store {redact_uri(uri)} ({first}). Expected "
                "sqlite:///path/to.db, http(s)://host:port of a running mlflow server, or a database URL; "
                "MLFLOW_TRACKING_URI overrides tracking.uri."
            ) from exc

    @property
    def uri(self) -> str:
        return redact_uri(self._uri)

    @property
    def connection_uri(self) -> str:
        """The URI as given, credentials included: for connecting (the model registry), never for logging."""
        return self._uri

    def _experiment(self, name: str, artifact_root: Path | None) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            if not found.tags.get(EXPERIMENT_KIND_TAG):  # one made before, or by hand: opens on its runs now
                self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return str(found.experiment_id)
        location = None
        if artifact_root is not None:
            location = (artifact_root / name).resolve().as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location,
                                                     tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}))
        except MlflowException:
            # another process created it between our lookup and create
            again = self.client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    def start_run(self, name: str, *, parent_id: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        all_tags = {k: scrub(str(v)) for k, v in (tags or {}).items()}
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id, run_name=scrub(name), tags=all_tags)
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(_key(k), scrub(str(v))[:_PARAM_MAX]) for k, v in params.items()]
        for i in range(0, len(items), _BATCH_PARAMS):
            self.client.log_batch(run_id, params=items[i : i + _BATCH_PARAMS], synchronous=True)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(_key(scrub(k)), float(v), now, step or 0) for k, v in metrics.items()]
        self._metrics(run_id, items)

    def log_metric_history(self, run_id: str, key: str, values: Sequence[float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._metrics(run_id, [Metric(_key(key), float(v), now, i) for i, v in enumerate(values)])

    def _metrics(self, run_id: str, items: list[Any]) -> None:
        for i in range(0, len(items), _BATCH_METRICS):
            self.client.log_batch(run_id, metrics=items[i : i + _BATCH_METRICS], synchronous=True)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(_key(k), scrub(str(v))[:_PARAM_MAX]) for k, v in tags.items()]
        for i in range(0, len(items), _BATCH_TAGS):
            self.client.log_batch(run_id, tags=items[i : i + _BATCH_TAGS], synchronous=True)

    def log_inputs(self, run_id: str, datasets: Sequence[Mapping[str, Any]]) -> None:
        from trainpipe.tracking._datasets import dataset_inputs

        scrubbed = [{**d, "source": scrub(str(d["source"]))} for d in datasets]
        if scrubbed:
            self.client.log_inputs(run_id, datasets=dataset_inputs(scrubbed))

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        with _scrubbed(path) as path:
            self._log_artifact(run_id, path, artifact_path)

    def _log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)


_TEXT_ARTIFACTS = (".json", ".yaml", ".yml", ".md", ".txt", ".csv", ".html", ".log", "")
_SCRUB_MAX_BYTES = 20_000_000


@contextmanager
def _scrubbed(path: Path) -> Iterator[Path]:
    """``path``, or a copy of it (same name, in a temporary folder) whose text files have every secret masked
    (:func:`~trainpipe.config._secrets.scrub`): nothing uploaded holds a token or a URI password."""
    files = [f for f in (path.rglob("*") if path.is_dir() else [path]) if f.is_file()
             and f.suffix.lower() in _TEXT_ARTIFACTS and f.stat().st_size <= _SCRUB_MAX_BYTES]
    changed: dict[Path, str] = {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        clean = scrub(text)
        if clean != text:
            changed[f] = clean
    if not changed:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="trainpipe-scrub-") as tmp:
        copy = Path(tmp) / path.name
        if path.is_dir():
            shutil.copytree(path, copy)
        else:
            shutil.copyfile(path, copy)
        for f, clean in changed.items():
            target = copy / f.relative_to(path) if path.is_dir() else copy
            target.write_text(clean, encoding="utf-8")
        yield copy
