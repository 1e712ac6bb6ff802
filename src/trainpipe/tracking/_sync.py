"""``trainpipe runs sync RUN_ID``: upload what a run could not send while its tracking server was away.

It replays the run's journal (``tracking_journal.jsonl``) in order, every call without an ``ack``: runs started
offline are created (their ids mapped), params, metrics, tags, artifacts and statuses are sent, and a
registration the gate allowed is made by the register step itself, from the run directory's step outputs, with
the same checks as in the run (a production alias that moved since the gate is refused). Each call sent is
acknowledged in the journal, so a second sync has nothing to do, and an interrupted one goes on where it stopped.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError, TrackingUnavailable

SYNC_FILE = "sync.json"


@dataclass
class SyncReport:
    run_id: str
    run_dir: Path
    uri: str
    sent: int = 0
    created: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    registered: str = ""
    nothing_to_do: bool = False

    def lines(self) -> list[str]:
        if self.nothing_to_do:
            return [f"run {self.run_id} is already in sync with {self.uri}: nothing to send."]
        created = f", {len(self.created)} runs created" if self.created else ""
        out = [f"run {self.run_id}: {self.sent} journaled records sent to {self.uri}{created}; marked synced"]
        out += [f"mlflow run {new} (recorded offline as {old})" for old, new in self.created.items()]
        if self.registered:
            out.append(self.registered)
        out += [f"skipped: {s}" for s in self.skipped]
        return out


def find_run_dir(state_dir: Path, ref: str) -> Path:
    runs = state_dir / "runs"
    exact = runs / ref
    if ref and "/" not in ref and (exact / "run.json").is_file():
        return exact
    found = [p for p in sorted(runs.glob(f"{ref}*")) if (p / "run.json").is_file()] if ref and "/" not in ref else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ConfigError(f"runs sync: {ref!r} is the start of {len(found)} runs in {runs} "
                          f"({', '.join(p.name for p in found[:5])}); give more of it.")
    raise ConfigError(f"runs sync: no run {ref!r} in {runs}. Run it from the directory the run was started in "
                      "(the run id is the folder name under .trainpipe/runs/).")


def sync_run(ref: str, workdir: Path, tracking_uri: str | None = None, hooks: Any = None) -> SyncReport:
    from trainpipe._hooks import Hooks
    from trainpipe.pipeline._records import PipelineResult
    from trainpipe.pipeline._runner import STATE_DIR, load_run_config
    from trainpipe.tracking._journal import append, is_unreachable, read_journal, send, unreachable_message
    from trainpipe.tracking._mlflow import MlflowTracker, resolve_tracking_uri

    state_dir = workdir / STATE_DIR
    run_dir = find_run_dir(state_dir, ref)
    result = PipelineResult.read(run_dir / "run.json")
    ops, acks, ids = read_journal(run_dir)
    if not ops:
        raise ConfigError(f"runs sync: run {result.run_id} has no tracking journal in {run_dir}: it ran without a "
                          "tracking store (or with a trainpipe older than the journal). Nothing to sync.")
    if result.status == "running":
        from trainpipe.tracking._stale import dead_here

        if not dead_here(run_dir):
            raise ConfigError(f"runs sync: run {result.run_id} is still running (or runs on another host); sync "
                              "it after it ends.")
    todo = [op for op in ops if int(op["seq"]) not in acks]
    loaded = load_run_config(run_dir)
    cfg = loaded.config
    uri = tracking_uri or resolve_tracking_uri(cfg.tracking.uri, workdir)
    tracker = MlflowTracker(uri, cfg.tracking.experiment or cfg.name, state_dir / "mlartifacts")
    report = SyncReport(result.run_id, run_dir, tracker.uri)
    if not todo:
        report.nothing_to_do = True
        _mark_synced(run_dir, tracker.uri)
        return report
    for op in todo:
        try:
            if op["op"] == "start_run":
                parent = op.get("parent")
                new = tracker.start_run(op["name"], parent_id=ids.get(parent, parent) if parent else None,
                                        tags={**op.get("tags", {}), "trainpipe.synced_from": str(op["run"])})
                ids[str(op["run"])] = new
                append(run_dir, [{"map": op["run"], "to": new}])
                report.created[str(op["run"])] = new
            elif op["op"] == "intent":
                if op.get("kind") == "register":
                    report.registered = _register(run_dir, loaded, tracker, ids, op, state_dir, hooks or Hooks())
            elif op["op"] == "log_artifact" and not _inside(Path(op["path"]), state_dir):
                # the journal is a file in a folder that may have been copied or shared: it must not be able to
                # name ~/.aws/credentials and have sync upload it
                report.skipped.append(f"artifact {op['path']} (outside {state_dir}: not uploaded)")
            elif op["op"] == "log_artifact" and not Path(op["path"]).exists():
                report.skipped.append(f"artifact {op['path']} (no longer on disk)")
            else:
                send(tracker, op, ids.get(str(op["run"]), str(op["run"])))
        except Exception as exc:
            if is_unreachable(exc):
                raise TrackingUnavailable(unreachable_message(tracker.uri, run_dir, result.run_id)
                                          .replace("upload them with", "try again with")) from exc
            raise
        append(run_dir, [{"ack": op["seq"]}])
        report.sent += 1
    _mark_synced(run_dir, tracker.uri)
    return report


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _register(run_dir: Path, loaded: Any, tracker: Any, ids: dict[str, str], op: dict[str, Any],
              state_dir: Path, hooks: Any) -> str:
    """Run the register step on the run directory's step outputs, against the server that is back."""
    from trainpipe.pipeline._step import StepContext
    from trainpipe.pipeline._steps_registry import REGISTER_STEP, _register_now

    parent = ids.get(str(op.get("parent")), str(op.get("parent")))
    inputs = {name: run_dir / "steps" / name for name in REGISTER_STEP.upstream}
    missing = [n for n, p in inputs.items() if not p.is_dir()]
    if missing:
        return f"not registered: the run directory lacks the outputs of {', '.join(missing)}"
    target = run_dir / "steps" / "register"
    with tempfile.TemporaryDirectory(prefix="trainpipe-sync-") as tmp:
        ctx = StepContext("register", loaded, inputs, Path(tmp), run_dir, hooks, tracker=tracker,
                          run_id=None, parent_run_id=parent, state_dir=state_dir, declared=REGISTER_STEP.inputs)
        _register_now(ctx)
        target.mkdir(parents=True, exist_ok=True)
        for item in Path(tmp).iterdir():  # the step's files are hard links into the cache: replace, not rewrite
            dest = target / item.name
            if dest.is_dir():
                shutil.rmtree(dest)
            else:
                dest.unlink(missing_ok=True)
            if item.is_dir():
                shutil.copytree(item, dest)
            else:
                shutil.copyfile(item, dest)
    child = op.get("child")
    if child and ctx.params:
        tracker.log_params(ids.get(str(child), str(child)), ctx.params)
    info = json.loads((target / "registration.json").read_text())
    alias = f" as @{info['alias']}" if info.get("alias") else ""
    return f"registered {info.get('model_name')} version {info.get('version')}{alias}"


def _mark_synced(run_dir: Path, uri: str) -> None:
    tmp = run_dir / f".{SYNC_FILE}.tmp"
    tmp.write_text(json.dumps({"synced": True, "at": time.time(), "tracking_uri": uri}))
    tmp.replace(run_dir / SYNC_FILE)


def is_synced(run_dir: Path) -> bool:
    try:
        return bool(json.loads((run_dir / SYNC_FILE).read_text()).get("synced"))
    except (OSError, ValueError):
        return False


__all__ = ["SYNC_FILE", "SyncReport", "find_run_dir", "is_synced", "sync_run"]
