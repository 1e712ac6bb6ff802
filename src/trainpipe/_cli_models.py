"""``trainpipe models ...``: registered models, their aliases and audit log."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from trainpipe._cli_common import DebugOpt, UriOpt, _guard, _store_uri, out

models_app = typer.Typer(help="Registered models: versions, aliases (staging/production), audit log.",
                         no_args_is_help=True)


def _registry(tracking_uri: str | None, *, write: bool = False) -> Any:
    """Readers take no lock and create nothing (a read-only store works); writers lock the store."""
    from trainpipe.registry._registry import client_for, reader_for

    uri = _store_uri(tracking_uri)
    return client_for(uri) if write else reader_for(uri)


ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log; required for production).")]


@models_app.command("list")
def models_list(name: Annotated[str | None, typer.Argument(help="A registered model; omit for all.")] = None,
                tracking_uri: UriOpt = None, debug: DebugOpt = False) -> None:
    """Versions with aliases, key metrics, gate verdict and creation time."""

    def go() -> None:
        from trainpipe.registry._views import list_table

        out.print(list_table(_registry(tracking_uri), name))

    _guard(debug, go)


@models_app.command("show")
def models_show(ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME/VERSION.")],
                tracking_uri: UriOpt = None, debug: DebugOpt = False) -> None:
    """The model card, lineage tags and metrics of one version."""

    def go() -> None:
        from trainpipe.registry._views import show

        for renderable in show(_registry(tracking_uri), ref, _store_uri(tracking_uri)):
            if isinstance(renderable, str):  # code to copy: printed as it is, never wrapped or styled
                out.print(renderable, soft_wrap=True, markup=False, highlight=False)
            else:
                out.print(renderable)

    _guard(debug, go)


def _print_moves(moves: Any) -> None:
    for m in moves:
        frm = f"v{m.from_version}" if m.from_version else "-"
        to = f"v{m.to_version}" if m.to_version else "(removed)"
        out.print(f"@{m.alias}: {frm} -> {to}")


@models_app.command("promote")
def models_promote(name: str, version: str,
                   to: Annotated[str, typer.Option("--to", help="staging | production")] = "production",
                   reason: ReasonOpt = "", tracking_uri: UriOpt = None, debug: DebugOpt = False) -> None:
    """Move an alias to VERSION; production remembers the version it replaces as previous-production."""

    def go() -> None:
        from trainpipe.registry import promote

        _print_moves(promote(_registry(tracking_uri, write=True), name, version, to, reason=reason))

    _guard(debug, go)


@models_app.command("rollback")
def models_rollback(name: str, reason: ReasonOpt = "", tracking_uri: UriOpt = None, debug: DebugOpt = False) -> None:
    """Production goes back to the previous production version."""

    def go() -> None:
        from trainpipe.registry import rollback

        _print_moves(rollback(_registry(tracking_uri, write=True), name, reason=reason))

    _guard(debug, go)


@models_app.command("history")
def models_history(name: str, tracking_uri: UriOpt = None, debug: DebugOpt = False) -> None:
    """Every alias move: when, from which version to which, by whom, why, and the gate verdict."""

    def go() -> None:
        from trainpipe.registry._views import history_table

        out.print(history_table(_registry(tracking_uri), name))

    _guard(debug, go)
