"""The public Python API: ``trainpipe.run(...)`` does what ``trainpipe run`` does, MLflow tracking included.

The CLI's ``run``, ``tune`` and ``step`` commands build their runner with :func:`build_runner` and their
tracker with :func:`default_tracker`: one code path for the command line and for Python.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError

if TYPE_CHECKING:
    from trainpipe._hooks import Hooks
    from trainpipe.config import LoadedConfig
    from trainpipe.pipeline import PipelineResult, PipelineRunner, StepGraph
    from trainpipe.registry import ModelRegistry
    from trainpipe.tracking import Tracker

Overrides = Mapping[str, Any] | Sequence[str] | None
# steps that import skops (through the model or preprocessor): done before MLflow, see _skops_io.import_early
_MODEL_STEPS = frozenset({"preprocess", "tune", "train", "evaluate", "gate", "register"})


@dataclass
class RunResult:
    """What :func:`run` returns: the run's id and folder, each step's status, the test metrics, what the gate
    decided and the version it registered (None when nothing was registered)."""

    run_id: str
    run_dir: Path
    status: str
    steps: dict[str, str]
    metrics: dict[str, float]
    gate_verdict: str | None
    registered_model: str | None
    registered_version: str | None
    tracking_uri: str
    pipeline: PipelineResult = field(repr=False)

    @property
    def test_metrics(self) -> dict[str, float]:
        return {k: v for k, v in self.metrics.items() if k.startswith("test_")}


def override_list(overrides: Overrides) -> list[str]:
    """``{"model.params.max_depth": 4}`` or ``["model.params.max_depth=4"]`` as ``--set`` strings."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise ConfigError(f"overrides: expected a mapping or a list of KEY=VALUE strings, got the string "
                          f"{overrides!r}; write [{overrides!r}].")
    if isinstance(overrides, Mapping):
        return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    return [str(o) for o in overrides]


def load(path_or_config: str | os.PathLike[str] | LoadedConfig, overrides: Overrides = None,
         profile: str | None = None) -> LoadedConfig:
    """A loaded config from a path (with the profile overlay and overrides), or the one given."""
    from trainpipe.config import LoadedConfig, load_config

    if isinstance(path_or_config, LoadedConfig):
        if overrides or profile:  # re-read: the overlay and overrides apply to the file, then validate again
            if path_or_config.path is None:
                raise ConfigError("overrides/profile: this LoadedConfig was not read from a file; pass the "
                                  "pipeline file's path instead, or apply them when loading it.")
            return load_config(path_or_config.path, profile=profile or path_or_config.profile,
                               overrides=override_list(overrides))
        return path_or_config
    if isinstance(path_or_config, str | os.PathLike):
        return load_config(Path(path_or_config), profile=profile, overrides=override_list(overrides))
    raise ConfigError(f"trainpipe.run: expected a pipeline file path or a LoadedConfig (trainpipe.load_config), "
                      f"got {type(path_or_config).__name__}.")


def default_tracker(loaded: LoadedConfig, workdir: Path | None = None, *, steps: Iterable[str] = _MODEL_STEPS,
                    notes: Callable[[str], None] | None = None) -> Tracker:
    """The MLflow tracker of ``trainpipe run``: ``MLFLOW_TRACKING_URI``, else ``tracking.uri``, else the embedded
    store ``.trainpipe/mlflow.db`` of ``workdir`` (default: the current directory), artifacts in
    ``.trainpipe/mlartifacts``. ``notes`` gets what the user should read (a moved project's store)."""
    from trainpipe.tracking import MlflowTracker, resolve_tracking_uri
    from trainpipe.tracking._mlflow import bound_http_defaults

    # as the CLI: no INFO lines and artifact-download progress bars from MLflow in a library call (a caller's
    # own setting wins), and a dead tracking server costs seconds per call, not MLflow's minutes of retries
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    bound_http_defaults()
    if _MODEL_STEPS.intersection(steps):  # these steps import skops: do it before MLflow (see import_early)
        from trainpipe.models._skops_io import import_early

        import_early()
    workdir = (workdir or Path.cwd()).resolve()
    cfg = loaded.config
    uri = resolve_tracking_uri(cfg.tracking.uri, workdir)
    tracker = MlflowTracker(uri, cfg.tracking.experiment or cfg.name, workdir / ".trainpipe" / "mlartifacts")
    for note in tracker.notes:  # e.g. a copied project's store pointed at this folder's artifacts
        if notes is not None:
            notes(note)
    return tracker


