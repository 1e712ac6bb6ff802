"""What every ``trainpipe`` command shares: the consoles, the options, and :func:`_guard`, which maps
exceptions to the documented exit codes."""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from trainpipe._exceptions import DataValidationError, TrainingInterrupted, TrainpipeError


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


def _check_moved(uri: str) -> str:
    """A copied or moved project's embedded store is pointed at this folder (a note), or exit 2 saying how."""
    from trainpipe.tracking._relocate import check_moved

    note = check_moved(uri, Path.cwd() / ".trainpipe")
    if note:
        err.print(f"note: {note}", markup=False, highlight=False)
    return uri


def _store_uri(tracking_uri: str | None) -> str:
    from trainpipe.tracking import resolve_tracking_uri

    uri = tracking_uri or resolve_tracking_uri(None, Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        from trainpipe._exceptions import ConfigError

        raise ConfigError(f"no tracking store at {uri}. Run a pipeline here first, or pass --tracking-uri.")
    return _check_moved(uri)
