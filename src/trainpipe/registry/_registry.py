"""The MLflow Model Registry as trainpipe uses it: versions, aliases, an audit log of alias moves.

Aliases: ``staging``, ``production`` and ``previous-production`` (set when production moves). Every alias
move is recorded in the model's audit log (when, alias, from version, to version, user, host, reason, gate
verdict), kept in the tracking store itself so that every client sees it: one tag ``audit.<utc time>-<id>``
holding the move's JSON on a dedicated run named ``audit:<model>`` (tagged ``trainpipe.kind=audit``, in the
experiment of the model's first moved version). Each move is its own tag, so two writers on a tracking server
cannot overwrite each other's entries (an artifact file would be read, extended and written back); on an
embedded store the registry lock serialises them anyway. The registered model itself keeps two compact tags,
``trainpipe.last_move`` (one line) and ``trainpipe.audit_run`` (where the log is), so its page stays readable.
Logs written before this layout (one ``trainpipe.audit.*`` tag per move on the registered model) are still
read by :func:`history`.

Registration is all or nothing: the version is created with ``trainpipe.registration=pending``, described,
tagged ``complete`` (the model and its card are whole), and only then given its alias; on any error in
between the aliases are put back and the version is deleted, and a registered model created for it is deleted
too (no empty registered model is left behind). SIGTERM and Ctrl-C wait until the register
step is done (see ``trainpipe._signals``). A process killed outright (SIGKILL) in between leaves either a
``pending`` version without an alias, which cannot be promoted, or a ``complete`` version without its
alias: a gated, whole model that a retry of the same run picks up (it sets the alias and registers
nothing new), never an alias on an unfinished version.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from trainpipe._exceptions import ConfigError, GateRefused
from trainpipe.registry._filters import search_model_versions

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

PRODUCTION = "production"
STAGING = "staging"
PREVIOUS = "previous-production"
AUDIT_PREFIX = "trainpipe.audit."  # the old layout: one registered-model tag per move
AUDIT_RUN_TAG = "trainpipe.audit_run"
LAST_MOVE_TAG = "trainpipe.last_move"
AUDIT_RUN_PREFIX = "audit."  # a move's tag on the audit run
_REASON_MAX = 2000
STATE_TAG = "trainpipe.registration"
MODEL_ARTIFACT = "registered_model"


def client_for(uri: str) -> MlflowClient:
    """A client for commands that write (register, promote, rollback): an embedded store is created if it is
    missing, under the store's lock; a store this user cannot write is exit 2 naming it (see
    :func:`trainpipe._locks.sqlite_file_lock`)."""
    from mlflow import MlflowClient

    from trainpipe._locks import sqlite_file_lock, sqlite_path

    if not sqlite_path(uri):
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    Path(sqlite_path(uri)).parent.mkdir(parents=True, exist_ok=True)
    with sqlite_file_lock(uri):  # a fresh store is created (tables, migrations) by one process at a time
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_registered_models(max_results=1)
    return client


def reader_for(uri: str) -> MlflowClient:
    """A client for commands that only read (models list/show/history, predict): no lock, nothing created,
    so a read-only store works. An embedded store must exist and hold MLflow's tables (checked with a
    read-only SQLite connection): MLflow would otherwise create them, racing a run that is creating them."""
    from mlflow import MlflowClient

    from trainpipe._locks import sqlite_path

    path = sqlite_path(uri)
    if path:
        _check_store_exists(path)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _check_store_exists(path: str) -> None:
    import sqlite3

    hint = "Run a pipeline here first, or pass --tracking-uri (or set MLFLOW_TRACKING_URI) to the store to read."
    if not Path(path).is_file():
        raise ConfigError(f"no tracking store at {path}. {hint}")
    try:
        with contextlib.closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)) as db:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise ConfigError(f"the tracking store {path} cannot be read ({exc}). Check that it is an MLflow SQLite "
                          f"database readable by this user. {hint}") from exc
    if not {"registered_models", "model_versions", "alembic_version"} <= names:
        raise ConfigError(f"no tracking store at {path}: the file holds no MLflow registry tables (yet; a run "
                          f"may be creating them right now). {hint}")


def _not_found(exc: Exception) -> bool:
    """Only "this model / alias does not exist" — never an outage, a lock or a server error."""
    code = str(getattr(exc, "error_code", ""))
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return code == "INVALID_PARAMETER_VALUE" and re.search(r"alias \S+ not found", str(exc)) is not None


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise ConfigError(f"model {name!r} has no version {version!r} in the registry "
                          f"(see: trainpipe models list {name}).") from exc


def ensure_registered_model(client: MlflowClient, name: str, description: str = "") -> bool:
    """Create registered model ``name`` unless it exists; True when this call created it."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description=description or None)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(getattr(exc, "error_code", "")) and "already exists" not in str(exc):
            raise
        return False
    return True


