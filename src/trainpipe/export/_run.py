"""Open and close one orchestrated run: the first and the last task of an exported DAG.

``open_run`` loads the pipeline file with the run's overrides (every config check runs here, before any
step), creates the run directory (named from the orchestrator's run id, sanitised) and the MLflow parent run,
tagged with the trigger and the orchestrator's ids. Each step task then runs ``trainpipe step NAME --run-dir
DIR`` (its child run goes under that parent; a retried task finds the outputs of the steps before it in the
run directory and recomputes nothing upstream). ``close_run`` (a task that runs whatever happened) reads the
step table of ``run.json`` and ends the parent run FINISHED, or FAILED with the first failed step's error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError, GateRefused, TrainpipeError

RUNS_DIR = Path(".trainpipe") / "runs"
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
_RUN_DIR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
TRIGGERS = ("manual", "schedule", "asset", "api")
# Airflow's DagRunType values -> trainpipe's trigger (a run started through the REST API is "api")
_AIRFLOW_RUN_TYPES = {"manual": "manual", "scheduled": "schedule", "backfill": "schedule",
                      "asset_triggered": "asset", "asset_materialization": "asset", "operator_triggered": "manual"}
OVERRIDES_ENV = "TRAINPIPE_OVERRIDES"


def run_dir_name(orchestrator: str, run_id: str) -> str:
    """The run directory's name for an orchestrator run id: ``airflow-manual__2026-01-01T00_00_00_00_00``.

    Only letters, digits, ``_``, ``.`` and ``-`` (every other run of characters becomes ``_``), at most 128
    characters: the id comes from outside (a REST call can name a run anything) and becomes a path. The
    exported DAG computes the same name with the same code (see ``_airflow.DAG_TEMPLATE``).
    """
    cleaned = _SAFE.sub("_", run_id).strip("._-")[:100] or "run"
    return f"{orchestrator}-{cleaned}"


def checked_run_dir(run_dir: Path, workdir: Path) -> Path:
    """``run_dir`` resolved, refused (ConfigError) unless it is ``<workdir>/.trainpipe/runs/<safe name>``."""
    resolved = (workdir / run_dir).resolve() if not run_dir.is_absolute() else run_dir.resolve()
    parent = (workdir / RUNS_DIR).resolve()
    if resolved.parent != parent or not _RUN_DIR_NAME.match(resolved.name):
        raise ConfigError(
            f"--run-dir {run_dir}: an orchestrated run's directory must be {RUNS_DIR}/NAME under the working "
            f"directory {workdir} (NAME: letters, digits, '_', '.', '-', at most 128 characters). The exported "
            "DAG names it from the orchestrator's run id; re-export the DAG if it was edited by hand.")
    return resolved


def trigger_of(run_type: str, triggered_by: str = "") -> str:
    """The trigger recorded for an Airflow run: its ``dag_run.run_type`` (``triggered_by`` rest_api: api)."""
    by = triggered_by.rsplit(".", 1)[-1].lower()
    if by == "rest_api":
        return "api"
    run_type = run_type.rsplit(".", 1)[-1].lower()  # "DagRunType.MANUAL" or "manual"
    if run_type in TRIGGERS:
        return run_type
    if run_type not in _AIRFLOW_RUN_TYPES:
        raise ConfigError(f"--run-type: expected one of {', '.join([*TRIGGERS, *_AIRFLOW_RUN_TYPES])} (a trainpipe "
                          f"trigger or an Airflow run type), got {run_type!r}.")
    return _AIRFLOW_RUN_TYPES[run_type]


def overrides_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """``TRAINPIPE_OVERRIDES`` (a JSON object ``{"model.params.max_depth": 8}``, as the DAG's ``overrides``
    param renders it) as ``--set`` items. Empty or ``{}``: none."""
    text = (os.environ if environ is None else environ).get(OVERRIDES_ENV, "").strip()
    if not text or text in ("{}", "null", "None"):
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{OVERRIDES_ENV} (the run's overrides param): expected a JSON object such as "
                          f'{{"model.params.max_depth": 8}}, got {text[:200]!r} ({exc.msg}).') from None
    if not isinstance(data, dict):
        raise ConfigError(f"{OVERRIDES_ENV} (the run's overrides param): expected a JSON object mapping config "
                          f'keys to values, such as {{"model.params.max_depth": 8}}, got {text[:200]!r}.')
    return [f"{key}={json.dumps(value) if not isinstance(value, str) else value}" for key, value in data.items()]


@dataclass
class OpenedRun:
    run_dir: Path
    mlflow_run_id: str
    trigger: str
    reused: bool  # the open task was retried: the run directory was already there


def open_run(config: Path, run_dir: Path, *, workdir: Path | None = None, overrides: Sequence[str] = (),
             profile: str | None = None, trigger: str = "manual", orchestrator: str = "airflow",
             ids: Mapping[str, str] | None = None, base_dir: Path | None = None) -> OpenedRun:
    """Validate the config with its overrides, create the run directory and the tracked parent run."""
    from trainpipe._api import build_runner, default_tracker
    from trainpipe.config import load_config
    from trainpipe.config._secrets import scrub
    from trainpipe.pipeline._preflight import preflight
    from trainpipe.pipeline._records import PipelineResult
    from trainpipe.pipeline._runner import RUN_FILE

    if trigger not in TRIGGERS:
        raise ConfigError(f"--trigger: expected one of {', '.join(TRIGGERS)}, got {trigger!r}.")
    where = (workdir or Path.cwd()).resolve()
    target = checked_run_dir(run_dir, where)
    loaded = load_config(config, profile=profile, overrides=list(overrides))
    if base_dir is not None:  # relative data paths: the project's folder, not where the config text was written
        loaded = replace(loaded, base_dir=base_dir.resolve())
    preflight(loaded.config)
    from trainpipe.export._plan import check_orchestration

    check_orchestration(loaded.config)
    run_file = target / RUN_FILE
    if run_file.exists():  # a retried open task: the parent run exists already
        opened = PipelineResult.read(run_file)
        return OpenedRun(target, opened.run_id, trigger, reused=True)
    tracker = default_tracker(loaded, where, steps=())
    runner = build_runner(loaded, tracker=tracker, workdir=where, trigger=trigger)
    mlflow_run, _ = runner._start_parent()
    tags = {"trainpipe.orchestrator": orchestrator, **{f"{orchestrator}.{k}": v for k, v in (ids or {}).items()},
            "trainpipe.run_dir": str(target)}
    tracker.set_tags(mlflow_run, {k: scrub(str(v), loaded.secret_values) for k, v in tags.items()})
    (target / "steps").mkdir(parents=True, exist_ok=True)
    runner._write_config(target)
    PipelineResult(mlflow_run, target, loaded.config.name, "running", [], tracking_uri=tracker.uri).write(run_file)
    return OpenedRun(target, mlflow_run, trigger, reused=False)


@dataclass
class ClosedRun:
    status: str  # finished | refused | failed
    mlflow_run_id: str
    message: str


def close_run(run_dir: Path, *, workdir: Path | None = None) -> ClosedRun:
    """End the parent run from the step table: FINISHED when every step of the graph ran or came from the
    cache; FAILED otherwise (a gate refusal is ``refused``: recorded FAILED as ``trainpipe run`` does, but the
    orchestrated run itself did what it should). Safe to repeat."""
    from trainpipe._api import build_runner, default_tracker
    from trainpipe.pipeline import StepGraph, load_run_config
    from trainpipe.pipeline._records import PipelineResult
    from trainpipe.pipeline._runner import RUN_FILE

    where = (workdir or Path.cwd()).resolve()
    target = checked_run_dir(run_dir, where)
    run_file = target / RUN_FILE
    if not run_file.is_file():
        return ClosedRun("failed", "", f"nothing to close: {target} has no {RUN_FILE} (the run was never opened; "
                                       "see the log of the open task)")
    result = PipelineResult.read(run_file)
    loaded = load_run_config(target)
    graph = StepGraph.for_config(loaded.config)
    done = {r.name: r for r in result.steps}
    failed = next((r for r in result.steps if r.status == "failed"), None)
    missing = [n for n in graph.names if n not in done]
    exc: BaseException | None = None
    status = "finished"
    if failed is not None and failed.reason.startswith(GateRefused.__name__):
        status, exc = "refused", GateRefused(failed.reason.split(": ", 1)[-1])
    elif failed is not None:
        status, exc = "failed", TrainpipeError(f"step {failed.name} failed: {failed.reason}")
    elif missing:
        status, exc = "failed", TrainpipeError(f"steps never ran: {', '.join(missing)}")
    if result.status in ("finished", "failed") and result.metrics.get("total_seconds") is not None:
        return ClosedRun(status, result.run_id, f"already closed ({result.status})")
    tracker = default_tracker(loaded, where, steps=()) if result.tracking_uri else None
    runner = build_runner(loaded, tracker=tracker, workdir=where, steps=graph)
    runner._finish_whole(result, result.run_id if tracker is not None else None, exc)
    shown = "FINISHED" if status == "finished" else "FAILED"
    why = "" if exc is None else f" ({type(exc).__name__}: {exc})"
    return ClosedRun(status, result.run_id, f"run {result.run_id} closed {shown}{why}")


def graph_json(config: Path, overrides: Sequence[str] = (), profile: str | None = None) -> dict[str, Any]:
    from trainpipe.config import load_config
    from trainpipe.pipeline import StepGraph

    return StepGraph.for_config(load_config(config, profile=profile, overrides=list(overrides)).config).to_dict()


__all__ = ["ClosedRun", "OpenedRun", "checked_run_dir", "close_run", "open_run", "overrides_from_env",
           "run_dir_name", "trigger_of"]
