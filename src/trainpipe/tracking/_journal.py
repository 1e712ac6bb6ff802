"""A tracker that never loses a record: every call is journaled in the run directory before it is sent.

:class:`JournaledTracker` wraps the real tracker for one pipeline run. Each call becomes one line of
``tracking_journal.jsonl`` (appended before anything goes over the network); a call that reached the store
gets an ``ack`` line. Two modes:

- write-through (the default): the call is sent at once;
- held (:meth:`JournaledTracker.held`): calls are only journaled; :meth:`JournaledTracker.flush` sends them
  later. The runner journals inside signal-deferred sections and talks to the server after them, so a
  SIGTERM is never held back by a network wait.

When the server stops answering (bounded retries spent: :func:`~trainpipe.tracking.bound_http_defaults`),
the tracker goes *offline*: no further call goes out, runs started from then on get local ids
(``offline-…``), and the raw MLflow client handed to the registry steps raises
:class:`~trainpipe.TrackingUnavailable`. ``trainpipe runs sync RUN_ID`` replays what has no ``ack``.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainpipe._exceptions import TrackingUnavailable

JOURNAL = "tracking_journal.jsonl"
OFFLINE_PREFIX = "offline-"
_NET_NAMES = {"ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout", "MaxRetryError",
              "NewConnectionError", "ProtocolError", "RemoteDisconnected", "ConnectionRefusedError"}
# A tracking store that is a database (MLflow's SQLAlchemy store on PostgreSQL/MySQL): the driver raises an
# OperationalError (psycopg, pymysql; SQLAlchemy wraps it, MLflow wraps that as TEMPORARILY_UNAVAILABLE). The
# same type also means a bad query or a locked SQLite file, so only these texts count as "the database is gone".
_DB_ERROR_NAMES = {"OperationalError", "InterfaceError", "AdminShutdown", "CrashShutdown", "CannotConnectNow",
                   "ConnectionTimeout", "ConnectionException"}
# (not "connection failed" alone: psycopg also says it before "password authentication failed", which is the
# user's to fix, not an outage)
_DB_GONE = ("connection refused", "could not connect to server", "connection timed out", "timeout expired",
            "server closed the connection unexpectedly", "terminating connection due to administrator command",
            "the database system is shutting down", "the database system is starting up", "consuming input failed",
            "connection is closed", "connection not open", "connection reset", "no route to host",
            "network is unreachable", "could not translate host name", "name or service not known",
            "can't connect to mysql server", "lost connection to mysql server", "mysql server has gone away",
            "ssl syscall error")


def _database_gone(exc: BaseException) -> bool:
    if type(exc).__name__ not in _DB_ERROR_NAMES:
        return False
    text = str(exc).lower()
    return any(marker in text for marker in _DB_GONE)


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) says the tracking server, or the database a SQLAlchemy
    store URI names, did not answer."""
    seen: BaseException | None = exc
    for _ in range(12):
        if seen is None:
            return False
        if isinstance(seen, ConnectionError | TimeoutError) or type(seen).__name__ in _NET_NAMES:
            return True
        if _database_gone(seen):
            return True
        text = str(seen)
        if "API request to" in text and ("failed with exception" in text or "failed with timeout" in text):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unreachable_message(uri: str, run_dir: Path | None, run_id: str | None) -> str:
    if run_dir is None:
        return f"tracking server unreachable at {uri}. Check that it is running and reachable, then run again."
    try:
        shown = run_dir.relative_to(Path.cwd())
    except ValueError:
        shown = run_dir
    return (f"tracking server unreachable at {uri}: the run's results are in {shown}. Nothing is lost: when the "
            f"server answers again, upload them with: trainpipe runs sync {run_id}")