def _drop_if_empty(client: MlflowClient, name: str) -> None:
    """Delete registered model ``name`` if it holds no version (one this call created and then failed to
    fill); a version another process added meanwhile keeps it."""
    if not search_model_versions(client, name):
        client.delete_registered_model(name)


@dataclass
class AliasMove:
    time: str
    alias: str
    from_version: str | None
    to_version: str | None
    user: str
    host: str
    reason: str
    gate_verdict: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _now() -> str:
    now = time.time()  # read once: two reads can straddle a second and run backwards
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1e6) % 1_000_000:06d}Z"


def _verdict(client: MlflowClient, name: str, version: str | None) -> str:
    if version is None:
        return ""
    try:
        return str(client.get_model_version(name, version).tags.get("gate_verdict", ""))
    except Exception:  # the version may have been deleted since
        return ""


def move_alias(client: MlflowClient, name: str, alias: str, version: str | None, *, reason: str = "",
               user: str | None = None) -> AliasMove:
    """Point ``alias`` at ``version`` (None removes it) and append the move to the audit log."""
    current = version_by_alias(client, name, alias)
    before = str(current.version) if current is not None else None
    if version is None:
        if before is not None:
            client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, str(version))
    move = AliasMove(_now(), alias, before, None if version is None else str(version),
                     user or getpass.getuser(), socket.gethostname(), reason, _verdict(client, name, version))
    if before == move.to_version:  # nothing moved: the audit log records moves only
        return move
    record = {**move.to_dict(), "reason": move.reason[:_REASON_MAX]}
    client.set_tag(_audit_run(client, name, move.to_version or before), f"{AUDIT_RUN_PREFIX}{move.time}-"
                   f"{uuid.uuid4().hex[:6]}", json.dumps(record))
    client.set_registered_model_tag(name, LAST_MOVE_TAG, f"{move.time} {alias}: {before or '-'} -> "
                                    f"{move.to_version or '-'} by {move.user}")
    return move


def _audit_run(client: MlflowClient, name: str, version: str | None) -> str:
    """The id of model ``name``'s audit run (created on first use, see the module docstring)."""
    from mlflow.exceptions import MlflowException

    found = client.get_registered_model(name).tags.get(AUDIT_RUN_TAG)
    if found:
        try:
            if client.get_run(found).info.lifecycle_stage == "active":
                return str(found)
        except MlflowException as exc:
            if not _not_found(exc):
                raise
    experiment = "0"  # MLflow's Default experiment: a version registered without a run
    run_of_version = client.get_model_version(name, version).run_id if version is not None else None
    if run_of_version:
        experiment = str(client.get_run(run_of_version).info.experiment_id)
    run = client.create_run(experiment, run_name=f"audit:{name}",
                            tags={"trainpipe.kind": "audit", "trainpipe.audit_for": name,
                                  "mlflow.note.content": f"Alias moves of registered model {name} "
                                                         "(trainpipe models history NAME shows them)."})
    client.set_terminated(run.info.run_id)
    client.set_registered_model_tag(name, AUDIT_RUN_TAG, run.info.run_id)
    return str(run.info.run_id)


F = TypeVar("F", bound=Callable[..., Any])


def serialised(func: F) -> F:
    """Alias changes read the aliases, then move them: on an embedded SQLite store two commands at once
    (promote and rollback, two promotes, a run registering) must not interleave, or ``previous-production``
    ends up pointing past a version that was production in between. One lock file per store serialises
    them; a tracking server's clients are on other machines, where this cannot help."""

    @functools.wraps(func)
    def wrapper(client: MlflowClient, *args: Any, **kwargs: Any) -> Any:
        from trainpipe._locks import sqlite_file_lock

        with sqlite_file_lock(str(getattr(client, "_registry_uri", ""))):
            return func(client, *args, **kwargs)

    return cast(F, wrapper)


@serialised
def promote(client: MlflowClient, name: str, version: str, to: str, *, reason: str) -> list[AliasMove]:
    """Move ``to`` (staging or production) to ``version``; production remembers the one it replaces."""
    if to not in (STAGING, PRODUCTION):
        raise ConfigError(f"--to: expected staging or production, got {to!r}.")
    if to == PRODUCTION and not reason.strip():
        raise ConfigError("promoting to production needs --reason \"...\" (it goes into the audit log).")
    mv = get_version(client, name, version)
    if mv.tags.get(STATE_TAG) == "pending":
        raise ConfigError(f"{name} version {version} was never completely registered (a run died while "
                          "registering it); it cannot be promoted.")
    moves = []
    if to == PRODUCTION:
        current = version_by_alias(client, name, PRODUCTION)
        if current is not None and str(current.version) == str(version):
            raise ConfigError(f"{name} version {version} is already the production version.")
        if current is not None:
            moves.append(move_alias(client, name, PREVIOUS, str(current.version),
                                    reason=f"replaced by version {version}: {reason}"))
    moves.append(move_alias(client, name, to, str(version), reason=reason))
    return moves


