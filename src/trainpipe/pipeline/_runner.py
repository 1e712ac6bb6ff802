"""Run the step graph: cache look-ups, run directory, per-step tracking, timings and cost."""

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from trainpipe._exceptions import ConfigError, StorageFull, StoreError, TrackingUnavailable, TrainingInterrupted
from trainpipe._hooks import Hooks
from trainpipe._signals import SignalInterrupt, deferred
from trainpipe._version import __version__
from trainpipe.config import LoadedConfig, config_hash, load_config, redact
from trainpipe.config._secrets import env_placeholders, is_secret_name, scrub, write_private_text
from trainpipe.pipeline._cache import StepCache, explain_change, key_of, link_tree, manifest_of
from trainpipe.pipeline._records import PipelineResult, StepRecord
from trainpipe.pipeline._step import Step, StepContext
from trainpipe.pipeline._steps import steps_for
from trainpipe.tracking import Tracker, library_versions, lineage_tags
from trainpipe.tracking._journal import JournaledTracker

STATE_DIR = ".trainpipe"
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
STEP_RESULT = "_step_result.json"
MAX_SLICE_LEVELS_LOGGED = 50  # per column: the largest slices (the evaluation sorts them by size)


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
    """Runs steps of one pipeline config, in order, through the step cache."""

    def __init__(self, loaded: LoadedConfig, *, workdir: Path | None = None, tracker: Tracker | None = None,
                 hooks: Hooks | None = None, no_cache: bool = False, force: Iterable[str] = (),
                 trigger: str = "manual", steps: Sequence[Step] | None = None, resume: bool = False,
                 command: str = "run") -> None:
        self.loaded = loaded
        self.command = command  # the trainpipe.command tag: run, tune, reproduce (runs list shows it)
        self.workdir = (workdir or Path.cwd()).resolve()
        self.tracker = tracker
        self.hooks = hooks or Hooks()
        self.no_cache = no_cache
        self.steps = list(steps) if steps is not None else steps_for(loaded.config)
        self.resume = resume
        self.rank = distributed_rank()
        if self.rank > 0:  # under torchrun: only rank 0 tracks, evaluates, gates and registers
            names_now = [s.name for s in self.steps]
            if "train" in names_now:
                self.steps = self.steps[: names_now.index("train") + 1]
        names = [s.name for s in self.steps]
        unknown = [f for f in force if f not in names]
        if unknown:
            raise ConfigError(f"--force: unknown step(s) {unknown}; steps are {', '.join(names)}.")
        self.force = set(force)
        if trigger not in ("manual", "schedule", "event"):
            raise ConfigError(f"--trigger: expected manual, schedule or event, got {trigger!r}.")
        self.trigger = trigger
        self.cache = StepCache(self.workdir / STATE_DIR / "cache")
        if _world_size() > 1 and any(s.name == "tune" for s in self.steps):
            raise ConfigError(
                "tuning: a study cannot run inside torchrun (every process would run its own trials). Run "
                "`trainpipe tune` first (several workers can share one study), then start torchrun with the best "
                "parameters (--set model.params.KEY=VALUE), without the tuning section."
            )
        if self.rank > 0:  # its own cache: rank 0's artifacts (and model) are the ones later runs reuse
            self.cache = StepCache(self.workdir / STATE_DIR / "ranks" / f"rank-{self.rank}" / "cache")

    @property
    def config(self) -> Any:
        return self.loaded.config

    def step_by_name(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise ConfigError(f"unknown step {name!r}; steps are {', '.join(s.name for s in self.steps)}.")

    # -- whole pipeline ---------------------------------------------------------------------------

    def run(self) -> PipelineResult:
        from trainpipe.pipeline._preflight import preflight

        preflight(self.config)
        if self.rank > 0:
            self.tracker = None
        if self.tracker is not None and not isinstance(self.tracker, JournaledTracker):
            # every tracker call is journaled in the run directory first: a lost server loses nothing
            self.tracker = JournaledTracker(self.tracker)
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
        from trainpipe.pipeline import _handoff

        try:
            for step in self.steps:
                result.steps.append(self._run_one(step, run_dir, parent, result))
        except BaseException as exc:
            self._finish_whole(result, parent, exc)
            raise
        finally:
            _handoff.clear()  # frames and matrices handed between this run's steps
        self._finish_whole(result, parent, None)
        return result

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
        run_file = run_dir / RUN_FILE
        result = (PipelineResult.read(run_file) if run_file.exists()
                  else PipelineResult(run_dir.name, run_dir, self.config.name, "running", []))
        (run_dir / "steps").mkdir(parents=True, exist_ok=True)
        if not (run_dir / CONFIG_FILE).exists():
            self._write_config(run_dir)
        parent = result.run_id if self.tracker is not None and run_file.exists() else None
        # the records in run.json say what the inputs were; the files say what they are now (a model file
        # replaced by hand must not be taken for the cached one)
        record = self._run_one(step, run_dir, parent, result, trust_records=False)
        result.steps = [r for r in result.steps if r.name != name] + [record]
        order = {s.name: i for i, s in enumerate(self.steps)}
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
        for name in step.inputs:
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
                          state_dir=self.workdir / STATE_DIR, resume=self.resume)
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
                        _warnings_as_notes(ctx):
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
        if step.name == "validate":
            try:
                self._check_task_fit(target)
            except ConfigError as exc:
                why = scrub(f"ConfigError: {exc}", self.loaded.secret_values)[:500]
                record = self._record(step, "failed", why, start, key, fingerprint, ctx)
                self._log_step(child, record, ctx, "FAILED")
                result.steps.append(record)
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

    def _check_task_fit(self, validate_dir: Path) -> None:
        """Keys that fit only some tasks against the task validate inferred: here, not inside the step,
        because its cache entry does not depend on the model, gate or tuning sections."""
        if self.config.task != "auto" or not (validate_dir / "task.json").is_file():
            return
        from trainpipe.pipeline._preflight import check_task_fit

        check_task_fit(self.config, str(json.loads((validate_dir / "task.json").read_text())["task"]))

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
        for s in result.steps:
            if s.name == "evaluate":
                metrics.update(s.metrics)
        result.metrics = metrics
        result.write(result.run_dir / RUN_FILE)
        if self.tracker is None or parent is None:
            return
        steps_table = [{k: v for k, v in s.to_dict().items() if k != "metrics"} for s in result.steps]
        (result.run_dir / "steps.json").write_text(json.dumps(steps_table, indent=2))
        ingest_info = result.run_dir / "steps" / "ingest" / "ingest.json"
        tags = {"trainpipe.status": result.status, "trainpipe.run_dir": str(result.run_dir)}
        if ingest_info.exists():
            tags["data_fingerprint"] = json.loads(ingest_info.read_text())["fingerprint"]
        if result.error:
            tags["trainpipe.error"] = result.error[:5000]
        # under JournaledTracker.held (see _finish_whole): these calls are journaled now and sent after
        self.tracker.set_tags(parent, tags)
        self._log_inputs(parent, result.run_dir, tags.get("data_fingerprint"))
        metrics.update(self._slice_metrics(result.run_dir))
        self._log_artifacts(parent, result.run_dir)
        if isinstance(self.tracker, JournaledTracker):
            metrics["tracking_seconds"] = round(self.tracker.seconds, 4)
            result.metrics["tracking_seconds"] = metrics["tracking_seconds"]
            result.write(result.run_dir / RUN_FILE)
        self.tracker.log_metrics(parent, metrics)
        self.tracker.end_run(parent, {"finished": "FINISHED", "failed": "FAILED"}.get(result.status, "KILLED"))

    def _log_inputs(self, parent: str, run_dir: Path, fingerprint: str | None) -> None:
        """The train, validation and test splits as the parent run's dataset inputs (see ``tracking._datasets``)."""
        split_dir = run_dir / "steps" / "split"
        if self.tracker is None or not fingerprint or not split_dir.is_dir():
            return
        from trainpipe.config import redact_uri
        from trainpipe.tracking._datasets import describe_splits

        info_file = split_dir / "split.json"
        try:
            info = json.loads(info_file.read_text()) if info_file.is_file() else {}
            source = redact_uri(redact(self.config.data.source, secrets=self.loaded.secret_values))
            datasets = describe_splits(split_dir, fingerprint=fingerprint, source=scrub(source), split_info=info)
        except (OSError, ValueError) as exc:  # a damaged split file must not cost the run its other records
            self.hooks.on_message(f"tracking: the splits were not logged as dataset inputs ({type(exc).__name__}: "
                                  f"{scrub(str(exc))[:200]})")
            return
        if datasets:
            self.tracker.log_inputs(parent, datasets)

    def _slice_metrics(self, run_dir: Path) -> dict[str, float]:
        """Per-slice test metrics as run metrics (``test.slice.<column>/<level>.<metric>``), from the evaluation
        (evaluation.slices) and the fairness gate (gate.slices); ``slice_metrics.json`` maps each key back to
        the column and level it stands for (MLflow allows few characters in a key: see ``tracking._names``)."""
        from trainpipe.tracking._names import slice_metric_key

        tables: dict[str, list[dict[str, Any]]] = {}
        for path, key in ((run_dir / "steps" / "evaluate" / "metrics.json", "slices"),
                          (run_dir / "steps" / "gate" / "gate_report.json", "slice_table")):
            if path.is_file():
                with contextlib.suppress(OSError, ValueError):
                    for column, rows in (json.loads(path.read_text()).get(key) or {}).items():
                        tables.setdefault(column, []).extend(rows)
        out: dict[str, float] = {}
        mapping: dict[str, dict[str, Any]] = {}
        notes = []
        for column, rows in tables.items():
            levels = list(dict.fromkeys(str(r.get("slice")) for r in rows))
            if len(levels) > MAX_SLICE_LEVELS_LOGGED:
                notes.append(f"{column}: {len(levels)} levels, the {MAX_SLICE_LEVELS_LOGGED} largest logged as metrics")
            kept = set(levels[:MAX_SLICE_LEVELS_LOGGED])
            for r in rows:
                level = str(r.get("slice"))
                if level not in kept:
                    continue
                for metric, value in r.items():
                    if metric in ("slice", "count", "gated", "note") or not isinstance(value, int | float):
                        continue
                    key = slice_metric_key("test", column, level, metric)
                    while key in mapping and (mapping[key]["column"], mapping[key]["slice"]) != (column, level):
                        key += "_"  # two levels that read the same once sanitised
                    out[key] = float(value)
                    mapping[key] = {"column": column, "slice": level, "metric": metric, "count": r.get("count")}
        if mapping:
            (run_dir / "slice_metrics.json").write_text(json.dumps({"metrics": mapping, "notes": notes}, indent=1))
        return out

    def _log_artifacts(self, parent: str, run_dir: Path) -> None:
        if self.tracker is None:
            return
        for name in ("config.redacted.yaml", "steps.json", "slice_metrics.json", "validation_report.json",
                     "validation_report.md", "drift_report.json", "drift_report.md", "gate_report.json",
                     "gate_report.md"):
            path = run_dir / name
            if path.exists():
                self.tracker.log_artifact(parent, path)
        for step, sub in (("train", "train"), ("evaluate", "evaluation"), ("preprocess", "features"),
                          ("drift", "data"), ("register", "registry"), ("tune", "tuning")):
            folder = run_dir / "steps" / step
            if not folder.is_dir():
                continue
            for f in sorted(folder.iterdir()):
                if f.name.startswith("_") or f.suffix in (".npy", ".npz", ".parquet") or f.name == "registered_model":
                    continue
                self.tracker.log_artifact(parent, f, "model" if f.is_dir() and f.name == "model" else sub)