def read_journal(run_dir: Path) -> tuple[list[dict[str, Any]], set[int], dict[str, str]]:
    """(ops, acknowledged sequence numbers, offline id -> server id) of a run directory's journal."""
    ops: list[dict[str, Any]] = []
    acks: set[int] = set()
    ids: dict[str, str] = {}
    path = run_dir / JOURNAL
    if not path.exists():
        return ops, acks, ids
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill: everything before it holds
            continue
        if "ack" in entry:
            acks.add(int(entry["ack"]))
        elif "map" in entry:
            ids[str(entry["map"])] = str(entry["to"])
        else:
            ops.append(entry)
    return ops, acks, ids


def append(run_dir: Path, entries: Sequence[Mapping[str, Any]]) -> None:
    """Append entries, scrubbed of secrets like everything else trainpipe writes; the file is 0600."""
    import os

    from trainpipe.config._secrets import scrub_strings

    fd = os.open(run_dir / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(scrub_strings(entry), default=str) + "\n")
        fh.flush()


class _GuardedClient:
    """The MLflow client for the registry steps: fails fast with TrackingUnavailable once the server is lost."""

    def __init__(self, inner: Any, owner: JournaledTracker) -> None:
        self._inner = inner
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        owner = self._owner

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if owner.offline is not None:
                raise TrackingUnavailable(owner.unavailable_message())
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                owner.go_offline(exc)
                raise TrackingUnavailable(owner.unavailable_message()) from exc

        return guarded