@serialised
def rollback(client: MlflowClient, name: str, *, reason: str) -> list[AliasMove]:
    """Production goes back to ``previous-production``; the rolled-back version becomes the previous one."""
    if not reason.strip():
        raise ConfigError("rollback changes production and needs --reason \"...\" (it goes into the audit log).")
    current = version_by_alias(client, name, PRODUCTION)
    previous = version_by_alias(client, name, PREVIOUS)
    if previous is None:
        raise ConfigError(f"model {name!r} has no previous production version to roll back to "
                          f"(see: trainpipe models history {name}).")
    moves = [move_alias(client, name, PRODUCTION, str(previous.version), reason=f"rollback: {reason}")]
    if current is not None:
        moves.append(move_alias(client, name, PREVIOUS, str(current.version), reason=f"rolled back: {reason}"))
    else:
        moves.append(move_alias(client, name, PREVIOUS, None, reason=f"rollback: {reason}"))
    return moves


def history(client: MlflowClient, name: str) -> list[AliasMove]:
    from mlflow.exceptions import MlflowException

    try:
        rm = client.get_registered_model(name)
    except MlflowException as exc:
        raise ConfigError(f"no registered model named {name!r} (see: trainpipe models list).") from exc
    entries = [v for k, v in rm.tags.items() if k.startswith(AUDIT_PREFIX)]  # the old layout
    audit_run = rm.tags.get(AUDIT_RUN_TAG)
    if audit_run:
        try:
            tags = client.get_run(audit_run).data.tags
        except MlflowException as exc:
            if not _not_found(exc):
                raise
            tags = {}
        entries += [v for k, v in tags.items() if k.startswith(AUDIT_RUN_PREFIX)]
    moves = []
    for value in entries:
        try:
            moves.append(AliasMove(**json.loads(value)))
        except (TypeError, ValueError):
            continue
    return sorted(moves, key=lambda m: m.time)


class ChampionMoved(GateRefused):
    """Production moved between the gate and registration: the gate compared against another version."""


@serialised
def register_version(client: MlflowClient, *, name: str, run_id: str, source: str, alias: str | None,
                     tags: dict[str, str], description: str, reason: str,
                     expected_production: str | None = None, model_id: str | None = None) -> ModelVersion:
    """Create a version and give it ``alias``, all or nothing (see the module docstring).

    ``expected_production`` is the production version the gate compared against (None: there was none);
    promoting straight to production is refused when production has moved since. On any error the
    aliases are put back as they were and the new version is deleted. ``model_id``: the MLflow logged model
    (``source`` is then ``models:/<model_id>``), which links the version to it in the UI.
    """
    created = ensure_registered_model(client, name)
    try:
        return _register_version(client, name=name, run_id=run_id, source=source, alias=alias, tags=tags,
                                 description=description, reason=reason, expected_production=expected_production,
                                 model_id=model_id)
    except BaseException as exc:
        if created:  # no empty registered model left behind: this call made it, and made no version in it
            try:
                _drop_if_empty(client, name)
            except Exception as cleanup:  # the original error is the one to report; say what is left
                exc.add_note(f"the empty registered model {name!r} created for this version could not be removed "
                             f"({type(cleanup).__name__}: {str(cleanup)[:200]}); delete it in the MLflow UI.")
        raise


