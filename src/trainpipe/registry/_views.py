"""What ``trainpipe models list/show/history`` print: rich renderables built from the registry."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError
from trainpipe.registry._filters import search_model_versions
from trainpipe.registry._registry import STATE_TAG, get_version, history, version_by_alias

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

_KEY_METRICS = ("test_roc_auc", "test_f1", "test_accuracy", "test_rmse", "test_r2")


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


def parse_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``NAME``, ``NAME@ALIAS`` or ``NAME/VERSION`` -> (name, alias, version)."""
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, alias, None
    if "/" in ref:
        name, version = ref.rsplit("/", 1)
        if not version.isdigit():
            raise ConfigError(f"{ref!r}: expected NAME, NAME@ALIAS or NAME/VERSION (a number).")
        return name, None, version
    return ref, None, None


def resolve_version(client: MlflowClient, ref: str) -> ModelVersion:
    name, alias, version = parse_model_ref(ref)
    if alias is not None:
        mv = version_by_alias(client, name, alias)
        if mv is None:
            raise ConfigError(f"model {name!r} has no version with alias {alias!r} "
                              f"(see: trainpipe models list {name}).")
        return mv
    if version is None:
        versions = _versions(client, name)
        if not versions:
            raise ConfigError(f"no registered model named {name!r} (see: trainpipe models list).")
        return versions[0]
    return get_version(client, name, version)


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    return sorted(search_model_versions(client, name), key=lambda mv: -int(mv.version))


def _aliases(client: MlflowClient, name: str) -> dict[str, list[str]]:
    from mlflow.exceptions import MlflowException

    try:
        rm = client.get_registered_model(name)
    except MlflowException:
        return {}
    by_version: dict[str, list[str]] = {}
    for alias, version in (rm.aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    return by_version


def list_table(client: MlflowClient, name: str | None) -> Any:
    from rich.table import Table

    if name is None:
        table = Table(title="registered models")
        for col in ("name", "versions", "aliases", "latest", "updated"):
            table.add_column(col)
        for rm in client.search_registered_models(max_results=1000):
            versions = _versions(client, rm.name)
            aliases = ", ".join(f"@{a}→v{v}" for a, v in sorted((rm.aliases or {}).items()))
            table.add_row(rm.name, str(len(versions)), aliases, str(versions[0].version) if versions else "",
                          _when(rm.last_updated_timestamp))
        return table
    versions = _versions(client, name)
    if not versions:
        raise ConfigError(f"no registered model named {name!r} (see: trainpipe models list).")
    by_version = _aliases(client, name)
    shown = [m for m in _KEY_METRICS if any(m in mv.tags for mv in versions)]
    table = Table(title=f"{name}: versions")
    for col in ("version", "aliases", *shown, "gate", "state", "created", "run"):
        table.add_column(col, justify="right" if col in shown else "left")
    for mv in versions:
        table.add_row(str(mv.version), " ".join(f"@{a}" for a in sorted(by_version.get(str(mv.version), []))),
                      *[mv.tags.get(m, "") for m in shown], mv.tags.get("gate_verdict", ""),
                      mv.tags.get(STATE_TAG, ""), _when(mv.creation_timestamp), str(mv.run_id or "")[:12])
    return table


def show(client: MlflowClient, ref: str, uri: str | None = None) -> list[Any]:
    """The version's table, the code that loads and serves it (plain ``str`` items: the CLI prints them unwrapped,
    to be copied as they are) when ``uri`` (the store the client reads) is given, and the model card."""
    from rich.markdown import Markdown
    from rich.table import Table

    mv = resolve_version(client, ref)
    aliases = _aliases(client, mv.name).get(str(mv.version), [])
    head = Table(title=f"{mv.name} version {mv.version}", show_header=False)
    head.add_column("key")
    head.add_column("value")
    head.add_row("aliases", " ".join(f"@{a}" for a in sorted(aliases)) or "(none)")
    head.add_row("created", _when(mv.creation_timestamp))
    head.add_row("source", str(mv.source))
    head.add_row("model uri", f"models:/{mv.name}/{mv.version}")
    for k, v in sorted(mv.tags.items()):
        head.add_row(k, str(v))
    hints = [] if uri is None else load_hints(uri, model_uri(mv.name, str(mv.version), ref, aliases))
    return [head, *hints, Markdown(mv.description or "(no model card)")]


_ALIAS_ORDER = ("production", "staging")


def model_uri(name: str, version: str, ref: str, aliases: list[str]) -> str:
    """``models:/NAME@ALIAS`` for what was asked by alias (or, asked by name, for the alias the version holds,
    production first); ``models:/NAME/VERSION`` for what was asked by number, or holds no alias."""
    _, alias, asked_version = parse_model_ref(ref)
    if alias is None and asked_version is None and aliases:
        alias = min(aliases, key=lambda a: (_ALIAS_ORDER.index(a) if a in _ALIAS_ORDER else len(_ALIAS_ORDER), a))
    return f"models:/{name}@{alias}" if alias is not None else f"models:/{name}/{version}"


def absolute_store_uri(uri: str) -> str:
    """An embedded store's ``sqlite:///relative.db`` made absolute, so the URI works from any folder."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        path, _, query = uri[len(prefix):].partition("?")
        return prefix + str(Path(path).resolve()) + (f"?{query}" if query else "")
    return uri


def load_hints(uri: str, ref_uri: str) -> list[str]:
    """Python that loads the model in a fresh session from any folder (the tracking URI first: without it MLflow
    looks in ``./mlflow.db``), and the command that serves it. A password in the URI is masked."""
    from trainpipe.config._secrets import redact_uri

    store = absolute_store_uri(uri)
    shown = redact_uri(store)
    masked = ["# the password is masked (***): put it back, or set MLFLOW_TRACKING_URI and leave the next line out"
              ] if shown != store else []
    code = "\n".join(["import mlflow", *masked, f"mlflow.set_tracking_uri({shown!r})",
                      f"model = mlflow.pyfunc.load_model({ref_uri!r})",
                      "predictions = model.predict(raw_dataframe)  # the raw columns, as in training"])
    serve = (f"MLFLOW_TRACKING_URI={shlex.quote(shown)} mlflow models serve -m {shlex.quote(ref_uri)} -p 5000 "
             "--env-manager local")
    return ["Load it in Python (from any folder; trainpipe need not be installed):", code,
            "Serve it over HTTP (POST /invocations) from an environment that has the model's libraries; without "
            "--env-manager local, MLflow builds a virtualenv from the model's requirements.txt (needs pyenv and a "
            "package index):", serve]


def history_table(client: MlflowClient, name: str) -> Any:
    from rich.table import Table

    moves = history(client, name)
    table = Table(title=f"{name}: alias history (audit log)")
    for col in ("when (UTC)", "alias", "from", "to", "by", "reason", "gate verdict"):
        table.add_column(col)
    for m in moves:
        table.add_row(m.time, m.alias, f"v{m.from_version}" if m.from_version else "-",
                      f"v{m.to_version}" if m.to_version else "(removed)", f"{m.user}@{m.host}", m.reason,
                      m.gate_verdict)
    if not moves:
        table.caption = "no alias moves recorded"
    return table