class JournaledTracker:
    """A :class:`~trainpipe.tracking.Tracker` that journals every call, sends what it can and adds up the wall
    time spent in tracker calls (``seconds``, reported as ``tracking_seconds``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.offline: BaseException | None = None
        self.run_dir: Path | None = None
        self.run_id: str | None = None
        self._seq = 0
        self._pending: list[dict[str, Any]] = []  # journal lines not yet on disk (before attach)
        self._queue: list[dict[str, Any]] = []  # ops not yet sent
        self._holding = 0
        self._open: set[str] = set()  # runs started on the server and not ended

    # -- the Tracker protocol ------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return str(self.inner.uri)

    @property
    def client(self) -> Any:
        return _GuardedClient(self.inner.client, self)

    def __getattr__(self, name: str) -> Any:  # connection_uri, experiment_id, ...
        return getattr(self.inner, name)

    def start_run(self, name: str, *, parent_id: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        op = {"op": "start_run", "name": name, "parent": parent_id, "tags": {k: str(v) for k, v in
                                                                          (tags or {}).items()}}
        if self.offline is None and not self._holding and not (parent_id or "").startswith(OFFLINE_PREFIX):
            self.flush()
        if self.offline is None and not self._holding and not (parent_id or "").startswith(OFFLINE_PREFIX):
            try:
                run_id = self._timed(self.inner.start_run, name, parent_id=parent_id, tags=tags)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                self.go_offline(exc)
            else:
                self._open.add(run_id)
                seq = self._journal({**op, "run": run_id})
                self._write([{"ack": seq}])
                return str(run_id)
        run_id = f"{OFFLINE_PREFIX}{uuid.uuid4().hex[:16]}"
        self._journal({**op, "run": run_id})
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._call({"op": "log_params", "run": run_id, "params": {k: str(v) for k, v in params.items()}})

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._call({"op": "log_metrics", "run": run_id, "metrics": {k: float(v) for k, v in metrics.items()},
                    "step": step})

    def log_metric_history(self, run_id: str, key: str, values: Sequence[float]) -> None:
        self._call({"op": "log_metric_history", "run": run_id, "key": key, "values": [float(v) for v in values]})

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._call({"op": "set_tags", "run": run_id, "tags": {k: str(v) for k, v in tags.items()}})

    def log_inputs(self, run_id: str, datasets: Sequence[Mapping[str, Any]]) -> None:
        self._call({"op": "log_inputs", "run": run_id, "datasets": [dict(d) for d in datasets]})

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self._call({"op": "log_artifact", "run": run_id, "path": str(Path(path).resolve()),
                    "artifact_path": artifact_path})

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._call({"op": "end_run", "run": run_id, "status": status})

    # -- journal, modes, sending ---------------------------------------------------------------------

    def attach(self, run_dir: Path, run_id: str) -> None:
        """From now on the journal lives in ``run_dir`` (what was journaled before goes there first)."""
        self.run_dir, self.run_id = run_dir, run_id
        self._write([])

    def record_intent(self, kind: str, **data: Any) -> None:
        """Something to do at sync time that is not a tracker call (e.g. the registration the gate allowed)."""
        self._journal({"op": "intent", "kind": kind, **data})

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Only journal inside the block (no network call); :meth:`flush` sends the calls afterwards."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1

    def flush(self, quick: bool = False) -> None:
        """Send the journaled calls not sent yet, in order. An unreachable server makes the tracker offline
        (the calls stay in the journal for ``runs sync``); any other error ends the runs this run left open as
        FAILED (best effort) and is raised. ``quick``: one try with a short timeout (after an interrupt)."""
        if self.offline is not None or not self._queue:
            return
        with _quick_http() if quick else contextlib.nullcontext():
            while self._queue and self.offline is None:
                op = self._queue[0]
                try:
                    self._timed(self._send, op)
                except Exception as exc:
                    if is_unreachable(exc):
                        self.go_offline(exc)
                        return
                    self._queue.clear()  # still in the journal, without an ack
                    self._end_open_runs("FAILED")
                    raise
                self._queue.pop(0)
                self._write([{"ack": op["seq"]}])

    def go_offline(self, exc: BaseException) -> None:
        if self.offline is None:
            self.offline = exc
        self._queue.clear()

    def unavailable_message(self) -> str:
        return unreachable_message(self.uri, self.run_dir, self.run_id)

    def _call(self, op: dict[str, Any]) -> None:
        op = {**op, "seq": self._journal(op)}
        if self.offline is not None or str(op.get("run", "")).startswith(OFFLINE_PREFIX):
            return
        self._queue.append(op)
        if not self._holding:
            self.flush()

    def _journal(self, op: dict[str, Any]) -> int:
        self._seq += 1
        self._write([{**op, "seq": self._seq, "at": time.time()}])
        return self._seq

    def _write(self, entries: list[dict[str, Any]]) -> None:
        self._pending.extend(entries)
        if self.run_dir is not None and self._pending:
            append(self.run_dir, self._pending)
            self._pending = []

    def _send(self, op: dict[str, Any]) -> None:
        send(self.inner, op, op["run"])
        if op["op"] == "end_run":
            self._open.discard(op["run"])

    def _end_open_runs(self, status: str) -> None:
        for run_id in sorted(self._open):
            if run_id == self.run_id:
                continue  # the pipeline run: the runner ends it with the run's own outcome
            with contextlib.suppress(Exception):
                with _quick_http():
                    self.inner.end_run(run_id, status)
                self._open.discard(run_id)

    def _timed(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0


def send(tracker: Any, op: Mapping[str, Any], run_id: str) -> None:
    """One journaled call, made on ``tracker`` for ``run_id`` (start_run is not sent this way)."""
    kind = op["op"]
    if kind == "log_params":
        tracker.log_params(run_id, op["params"])
    elif kind == "log_metrics":
        tracker.log_metrics(run_id, op["metrics"], op.get("step"))
    elif kind == "log_metric_history":
        tracker.log_metric_history(run_id, op["key"], op["values"])
    elif kind == "set_tags":
        tracker.set_tags(run_id, op["tags"])
    elif kind == "log_inputs":
        tracker.log_inputs(run_id, op["datasets"])
    elif kind == "log_artifact":
        tracker.log_artifact(run_id, Path(op["path"]), op.get("artifact_path"))
    elif kind == "end_run":
        tracker.end_run(run_id, op["status"])
    else:
        raise ValueError(f"unknown journaled call {kind!r}")


@contextlib.contextmanager
def _quick_http() -> Iterator[None]:
    """One try with a short timeout: after an interrupt the process must end promptly, server or not."""
    import os

    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "3"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


__all__ = ["JOURNAL", "OFFLINE_PREFIX", "JournaledTracker", "append", "is_unreachable", "read_journal", "send",
           "unreachable_message"]