def _world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def distributed_rank() -> int:
    """This process's rank when started by ``torchrun`` (its ``RANK`` variable), else 0."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def _warnings_as_notes(ctx: StepContext, limit: int = 5) -> Iterator[None]:
    """Library warnings raised while a step runs (sklearn's UndefinedMetricWarning and ConvergenceWarning,
    matplotlib's missing glyphs, pandas' date parsing) become one note each, once, naming the step,
    instead of raw lines with library file paths and source excerpts."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        # libraries' deprecations of each other's APIs: nothing a pipeline author can act on (and hidden
        # by Python's own default filters too)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        try:
            yield
        finally:
            seen: dict[tuple[str, str], int] = {}
            for w in caught:
                text = scrub((str(w.message).strip().splitlines() or [""])[0][:300])
                key = (w.category.__name__, text)
                seen[key] = seen.get(key, 0) + 1
            for (category, text), n in list(seen.items())[:limit]:
                times = f" ({n} times)" if n > 1 else ""
                ctx.hooks.on_message(f"{ctx.step}: {category}: {text}{times}")
            if len(seen) > limit:
                ctx.hooks.on_message(f"{ctx.step}: {len(seen) - limit} more kinds of library warnings")


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
    source_dir = run_dir / "source_dir.txt"
    if source_dir.exists():
        base = Path(source_dir.read_text().strip())
        return LoadedConfig(loaded.config, loaded.path, base, None, loaded.raw, loaded.secret_values)
    return loaded


def state_dir(workdir: Path) -> Path:
    return workdir / STATE_DIR


__all__ = ["PipelineRunner", "load_run_config", "state_dir"]
