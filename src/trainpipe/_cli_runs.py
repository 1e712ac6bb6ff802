"""``trainpipe runs ...``: past pipeline runs in the tracking store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainpipe._cli_common import DebugOpt, UriOpt, _guard, _store_uri, err, out

runs_app = typer.Typer(help="Look at past pipeline runs in the tracking store.", no_args_is_help=True)


@runs_app.command("list")
def runs_list(
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only runs of this pipeline.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 20,
    tracking_uri: UriOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Recent pipeline runs, newest first."""

    def go() -> None:
        from trainpipe import _runs

        client = _runs.store(_store_uri(tracking_uri))
        for run_id in _runs.mark_killed(client):
            err.print(f"run {run_id}: its process is gone (killed without a word): marked KILLED")
        out.print(_runs.list_table(client, pipeline, limit))

    _guard(debug, go)


@runs_app.command("relocate")
def runs_relocate(
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Go ahead even when some artifact folders "
                                                "the store names are not in this project's .trainpipe/mlartifacts.")]
    = False,
    debug: DebugOpt = False,
) -> None:
    """Point this project's MLflow store (.trainpipe/mlflow.db) at this folder's .trainpipe/mlartifacts, after
    the project was copied or moved (MLflow records artifact locations as absolute paths)."""

    def go() -> None:
        from trainpipe.tracking import default_tracking_uri
        from trainpipe.tracking._relocate import relocate_store

        out.print(relocate_store(default_tracking_uri(Path.cwd()), Path.cwd() / ".trainpipe",
                                 allow_missing=allow_missing), markup=False, highlight=False)

    _guard(debug, go)


@runs_app.command("sync")
def runs_sync(run_id: Annotated[str, typer.Argument(help="The run id (its folder under .trainpipe/runs).")],
              tracking_uri: UriOpt = None, debug: DebugOpt = False) -> None:
    """Upload a run recorded while its tracking server was unreachable: runs, metrics, artifacts and the
    registration the gate allowed. Safe to repeat."""

    def go() -> None:
        from trainpipe.tracking._sync import sync_run

        for line in sync_run(run_id, Path.cwd(), tracking_uri).lines():
            out.print(line, markup=False, highlight=False)

    _guard(debug, go)


@runs_app.command("show")
def runs_show(run_id: str, tracking_uri: UriOpt = None, debug: DebugOpt = False) -> None:
    """Params, metrics, lineage tags and the step table of one run."""

    def go() -> None:
        from trainpipe import _runs

        for renderable in _runs.show(_runs.store(_store_uri(tracking_uri)), run_id):
            out.print(renderable)

    _guard(debug, go)


@runs_app.command("compare")
def runs_compare(run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
                 all_params: Annotated[bool, typer.Option("--all", help="Show params that are equal too.")] = False,
                 tracking_uri: UriOpt = None, debug: DebugOpt = False) -> None:
    """A table of params (those that differ) and metrics side by side."""

    def go() -> None:
        from trainpipe import _runs

        out.print(_runs.compare(_runs.store(_store_uri(tracking_uri)), run_ids, all_params))

    _guard(debug, go)