def build_runner(loaded: LoadedConfig, *, tracker: Tracker | None, steps: StepGraph | None = None,
                 hooks: Hooks | Iterable[Hooks] | None = None, registry: ModelRegistry | None = None,
                 workdir: Path | None = None, trigger: str = "manual", no_cache: bool = False,
                 force: Iterable[str] = (), resume: bool = False, command: str = "run") -> PipelineRunner:
    """The runner of ``trainpipe run`` (and ``tune``, ``step``), everything given at construction."""
    from trainpipe.pipeline import PipelineRunner

    return PipelineRunner(loaded, workdir=workdir, tracker=tracker, registry=registry, hooks=hooks, steps=steps,
                          no_cache=no_cache, force=force, trigger=trigger, resume=resume, command=command)


def run(path_or_config: str | os.PathLike[str] | LoadedConfig, overrides: Overrides = None,
        profile: str | None = None, *, trigger: str = "manual", hooks: Hooks | Iterable[Hooks] | None = None,
        no_cache: bool = False, force: Iterable[str] = (), resume: bool = False, workdir: str | Path | None = None,
        tracker: Tracker | None = None, registry: ModelRegistry | None = None,
        steps: StepGraph | None = None, command: str = "run") -> RunResult:
    """Run a pipeline as ``trainpipe run`` does: the whole graph, tracked in MLflow (the same default tracking
    URI: ``MLFLOW_TRACKING_URI``, else ``tracking.uri``, else ``<workdir>/.trainpipe/mlflow.db``), drift, the
    gate and registration in its Model Registry.

    ``overrides``: ``{"model.params.max_depth": 4}`` or ``["model.params.max_depth=4"]`` (as ``--set``).
    ``tracker``/``registry``: others than MLflow's (e.g. ``InMemoryTracker()``, ``InMemoryRegistry()``).
    Errors are raised as the CLI reports them: ``ConfigError`` (bad config), ``DataValidationError``,
    ``GateRefused`` (nothing registered), ``TrainingInterrupted``...
    """
    from trainpipe.pipeline._rank import distributed_rank

    loaded = load(path_or_config, overrides, profile)
    where = Path(workdir).resolve() if workdir is not None else Path.cwd().resolve()
    if tracker is None and distributed_rank() == 0:
        tracker = default_tracker(loaded, where, steps=steps.names if steps is not None else _MODEL_STEPS,
                                  notes=_notes_to(hooks))
    runner = build_runner(loaded, tracker=tracker, registry=registry, steps=steps, hooks=hooks, workdir=where,
                          trigger=trigger, no_cache=no_cache, force=force, resume=resume, command=command)
    return result_of(runner.run())


def _notes_to(hooks: Any) -> Callable[[str], None] | None:
    from trainpipe._hooks import as_hooks

    return as_hooks(hooks).on_message if hooks is not None else None


def result_of(result: PipelineResult) -> RunResult:
    """The :class:`RunResult` of a finished pipeline run (gate verdict and registration read from its steps)."""
    params: dict[str, Any] = {}
    for record in result.steps:
        stored = result.run_dir / "steps" / record.name / "_step_result.json"
        try:
            params.update(json.loads(stored.read_text()).get("params", {}))
        except (OSError, ValueError):
            continue
    return RunResult(
        run_id=result.run_id, run_dir=result.run_dir, status=result.status,
        steps={s.name: s.status for s in result.steps}, metrics=dict(result.metrics),
        gate_verdict=params.get("gate_verdict"), registered_model=params.get("registered_model"),
        registered_version=params.get("registered_version"), tracking_uri=result.tracking_uri, pipeline=result)


__all__ = ["RunResult", "build_runner", "default_tracker", "load", "override_list", "result_of", "run"]
