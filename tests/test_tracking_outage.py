"""A tracking server that dies or hangs mid-run (issue 18, findings 3 and 9).

- a hung server never holds a SIGTERM back: no network call runs while signals are held;
- a lost server is exit 2 naming the redacted URI and the run directory, and nothing is lost: the run's journal
  holds every record, and ``trainpipe runs sync ID`` uploads it (runs, metrics, artifacts, the registration)
  once the server is back, once;
- a full store never leaves a step run RUNNING; a full disk is exit 2 naming the path;
- a SIGKILLed run is marked KILLED (run.json and the tracking store) by the next command on the host.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests._servers import MlflowServer
from tests.conftest import make_frame, write_pipeline
from trainpipe._exceptions import StorageFull, TrackingUnavailable
from trainpipe._signals import SignalInterrupt, raise_interrupt
from trainpipe.config import load_config
from trainpipe.pipeline import PipelineRunner
from trainpipe.pipeline._step import Step, StepContext
from trainpipe.tracking import InMemoryTracker
from trainpipe.tracking._journal import JOURNAL, read_journal

PIPELINE = """\
name: {name}
data: {{source: data.csv, target: label}}
model: {{type: sklearn.linear_model.LogisticRegression}}
evaluation: {{latency: false, plots: false}}
{extra}"""


def _pipeline(workdir: Path, name: str, extra: str = "") -> Path:
    make_frame(300).to_csv(workdir / "data.csv", index=False)
    return write_pipeline(workdir, PIPELINE.format(name=name, extra=extra))


def _lost() -> Exception:
    """What MLflow raises once its retries against a dead server are spent."""
    try:
        raise ConnectionError("[Errno 111] Connection refused")
    except ConnectionError:
        try:
            raise RuntimeError("API request to http://127.0.0.1:9/api/2.0/mlflow/runs/log-batch failed with "
                               "exception HTTPConnectionPool: Max retries exceeded")
        except RuntimeError as exc:
            return exc


class DiesAfter(InMemoryTracker):
    """An in-memory store whose every call fails as an unreachable server would, once ``dead`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.dead = False

    def __getattribute__(self, name: str) -> Any:
        if name in {"start_run", "log_params", "log_metrics", "log_metric_history", "set_tags", "log_artifact",
                    "end_run"} and object.__getattribute__(self, "dead"):
            raise _lost()
        return object.__getattribute__(self, name)


class KillAfter:
    """Hooks: the server dies when ``step`` ends."""

    def __init__(self, tracker: DiesAfter, step: str) -> None:
        self.tracker, self.step = tracker, step

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None

    def on_step_end(self, step: str, status: str, reason: str, seconds: float) -> None:
        if step == self.step:
            self.tracker.dead = True


# -- fast: fakes ----------------------------------------------------------------------------------------


def test_a_hung_server_at_the_finish_does_not_hold_sigterm(workdir: Path) -> None:
    """Issue 18.3: the finish path's tracking calls ran inside a signal-deferred section; against a hung
    server a SIGTERM waited for them (and was then dropped)."""
    hanging = threading.Event()

    class Hangs(InMemoryTracker):
        def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
            if self.runs[run_id].parent_id is None and "trainpipe.status" in tags:  # the run's last records
                hanging.set()
                time.sleep(20)
            super().set_tags(run_id, tags)

    path = _pipeline(workdir, "hang")
    loaded = load_config(path)
    runner = PipelineRunner(loaded, workdir=workdir, tracker=Hangs())
    runner.steps = runner.steps[:1]

    def term() -> None:
        if hanging.wait(60):
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGTERM)

    old = signal.signal(signal.SIGTERM, raise_interrupt)
    threading.Thread(target=term, daemon=True).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(SignalInterrupt):
            runner.run()
    finally:
        signal.signal(signal.SIGTERM, old)
    assert time.monotonic() - t0 < 15
    (run_dir,) = (workdir / ".trainpipe" / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"  # written before the network
    ops, acks, _ = read_journal(run_dir)
    final = [op for op in ops if op["op"] == "end_run" and op["run"] == run_dir.name]
    assert final and final[0]["status"] == "FINISHED" and final[0]["seq"] not in acks  # kept for runs sync


def test_a_lost_server_is_tracking_unavailable_naming_the_run_directory(workdir: Path) -> None:
    path = _pipeline(workdir, "lost")
    tracker = DiesAfter()
    runner = PipelineRunner(load_config(path), workdir=workdir, tracker=tracker)
    runner.hooks = KillAfter(tracker, "train")  # type: ignore[assignment]
    with pytest.raises(TrackingUnavailable, match=r"tracking server unreachable at memory://: the run's results "
                                                  r"are in \.trainpipe/runs/run1\b.*trainpipe runs sync run1"):
        runner.run()
    run_dir = workdir / ".trainpipe" / "runs" / "run1"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished" and "test_accuracy" in record["metrics"]  # the run went on locally
    assert (run_dir / "steps" / "evaluate" / "metrics.json").exists()
    ops, acks, _ = read_journal(run_dir)
    unsent = [op for op in ops if op["seq"] not in acks]
    # the evaluate step's run, the pipeline run's metrics and its end: all waiting in the journal
    assert any(op["op"] == "start_run" and op["name"] == "evaluate" and op["run"].startswith("offline-")
               for op in unsent)
    assert any(op["op"] == "log_metrics" and "test_accuracy" in op["metrics"] and op["run"] == "run1"
               for op in unsent)
    assert any(op["op"] == "end_run" and op["run"] == "run1" and op["status"] == "FINISHED" for op in unsent)
    assert tracker.runs["run1"].status == "RUNNING"  # nothing reached the dead store after the outage


def test_a_full_store_leaves_no_step_run_running(workdir: Path) -> None:
    """Issue 18.9: a store that refuses a step's records left that step's run RUNNING."""
    import sqlite3

    class Full(InMemoryTracker):
        def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
            raise sqlite3.OperationalError("database or disk is full")

    path = _pipeline(workdir, "full")
    tracker = Full()
    runner = PipelineRunner(load_config(path), workdir=workdir, tracker=tracker)
    runner.steps = runner.steps[:1]
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        runner.run()
    assert len(tracker.runs) == 2
    assert all(r.status != "RUNNING" for r in tracker.runs.values()), {r.name: r.status for r in
                                                                       tracker.runs.values()}


def test_disk_full_while_a_step_writes_is_exit_2_naming_the_path(workdir: Path) -> None:
    def writes(ctx: StepContext) -> None:
        target = ctx.out_dir / "big.bin"
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    path = _pipeline(workdir, "disk")
    runner = PipelineRunner(load_config(path), workdir=workdir, tracker=None, steps=[Step("ingest", writes)])
    with pytest.raises(StorageFull, match=r"no space left on the device writing .*big\.bin\. Free space there"):
        runner.run()
    assert StorageFull.exit_code == 2
    (run_dir,) = (workdir / ".trainpipe" / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


def test_a_dead_process_run_is_marked_killed_and_a_recycled_pid_is_not_taken_for_it(workdir: Path) -> None:
    from trainpipe.pipeline._records import PipelineResult
    from trainpipe.tracking._stale import mark_killed_runs, process_start

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    runs = workdir / ".trainpipe" / "runs"
    owners = {"dead": {"pid": gone.pid, "process_start": ""},
              "recycled": {"pid": os.getpid(), "process_start": "1"},  # our pid, another start time
              "alive": {"pid": os.getpid(), "process_start": process_start(os.getpid())},
              "elsewhere": {"pid": gone.pid, "process_start": "", "host": "another-host"}}
    for name, owner in owners.items():
        (runs / name).mkdir(parents=True)
        PipelineResult(name, runs / name, "p", "running", []).write(runs / name / "run.json")
        (runs / name / "owner.json").write_text(json.dumps({"host": socket.gethostname(), **owner}))
    assert sorted(mark_killed_runs(workdir / ".trainpipe")) == ["dead", "recycled"]
    status = {n: json.loads((runs / n / "run.json").read_text())["status"] for n in owners}
    assert status == {"dead": "killed", "recycled": "killed", "alive": "running", "elsewhere": "running"}


# -- slow: a real MLflow server and the CLI -------------------------------------------------------------


# `trainpipe run`, with the server's process group sent SIG (kill or stop) when step STEP ends
RUN_WITH_OUTAGE = """
import os, signal, sys
from trainpipe import _cli_render
original = _cli_render.RichHooks.on_step_end
def on_step_end(self, step, status, reason, seconds):
    original(self, step, status, reason, seconds)
    if step == os.environ["OUTAGE_AFTER"]:
        os.killpg(int(os.environ["OUTAGE_PGID"]), getattr(signal, os.environ["OUTAGE_SIGNAL"]))
        print("OUTAGE", flush=True)
_cli_render.RichHooks.on_step_end = on_step_end
from trainpipe.cli import main
sys.argv = ["trainpipe", "run", sys.argv[1]]
main()
"""


def _run_with_outage(workdir: Path, path: Path, srv: MlflowServer, after: str, sig: str) -> subprocess.Popen[str]:
    assert srv.proc is not None
    env = {**os.environ, "OUTAGE_AFTER": after, "OUTAGE_PGID": str(srv.proc.pid), "OUTAGE_SIGNAL": sig,
           "COLUMNS": "250"}
    return subprocess.Popen([sys.executable, "-c", RUN_WITH_OUTAGE, str(path)], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cli(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=workdir, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "250"})


@pytest.mark.slow
@pytest.mark.server
def test_server_killed_mid_run_exit_2_then_runs_sync_uploads_and_registers(
        workdir: Path, mlflow_server: MlflowServer) -> None:
    path = _pipeline(workdir, "outage", extra=f'tracking: {{uri: "{mlflow_server.url}"}}\n')
    proc = _run_with_outage(workdir, path, mlflow_server, "gate", "SIGKILL")
    t0 = time.monotonic()
    stdout, stderr = proc.communicate(timeout=300)
    after_outage = time.monotonic() - t0
    assert proc.returncode == 2, stderr
    assert "OUTAGE" in stdout
    (run_dir,) = (workdir / ".trainpipe" / "runs").iterdir()
    run_id = run_dir.name
    assert f"tracking server unreachable at {mlflow_server.url}: the run's results are in .trainpipe/runs/{run_id}" \
        in " ".join(stderr.split()), stderr
    assert f"trainpipe runs sync {run_id}" in " ".join(stderr.split())
    assert "Traceback" not in stderr and after_outage < 240
    registration = json.loads((run_dir / "steps" / "register" / "registration.json").read_text())
    assert registration["pending"] is True and registration["registered"] is False

    mlflow_server.stop()  # the dead server comes back on the same store
    mlflow_server.start()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    assert client.get_run(run_id).info.status == "RUNNING"  # what the outage left behind
    synced = _cli(workdir, "runs", "sync", run_id)
    assert synced.returncode == 0, synced.stderr
    assert "registered outage version 1" in synced.stdout
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] > 0.5 and "total_seconds" in run.data.metrics
    assert run.data.tags["trainpipe.status"] == "finished"
    assert {a.path for a in client.list_artifacts(run_id)} >= {"steps.json", "evaluation"}
    (model_id,) = [o.model_id for o in run.outputs.model_outputs]  # the registered pyfunc: a logged model
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    assert {c.data.tags["trainpipe.step"] for c in children} >= {"train", "evaluate", "gate", "register"}
    assert all(c.info.status == "FINISHED" for c in children), {c.info.run_name: c.info.status for c in children}
    (version,) = client.search_model_versions("name = 'outage'")
    assert version.run_id == run_id and version.source == f"models:/{model_id}"
    assert client.get_model_version_by_alias("outage", "staging").version == version.version
    assert json.loads((run_dir / "sync.json").read_text())["synced"] is True

    again = _cli(workdir, "runs", "sync", run_id)  # idempotent: nothing left, nothing registered twice
    assert again.returncode == 0 and "already in sync" in again.stdout, again.stderr
    assert len(client.search_model_versions("name = 'outage'")) == 1
    ops, acks, _ = read_journal(run_dir)
    assert all(op["seq"] in acks for op in ops)
    assert (run_dir / JOURNAL).exists()


@pytest.mark.slow
@pytest.mark.server
def test_sigterm_during_a_hung_server_ends_the_run_promptly_with_143(
        workdir: Path, mlflow_server: MlflowServer) -> None:
    path = _pipeline(workdir, "hung", extra=f'tracking: {{uri: "{mlflow_server.url}"}}\n')
    proc = _run_with_outage(workdir, path, mlflow_server, "train", "SIGSTOP")  # the server stops answering
    assert proc.stdout is not None
    deadline = time.monotonic() + 240
    while "OUTAGE" not in proc.stdout.readline():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
    time.sleep(2)  # the evaluate step is now waiting on the silent server
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert time.monotonic() - t0 < 20, "SIGTERM waited for the tracking server"
    (run_dir,) = (workdir / ".trainpipe" / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    ops, acks, _ = read_journal(run_dir)
    assert any(op["op"] == "end_run" and op["run"] == run_dir.name and op["seq"] not in acks for op in ops)


@pytest.mark.slow
def test_a_sigkilled_run_shows_killed_in_runs_list(workdir: Path) -> None:
    path = _pipeline(workdir, "sigkill")
    proc = subprocess.Popen([sys.executable, "-m", "trainpipe.cli", "run", str(path)], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    runs = workdir / ".trainpipe" / "runs"
    deadline = time.monotonic() + 180
    while not any((p / "steps" / "ingest").exists() for p in runs.glob("*")) if runs.exists() else True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    (run_dir,) = runs.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    listing = _cli(workdir, "runs", "list")
    assert listing.returncode == 0, listing.stderr
    line = next(ln for ln in listing.stdout.splitlines() if run_dir.name in ln)
    assert "KILLED" in line, listing.stdout
    assert json.loads((run_dir / "run.json").read_text())["status"] == "killed"
