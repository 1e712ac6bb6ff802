"""Run the step graph: cache look-ups, run directory, per-step tracking, timings and cost.

The runner knows the graph, not the steps: what it does differently for a step comes from the step's
declaration (flags, ``headline_metrics``, ``artifact_dir``, ``slice_tables``, ``after``; see
``pipeline._step.Step``), never from its name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from trainpipe._exceptions import ConfigError, StorageFull, StoreError, TrackingUnavailable, TrainingInterrupted
from trainpipe._hooks import HookList, Hooks, as_hooks
from trainpipe._signals import SignalInterrupt, deferred
from trainpipe._version import __version__
from trainpipe.config import LoadedConfig, config_hash, load_config, redact
from trainpipe.config._secrets import env_placeholders, is_secret_name, scrub, write_private_text
from trainpipe.pipeline._cache import StepCache, explain_change, key_of, link_tree, manifest_of
from trainpipe.pipeline._graph import StepGraph
from trainpipe.pipeline._rank import distributed_rank, world_size
from trainpipe.pipeline._records import PipelineResult, StepRecord
from trainpipe.pipeline._run_logs import (
    STEP_RESULT,
    log_artifacts,
    log_inputs,
    slice_metrics,
    step_param,
    warnings_as_notes,
)
from trainpipe.pipeline._step import Step, StepContext
from trainpipe.tracking import Tracker, library_versions, lineage_tags
from trainpipe.tracking._journal import JournaledTracker

if TYPE_CHECKING:
    from trainpipe.registry import ModelRegistry

STATE_DIR = ".trainpipe"
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
# how a run started (the "trigger" tag): event is the older name of asset (a new-data trigger)
TRIGGERS = ("manual", "schedule", "asset", "api", "event")
# test-only: `trainpipe step NAME` fails once per run directory for the step this names (tests of retries)
FAIL_ONCE_ENV = "TRAINPIPE_TEST_FAIL_ONCE"


@dataclass
class _Usage:
    wall: float
    cpu: float

    @classmethod
    def now(cls) -> _Usage:
        t = os.times()
        return cls(time.perf_counter(), t.user + t.system + t.children_user + t.children_system)


def _peak_rss_mb() -> float:
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _config_value(dump: dict[str, Any], dotted: str) -> Any:
    node: Any = dump
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def flatten_params(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten_params(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(value) if isinstance(value, list | type(None)) else str(value)}


class PipelineRunner:
    """Runs the steps of one pipeline config, in order, through the step cache.

    Everything is given at construction: ``steps`` (a :class:`StepGraph` slice or a list of steps; default: the
    config's whole graph), ``tracker`` (None: nothing tracked), ``registry`` (default: the MLflow registry of an
    MLflow tracker's store, a fresh :class:`~trainpipe.registry.InMemoryRegistry` for any other tracker;
    without a tracker a graph with steps that use the registry is refused with a ConfigError), ``hooks`` (one
    listener or several). Under ``torchrun`` a rank > 0 runs the graph without its rank-0 steps, untracked.
    """

    def __init__(self, loaded: LoadedConfig, *, workdir: Path | None = None, tracker: Tracker | None = None,
                 hooks: Hooks | Iterable[Hooks] | None = None, no_cache: bool = False, force: Iterable[str] = (),
                 trigger: str = "manual", steps: StepGraph | Sequence[Step] | None = None, resume: bool = False,
                 command: str = "run", registry: ModelRegistry | None = None) -> None:
        self.loaded = loaded
        self.command = command  # the trainpipe.command tag: run, tune, reproduce (runs list shows it)
        self.workdir = (workdir or Path.cwd()).resolve()
        self.hooks: HookList = as_hooks(hooks)
        self.no_cache = no_cache
        if steps is None:
            graph = StepGraph.for_config(loaded.config)
        elif isinstance(steps, StepGraph):
            graph = steps
        else:
            graph = StepGraph(steps, loaded.config.name)
        self.resume = resume
        self.rank = distributed_rank()
        if self.rank > 0:  # under torchrun: only rank 0 tracks, evaluates, gates and registers
            graph = graph.without(lambda s: s.rank0_only)
            tracker, registry = None, None
        self.graph = graph
        self.steps = list(graph.steps)
        self.tracker = tracker
        names = [s.name for s in self.steps]
        unknown = [f for f in force if f not in names]
        if unknown:
            raise ConfigError(f"--force: unknown step(s) {unknown}; steps are {', '.join(names)}.")
        self.force = set(force)
        if trigger not in TRIGGERS:
            raise ConfigError(f"--trigger: expected {', '.join(TRIGGERS)}, got {trigger!r}.")
        self.trigger = trigger
        self.cache = StepCache(self.workdir / STATE_DIR / "cache")
        single = next((s for s in self.steps if s.single_process), None)
        if world_size() > 1 and single is not None:
            raise ConfigError(single.single_process)
        if self.rank > 0:  # its own cache: rank 0's artifacts (and model) are the ones later runs reuse
            self.cache = StepCache(self.workdir / STATE_DIR / "ranks" / f"rank-{self.rank}" / "cache")
        self._registry_given = registry
        self._prepared: dict[str, Any] = {}  # Step.prepare results of the run in progress
        self.registry: ModelRegistry | None = registry
        if registry is None and tracker is not None and not hasattr(tracker, "connection_uri"):
            from trainpipe.registry._memory import InMemoryRegistry

            self.registry = InMemoryRegistry(tracker)  # an in-memory (or other) tracker: the in-memory registry
        needs = [s.name for s in self.steps if s.uses_registry]
        if needs and self.registry is None and tracker is None:
            raise ConfigError(
                f"steps {', '.join(needs)} read or write the model registry, and this runner has none (no tracker, "
                "no registry). Pass tracker= (an MLflow tracker's store holds the registry), registry= (e.g. "
                "trainpipe.registry.InMemoryRegistry()), or steps= a slice without them (e.g. "
                "StepGraph.for_config(config).without(lambda s: s.uses_registry)); trainpipe.run() sets up MLflow "
                "as the CLI does.")

    @property
    def config(self) -> Any:
        return self.loaded.config

    def step_by_name(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise ConfigError(f"unknown step {name!r}; steps are {', '.join(s.name for s in self.steps)}.")

    def _resolve_registry(self) -> None:
        """An MLflow tracker's registry, on the (journaled) tracker the run uses: its guarded client."""
        if self._registry_given is None and self.tracker is not None and hasattr(self.tracker, "connection_uri"):
            from trainpipe.registry._mlflow_registry import MlflowRegistry

            self.registry = MlflowRegistry.for_tracker(self.tracker)

    # -- whole pipeline ---------------------------------------------------------------------------

    def run(self) -> PipelineResult:
        from trainpipe.pipeline._preflight import preflight

        preflight(self.config)
        if self.rank > 0:
            self.tracker = None
        if self.tracker is not None and not isinstance(self.tracker, JournaledTracker):
            # every tracker call is journaled in the run directory first: a lost server loses nothing
            self.tracker = JournaledTracker(self.tracker)
        self._resolve_registry()
        from trainpipe.tracking._stale import mark_killed_runs, write_owner

        mark_killed_runs(self.workdir / STATE_DIR, self.tracker)  # SIGKILLed runs of this host: KILLED
        run_id, parent = self._start_parent()
        run_dir = self.workdir / STATE_DIR / "runs" / run_id
        try:
            (run_dir / "steps").mkdir(parents=True, exist_ok=True)
            if self.tracker is not None:
                self.tracker.attach(run_dir, run_id)
            write_owner(run_dir)
            self._write_config(run_dir)
            result = PipelineResult(run_id, run_dir, self.config.name, "running", [],
                                    tracking_uri=self.tracker.uri if self.tracker else "")
            result.write(run_dir / RUN_FILE)
        except OSError as exc:
            full = storage_full(exc, run_dir)
            if full is None:
                raise
            raise full from exc
        self.hooks.on_pipeline_start(self.config.name, [s.name for s in self.steps])
        started = time.perf_counter()
        from trainpipe.pipeline import _handoff

        self._prepare_steps()
        try:
            for at, step in enumerate(self.steps):
                try:
                    result.steps.append(self._run_one(step, run_dir, parent, result))
                except Exception:
                    self._after_failure(self.steps[at + 1:], run_dir, parent, result)
                    raise
        except BaseException as exc:
            self._finish_whole(result, parent, exc)
            self.hooks.on_pipeline_end(self.config.name, result.status, time.perf_counter() - started)
            raise
        finally:
            _handoff.clear()  # frames and matrices handed between this run's steps
            self._close_prepared()
        self._finish_whole(result, parent, None)
        self.hooks.on_pipeline_end(self.config.name, result.status, time.perf_counter() - started)
        return result

    def _prepare_steps(self) -> None:
        """``Step.prepare`` of each step this process runs: helpers started now (e.g. a worker process that
        imports its libraries while the data steps run), handed to the step as ``ctx.prepared``."""
        self._prepared = {}
        for step in self.steps:
            if step.prepare is not None and (self.rank == 0 or not step.rank0_only):
                self._prepared[step.name] = step.prepare(self.loaded)

    def _close_prepared(self) -> None:
        prepared, self._prepared = self._prepared, {}
        for helper in prepared.values():
            close = getattr(helper, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):  # a helper's clean-up never changes the run's outcome
                    close()

    def _after_failure(self, rest: Sequence[Step], run_dir: Path, parent: str | None, result: PipelineResult) -> None:
        """Steps flagged ``runs_after_failure`` (reports) whose inputs are all there still run; their own
        failure is reported as a message (the first error is the one that ends the run)."""
        done = {r.name for r in result.steps if r.status != "failed"}
        for step in rest:
            if not step.runs_after_failure or not all(p in done or p not in self.graph for p in step.upstream):
                continue
            try:
                result.steps.append(self._run_one(step, run_dir, parent, result))
                done.add(step.name)
            except Exception as exc:
                self.hooks.on_message(f"{step.name} (runs after a failure) failed too: {type(exc).__name__}: "
                                      f"{scrub(str(exc), self.loaded.secret_values)[:300]}")

    def _finish_whole(self, result: PipelineResult, parent: str | None, exc: BaseException | None) -> None:
        """The run's last records are written whole, locally (a signal waits for them; a signal that came
        meanwhile changes nothing: the outcome is already decided and recorded). The tracking server is told
        after that, with signals working: a dead or hung server can delay the exit, never block a SIGTERM."""
        tracker = self.tracker if isinstance(self.tracker, JournaledTracker) else None
        with deferred() as held:
            with tracker.held() if tracker is not None else contextlib.nullcontext():
                self._finish(result, parent, exc)
            held.pending = None
        if tracker is None or parent is None:
            return
        try:
            tracker.flush(quick=exc is not None and _interrupted(exc))
        except Exception as log_error:
            with contextlib.suppress(Exception):  # never leave the MLflow run RUNNING for good
                tracker.inner.end_run(parent, "FAILED")
            if exc is not None:  # the run already failed: that error is the one to report
                return
            why = scrub((str(log_error).strip().splitlines() or [""])[0][:300])
            raise StoreError(
                f"tracking: the run finished, but its records could not be written to the MLflow store "
                f"{tracker.uri} ({type(log_error).__name__}: {why}). "
                f"Check that the store and its artifact folder are writable; the run directory "
                f"{result.run_dir} has everything."
            ) from log_error
        if tracker.offline is not None and (exc is None or isinstance(exc, TrackingUnavailable)):
            raise TrackingUnavailable(tracker.unavailable_message()) from tracker.offline

    def run_step(self, name: str, run_dir: Path) -> PipelineResult:
        """Run one step inside an existing run directory (its inputs must be there)."""
        from trainpipe.pipeline._preflight import preflight

        step = self.step_by_name(name)
        preflight(self.config)
        self._resolve_registry()
        run_file = run_dir / RUN_FILE
        result = (PipelineResult.read(run_file) if run_file.exists()
                  else PipelineResult(run_dir.name, run_dir, self.config.name, "running", []))
        (run_dir / "steps").mkdir(parents=True, exist_ok=True)
        if not (run_dir / CONFIG_FILE).exists():
            self._write_config(run_dir)
        parent = result.run_id if self.tracker is not None and run_file.exists() else None
        if os.environ.get(FAIL_ONCE_ENV) == name and not (run_dir / f".failed-once-{name}").exists():
            (run_dir / f".failed-once-{name}").touch()
            step = replace(step, func=_fail_once)
            self.force = {*self.force, name}  # fails even when its outputs are in the cache
        # the records in run.json say what the inputs were; the files say what they are now (a model file
        # replaced by hand must not be taken for the cached one)
        before = [r for r in result.steps if r.name != name]
        result.steps = list(before)
        records: list[StepRecord] = []
        try:
            records = [self._run_one(step, run_dir, parent, result, trust_records=False)]
        except BaseException:  # a failed step is in the step table too (an orchestrator's last task reads it)
            records = [r for r in result.steps if r.name == name][-1:]
            raise
        finally:  # read again under a lock: an orchestrator may run two steps of this run at once
            with _locked(run_dir / ".run.json.lock"):
                if run_file.exists():
                    result.steps = [r for r in PipelineResult.read(run_file).steps if r.name != name]
                result.steps = [r for r in result.steps if r.name != name] + records
                order = {s.name: i for i, s in enumerate(self.graph.whole.steps)}
                result.steps.sort(key=lambda r: order.get(r.name, 99))
                result.write(run_file)
        return result

    # -- internals --------------------------------------------------------------------------------

    def _start_parent(self) -> tuple[str, str | None]:
        if self.tracker is None:
            return f"local-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}", None
        cfg = self.config
        tags = {"trainpipe.kind": "pipeline", "trainpipe.command": self.command, "trainpipe.pipeline": cfg.name,
                "config_hash": config_hash(cfg),
                "mlflow.note.content": cfg.description, "trainpipe.profile": self.loaded.profile or "",
                **lineage_tags(self.loaded.base_dir, self.trigger)}
        tags = {k: scrub(str(v), self.loaded.secret_values) for k, v in tags.items()}  # the description too
        from trainpipe.tracking._names import run_name

        run_id = self.tracker.start_run(run_name(cfg.name, cfg.model.type, self.trigger), tags=tags)
        self.tracker.log_params(run_id, redact(flatten_params(cfg.model_dump(mode="json")),
                                               secrets=self.loaded.secret_values))
        return run_id, run_id

    def _write_config(self, run_dir: Path) -> None:
        dump = self.config.model_dump(mode="json")
        # secrets go back to the ${NAME} they came from: `trainpipe step` re-reads them from the environment
        write_private_text(run_dir / CONFIG_FILE,
                           yaml.safe_dump(env_placeholders(dump, self.loaded.secret_values), sort_keys=False))
        write_private_text(run_dir / "config.redacted.yaml",
                           yaml.safe_dump(redact(dump, secrets=self.loaded.secret_values), sort_keys=False))
        (run_dir / "source_dir.txt").write_text(str(self.loaded.base_dir))

    def _components(self, step: Step, inputs: dict[str, str]) -> dict[str, Any]:
        dump = self.config.model_dump(mode="json")
        external = step.external(self.loaded) if step.external else {}
        return {"step": step.name, "trainpipe": __version__,
                # redacted: components are stored in the cache (a storage URL's password must not be)
                "config": redact({k: _config_value(dump, k) for k in step.config_keys},
                                 secrets=self.loaded.secret_values),
                "inputs": inputs, "external": external,
                "libraries": library_versions(step.libraries)}

    def _run_one(self, step: Step, run_dir: Path, parent: str | None, result: PipelineResult,
                 trust_records: bool = True) -> StepRecord:
        self.hooks.on_step_start(step.name)
        start = _Usage.now()
        known = {r.name: r for r in result.steps}
        input_dirs, input_fps = {}, {}
        for name in step.upstream:
            folder = run_dir / "steps" / name
            if not folder.is_dir():
                raise ConfigError(f"step {step.name!r} needs the output of step {name!r}, which is not in "
                                  f"{run_dir}. Run that step first (trainpipe step {name} --run-dir {run_dir}).")
            input_dirs[name] = folder
            rec = known.get(name)
            trusted = rec.fingerprint if rec and trust_records else ""
            input_fps[name] = trusted or _dir_fingerprint(folder)
        components = self._components(step, input_fps)
        key = key_of(components)
        previous = self.cache.last_components(step.name, self.config.name)
        entry, miss_reason = (None, "")
        postponed: int | None = None  # a signal an uninterruptible step held back
        on_purpose = self.no_cache or step.name in self.force or not step.cache  # runs even when cached
        if self.no_cache:
            reason = "--no-cache"
        elif step.name in self.force:
            reason = f"--force {step.name}"
        elif not step.cache:
            reason = "always runs (reads the model registry)"
        else:
            entry, miss_reason = self.cache.lookup(step.name, key)
            reason = ""
            if entry is None:
                changed = explain_change(previous, components)
                same = previous is not None and key_of(previous) == key
                reason = miss_reason if same or miss_reason.startswith("cached artifact") else changed
        target = run_dir / "steps" / step.name
        child = None
        if self.tracker is not None and parent is not None:
            child = self.tracker.start_run(step.name, parent_id=parent,
                                           tags={"trainpipe.kind": "step", "trainpipe.step": step.name,
                                                 "trainpipe.pipeline": self.config.name})
        ctx = StepContext(step.name, self.loaded, input_dirs, target, run_dir, self.hooks,
                          tracker=cast(Tracker, self.tracker) if child is not None else None, run_id=child,
                          parent_run_id=parent, key=key, input_fingerprints=dict(input_fps),
                          state_dir=self.workdir / STATE_DIR, resume=self.resume, declared=step.inputs,
                          registry=self.registry if step.uses_registry else None,
                          prepared=self._prepared.get(step.name))
        if entry is not None:
            link_tree(entry.path, target)
            for name in step.run_files:
                if (target / name).exists():
                    shutil.copyfile(target / name, run_dir / name)
            stored = json.loads((entry.path / STEP_RESULT).read_text())
            ctx.metrics.update(stored.get("metrics", {}))
            ctx.params.update(stored.get("params", {}))
            status, fingerprint, reason = "cached", entry.fingerprint, "inputs unchanged"
        else:
            tmp = self.cache.new_tmp(step.name)
            ctx.out_dir = tmp
            try:
                with deferred() if step.uninterruptible else contextlib.nullcontext() as held, \
                        warnings_as_notes(ctx):
                    step.func(ctx)
                    (tmp / STEP_RESULT).write_text(json.dumps({"metrics": ctx.metrics, "params": ctx.params,
                                                               "curves": ctx.curves}, default=str))
                    entry = self.cache.commit(step.name, key, tmp, components, replace=on_purpose)
                    if held is not None:  # it happened (a model is registered): the step is recorded as ran
                        postponed, held.pending = held.pending, None
            except BaseException as exc:
                tracker = self.tracker if isinstance(self.tracker, JournaledTracker) else None
                with deferred() as held, \
                        tracker.held() if tracker is not None else contextlib.nullcontext():
                    # a repeated Ctrl-C must not lose the failed step's record (journaled, not sent, here)
                    shutil.rmtree(tmp, ignore_errors=True)
                    why = scrub(f"{type(exc).__name__}: {exc}", self.loaded.secret_values)[:500]
                    record = self._record(step, "failed", why, start, key, "", ctx)
                    self._log_step(child, record, ctx, "KILLED" if _interrupted(exc) else "FAILED")
                    result.steps.append(record)
                    self.hooks.on_step_error(step.name, exc)
                    self.hooks.on_step_end(step.name, "failed", record.reason, record.seconds)
                    held.pending = None  # the step already failed or was interrupted: that is what ends the run
                if tracker is not None:
                    with contextlib.suppress(Exception):  # best effort: the step's error is the one to report
                        tracker.flush(quick=_interrupted(exc))
                full = storage_full(exc, tmp) if isinstance(exc, OSError) else None
                if full is not None:
                    raise full from exc
                raise
            self.cache.remember(step.name, self.config.name, components)
            link_tree(entry.path, target)
            status, fingerprint = "ran", entry.fingerprint
        if step.after is not None:  # a check on the output, cached or not (keys outside the step's cache key)
            try:
                step.after(self.loaded, target)
            except ConfigError as exc:
                why = scrub(f"ConfigError: {exc}", self.loaded.secret_values)[:500]
                record = self._record(step, "failed", why, start, key, fingerprint, ctx)
                self._log_step(child, record, ctx, "FAILED")
                result.steps.append(record)
                self.hooks.on_step_error(step.name, exc)
                self.hooks.on_step_end(step.name, "failed", record.reason, record.seconds)
                raise
        record = self._record(step, status, reason, start, key, fingerprint, ctx)
        self._log_step(child, record, ctx, "FINISHED")
        self.hooks.on_step_end(step.name, status, reason, record.seconds)
        if postponed is not None:
            if step is self.steps[-1]:  # the run's work is done: it finishes, and the process exits after
                self.hooks.on_message(f"{signal.Signals(postponed).name} arrived while {step.name} ran; the "
                                      "run had nothing left to do and finished")
            else:
                raise SignalInterrupt(postponed)
        return record

    def _record(self, step: Step, status: str, reason: str, start: _Usage, key: str, fingerprint: str,
                ctx: StepContext) -> StepRecord:
        end = _Usage.now()
        cpu = max(0.0, end.cpu - start.cpu)
        return StepRecord(step.name, status, reason, round(end.wall - start.wall, 4), round(cpu, 4),
                          round(_peak_rss_mb(), 1), cpu / 3600.0 * self.config.cost.cpu_hour, key, fingerprint,
                          dict(ctx.metrics))

    def _log_step(self, child: str | None, record: StepRecord, ctx: StepContext, status: str) -> None:
        if self.tracker is None or child is None:
            return
        self.tracker.set_tags(child, {"trainpipe.status": record.status, "trainpipe.reason": record.reason,
                                      "trainpipe.cache_key": record.key})
        metrics = {"duration_s": record.seconds, "cpu_s": record.cpu_seconds, "peak_rss_mb": record.peak_rss_mb,
                   "cost": record.cost, **record.metrics}
        self.tracker.log_metrics(child, metrics)
        if ctx.params:
            self.tracker.log_params(child, ctx.params)
        if record.status == "ran":
            for key, values in ctx.curves.items():
                self.tracker.log_metric_history(child, key, values)
        self.tracker.end_run(child, status)

    def _finish(self, result: PipelineResult, parent: str | None, exc: BaseException | None) -> None:
        result.status = "finished" if exc is None else ("interrupted" if _interrupted(exc) else "failed")
        result.error = "" if exc is None else scrub(f"{type(exc).__name__}: {exc}", self.loaded.secret_values)
        totals = {"total_seconds": sum(s.seconds for s in result.steps),
                  "total_cpu_seconds": sum(s.cpu_seconds for s in result.steps),
                  "peak_rss_mb": max((s.peak_rss_mb for s in result.steps), default=0.0),
                  "estimated_cost": sum(s.cost for s in result.steps)}
        metrics = {f"step_{s.name}_seconds": s.seconds for s in result.steps}
        metrics.update(totals)
        headline = {s.name for s in self.steps if s.headline_metrics}
        for s in result.steps:
            if s.name in headline:  # e.g. the evaluation's test metrics
                metrics.update(s.metrics)
        result.metrics = metrics
        result.write(result.run_dir / RUN_FILE)
        from trainpipe.report import write_run_report_safely

        report = write_run_report_safely(result.run_dir, self.hooks)  # report.html; never fails the run
        if self.tracker is None or parent is None:
            return
        steps_table = [{k: v for k, v in s.to_dict().items() if k != "metrics"} for s in result.steps]
        (result.run_dir / "steps.json").write_text(json.dumps(steps_table, indent=2))
        tags = {"trainpipe.status": result.status, "trainpipe.run_dir": str(result.run_dir)}
        fingerprint = step_param(result, "data_fingerprint")
        if fingerprint:
            tags["data_fingerprint"] = fingerprint
        if result.error:
            tags["trainpipe.error"] = result.error[:5000]
        # under JournaledTracker.held (see _finish_whole): these calls are journaled now and sent after
        self.tracker.set_tags(parent, tags)
        log_inputs(self.tracker, self.hooks, self.loaded, self.steps, parent, result.run_dir,
                   tags.get("data_fingerprint"))
        metrics.update(slice_metrics(self.steps, result.run_dir))
        log_artifacts(self.tracker, self.steps, parent, result.run_dir)
        if report is not None:
            self.tracker.log_artifact(parent, report)
        if isinstance(self.tracker, JournaledTracker):
            metrics["tracking_seconds"] = round(self.tracker.seconds, 4)
            result.metrics["tracking_seconds"] = metrics["tracking_seconds"]
            result.write(result.run_dir / RUN_FILE)
        self.tracker.log_metrics(parent, metrics)
        self.tracker.end_run(parent, {"finished": "FINISHED", "failed": "FAILED"}.get(result.status, "KILLED"))