def _register_version(client: MlflowClient, *, name: str, run_id: str, source: str, alias: str | None,
                      tags: dict[str, str], description: str, reason: str,
                      expected_production: str | None, model_id: str | None = None) -> ModelVersion:
    done = [v for v in search_model_versions(client, name, run_id)
            if v.tags.get(STATE_TAG) == "complete" and v.source == source]
    if done:  # this run already registered (a retried step, an orchestrator's second attempt): same version
        mv = max(done, key=lambda v: int(v.version))
        current = version_by_alias(client, name, alias) if alias else None
        if alias is not None and (current is None or str(current.version) != str(mv.version)):
            if alias == PRODUCTION and str(getattr(current, "version", None)) != str(expected_production):
                raise ChampionMoved(f"{name}: production is now version {getattr(current, 'version', None)}, "
                                    f"not the version the gate compared with; nothing was changed.")
            if alias == PRODUCTION and current is not None:
                move_alias(client, name, PREVIOUS, str(current.version), reason=f"replaced by version {mv.version}")
            move_alias(client, name, alias, str(mv.version), reason=reason)
        return client.get_model_version(name, str(mv.version))
    watched = [a for a in dict.fromkeys([PRODUCTION, PREVIOUS, alias]) if a]
    before = {a: (str(v.version) if (v := version_by_alias(client, name, a)) is not None else None) for a in watched}
    if alias == PRODUCTION and before[PRODUCTION] != expected_production:
        raise ChampionMoved(
            f"{name}: production is now version {before[PRODUCTION]}, but the gate compared this model with "
            f"{'version ' + expected_production if expected_production else 'no production version'}. Nothing "
            "was registered; run the pipeline again to be gated against the current production version."
        )
    with _store_resolves_models_uris(client) if source.startswith("models:/") else contextlib.nullcontext():
        mv = client.create_model_version(name, source, run_id=run_id, tags={**tags, STATE_TAG: "pending"},
                                         model_id=model_id)
    version = str(mv.version)
    moved: list[str] = []
    try:
        client.update_model_version(name, version, description=description[:4900])
        if model_id is not None:  # the logged model's page lists its versions (as mlflow.register_model does)
            listed = json.loads(client.get_logged_model(model_id).tags.get("mlflow.modelVersions") or "[]")
            client.set_logged_model_tags(model_id, {"mlflow.modelVersions": json.dumps(
                [*listed, {"name": name, "version": version}])})
        client.set_model_version_tag(name, version, STATE_TAG, "complete")
        if alias == PRODUCTION and before[PRODUCTION] is not None:
            moved.append(PREVIOUS)
            move_alias(client, name, PREVIOUS, before[PRODUCTION], reason=f"replaced by version {version}")
        if alias is not None:
            moved.append(alias)
            move_alias(client, name, alias, version, reason=reason)
    except BaseException:
        try:
            for a in reversed(moved):
                move_alias(client, name, a, before.get(a), reason=f"restored: registering version {version} failed")
        finally:
            client.delete_model_version(name, version)
        raise
    return client.get_model_version(name, version)


@contextlib.contextmanager
def _store_resolves_models_uris(client: MlflowClient) -> Iterator[None]:
    """MLflow's database registry store (3.17) looks a ``models:/m-<id>`` source up with ``MlflowClient()``, i.e.
    on the process-wide tracking URI, not the client's: without this, the logged model is "not found" (and an
    empty ``./mlflow.db`` is created). The client's URI is made the global one for the call, then the global
    state (and ``MLFLOW_TRACKING_URI``) is put back as it was. A tracking server resolves it on its side."""
    import os

    from mlflow.tracking._tracking_service import utils

    saved, env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    utils.set_tracking_uri(str(client._tracking_client.tracking_uri))
    try:
        yield
    finally:
        utils.set_tracking_uri(saved)  # type: ignore[arg-type]  # None: back to unset
        if env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env


def download_version(client: MlflowClient, uri: str, name: str, version: str, cache_root: Path) -> Path:
    """The registered pyfunc folder of one version, downloaded once into ``cache_root`` (versions are
    immutable)."""
    import hashlib
    import shutil

    import mlflow.artifacts

    if not str(version).isdigit():  # it becomes a folder name below, removed with rmtree on a re-download
        raise ValueError(f"model version {version!r}: expected a version number")
    mv = client.get_model_version(name, str(version))
    # keyed by store, name, version and the run it came from: a re-created model's version 1 is another model
    uri_key = hashlib.sha256(f"{uri}|{mv.run_id}|{mv.source}".encode()).hexdigest()[:12]
    target = cache_root / uri_key / name / str(version)
    if (target / "MLmodel").exists():
        return target
    tmp = target.with_name(f".tmp-{version}-{uuid.uuid4().hex[:6]}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        src = client.get_model_version_download_uri(name, str(version))
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=src, dst_path=str(tmp),
                                                        tracking_uri=uri, registry_uri=uri))
        # the pyfunc folder is ``path`` (``tmp`` itself, or a folder in it: ``artifacts`` for a logged model's
        # ``models:/m-<id>`` source, whose pyfunc folder holds an ``artifacts`` folder of its own)
        if target.exists():
            shutil.rmtree(target)
        path.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def pyfunc_artifact(folder: Path, key: str) -> Path | None:
    """The local path of artifact ``key`` (as passed to ``save_model(artifacts=...)``) in a pyfunc folder."""
    import yaml

    mlmodel = folder / "MLmodel"
    if not mlmodel.exists():
        return None
    meta = yaml.safe_load(mlmodel.read_text()) or {}
    entry = ((meta.get("flavors") or {}).get("python_function") or {}).get("artifacts", {}).get(key)
    if not entry or "path" not in entry:
        return None
    path = (folder / str(entry["path"])).resolve()
    if not path.is_relative_to(folder.resolve()):  # MLmodel is registry content: it may not point elsewhere
        return None
    return path if path.exists() else None