_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_FULL_WORDS = ("no space left on device", "disk quota exceeded")


def storage_full(exc: BaseException, where: Path) -> StorageFull | None:
    """A StorageFull naming the path when ``exc`` is a write that failed for lack of space or quota."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno not in _FULL_ERRNOS and not any(w in str(exc).lower() for w in _FULL_WORDS):
        return None
    path = exc.filename or where
    why = "disk quota exceeded" if exc.errno == getattr(errno, "EDQUOT", -1) else "no space left on the device"
    return StorageFull(f"{why} writing {path}. Free space there (old runs: .trainpipe/runs, the step cache: "
                       ".trainpipe/cache) or run from a directory on a larger disk, then run again.")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fail_once(ctx: StepContext) -> None:
    raise RuntimeError(f"{FAIL_ONCE_ENV}={ctx.step}: this step fails once per run directory (a test of retries)")


def _interrupted(exc: BaseException) -> bool:
    return isinstance(exc, TrainingInterrupted | KeyboardInterrupt)


def _dir_fingerprint(folder: Path) -> str:
    from trainpipe.pipeline._cache import fingerprint_of

    return fingerprint_of(manifest_of(folder))


def load_run_config(run_dir: Path) -> LoadedConfig:
    """The resolved config saved in a run directory, read back for ``trainpipe step``."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"--run-dir {run_dir}: no {CONFIG_FILE} there; is this a trainpipe run directory? "
                          f"Runs live under {STATE_DIR}/runs/.")
    # only the secret-named variables: the ${NAME} put in place of their values (no profile overlay here)
    loaded = load_config(path, env={k: v for k, v in os.environ.items() if is_secret_name(k)})
    from trainpipe.tracking._relocate import recorded_source_dir

    base = recorded_source_dir(run_dir)  # followed into this project when it was copied or moved
    if base is not None:
        return LoadedConfig(loaded.config, loaded.path, base, None, loaded.raw, loaded.secret_values)
    return loaded


def state_dir(workdir: Path) -> Path:
    return workdir / STATE_DIR


__all__ = ["PipelineRunner", "distributed_rank", "load_run_config", "state_dir"]
