"""A tracking store that is a database (``tracking.uri: postgresql://...``, MLflow's SQLAlchemy store) and is down.

- at start: exit 2 at once (not after MLflow's ~100 s of engine retries), naming the URI with its password
  redacted and what to do; no traceback;
- mid-run (the real PostgreSQL server stopped between steps): the same path as a dead ``mlflow server``: the run
  goes on offline, ends with exit 2 naming the run directory, and ``trainpipe runs sync`` uploads everything
  and registers the model once the database is back. The password never appears in any output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import PostgresCluster, free_port
from tests.conftest import make_frame, write_pipeline
from trainpipe.tracking._journal import is_unreachable

PASSWORD = "pgs3cret-xyz"
PIPELINE = """\
name: {name}
data: {{source: data.csv, target: label}}
model: {{type: sklearn.linear_model.LogisticRegression}}
evaluation: {{latency: false, plots: false}}
tracking: {{uri: "{uri}"}}
"""


def _cli(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=workdir, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "250"})


def _pipeline(workdir: Path, name: str, uri: str) -> Path:
    make_frame(300).to_csv(workdir / "data.csv", index=False)
    return write_pipeline(workdir, PIPELINE.format(name=name, uri=uri))


def test_driver_errors_of_a_lost_database_count_as_unreachable_and_others_do_not() -> None:
    import sqlite3

    import psycopg
    import sqlalchemy.exc

    try:
        psycopg.connect(f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/x", connect_timeout=5)
    except psycopg.OperationalError as exc:
        refused: BaseException = exc
    else:
        raise AssertionError("a connection to a closed port succeeded")
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, refused)  # what SQLAlchemy raises around it
    assert is_unreachable(refused) and is_unreachable(wrapped)
    closed = psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")
    assert is_unreachable(closed)
    assert not is_unreachable(sqlite3.OperationalError("database is locked"))
    assert not is_unreachable(psycopg.OperationalError('relation "runs" does not exist'))


def test_a_database_that_does_not_answer_at_start_is_exit_2_naming_the_redacted_uri(workdir: Path) -> None:
    uri = f"postgresql+psycopg://ml:{PASSWORD}@127.0.0.1:{free_port()}/mlflow"
    path = _pipeline(workdir, "down", uri)
    t0 = time.monotonic()
    done = _cli(workdir, "run", str(path))
    seconds = time.monotonic() - t0
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, out
    assert "tracking.uri: the MLflow tracking database postgresql+psycopg://ml:***@127.0.0.1:" in out
    assert "does not answer" in out and "Connection refused" in out and "Start the database" in out
    assert PASSWORD not in done.stdout + done.stderr
    assert "Traceback" not in out and "retried" not in out  # no MLflow retry warnings
    assert not (workdir / ".trainpipe" / "runs").exists() or not any((workdir / ".trainpipe" / "runs").iterdir())
    print(f"exit 2 after {seconds:.1f} s")


def test_the_tracker_refuses_a_database_that_does_not_answer_with_a_config_error() -> None:
    from trainpipe import ConfigError
    from trainpipe.tracking import MlflowTracker

    port = free_port()
    expected = (rf"^tracking.uri: the MLflow tracking database postgresql://ml:\*\*\*@127.0.0.1:{port}/mlflow "
                r"does not answer \(connection failed: .*Connection refused.*\)\. Start the database")
    with pytest.raises(ConfigError, match=expected) as info:
        MlflowTracker(f"postgresql://ml:{PASSWORD}@127.0.0.1:{port}/mlflow", "exp")
    assert PASSWORD not in str(info.value)


# -- slow: a real PostgreSQL server stopped mid-run -----------------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    pg = PostgresCluster()  # its own cluster: stopping it touches no other test
    try:
        pg.start()
        pg.createdb("mlflow")
        yield pg
    finally:
        pg.remove()


# `trainpipe run`, with the PostgreSQL cluster stopped when step OUTAGE_AFTER ends
RUN_WITH_OUTAGE = """
import json, os, subprocess, sys
from trainpipe import _cli_render
original = _cli_render.RichHooks.on_step_end
def on_step_end(self, step, status, reason, seconds):
    original(self, step, status, reason, seconds)
    if step == os.environ["OUTAGE_AFTER"]:
        subprocess.run(json.loads(os.environ["OUTAGE_STOP"]), check=True, capture_output=True)
        print("OUTAGE", flush=True)
_cli_render.RichHooks.on_step_end = on_step_end
from trainpipe.cli import main
sys.argv = ["trainpipe", "run", sys.argv[1]]
main()
"""


@pytest.mark.slow
def test_database_stopped_mid_run_exit_2_then_runs_sync_uploads_and_registers(
        workdir: Path, cluster: PostgresCluster) -> None:
    from tests._servers import _as_postgres
    from trainpipe import ConfigError
    from trainpipe.tracking import MlflowTracker

    missing = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{cluster.port}/nosuchdb"
    with pytest.raises(ConfigError, match=r"tracking.uri: cannot connect to the MLflow tracking database "
                                          r"postgresql\+psycopg://postgres:\*\*\*@.*/nosuchdb \(.*database "
                                          r"\"nosuchdb\" does not exist.*\)\. Check the user, password and "
                                          r"database name") as info:
        MlflowTracker(missing, "exp")  # refused at once, not after MLflow's ~100 s of retries
    assert PASSWORD not in str(info.value)

    uri = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{cluster.port}/mlflow"
    path = _pipeline(workdir, "pgoutage", uri)
    stop = _as_postgres([str(cluster.bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "fast", "-w", "stop"])
    env = {**os.environ, "OUTAGE_AFTER": "gate", "OUTAGE_STOP": json.dumps(stop), "COLUMNS": "250"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", RUN_WITH_OUTAGE, str(path)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - t0
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, out
    assert "OUTAGE" in proc.stdout
    (run_dir,) = (workdir / ".trainpipe" / "runs").iterdir()
    run_id = run_dir.name
    shown = f"postgresql+psycopg://postgres:***@127.0.0.1:{cluster.port}/mlflow"
    assert f"tracking server unreachable at {shown}: the run's results are in .trainpipe/runs/{run_id}" in out, out
    assert f"trainpipe runs sync {run_id}" in out
    assert "Traceback" not in out and PASSWORD not in proc.stdout + proc.stderr
    assert PASSWORD not in (run_dir / "tracking_journal.jsonl").read_text()
    registration = json.loads((run_dir / "steps" / "register" / "registration.json").read_text())
    assert registration["pending"] is True and registration["registered"] is False

    cluster.start()  # the database comes back
    synced = _cli(workdir, "runs", "sync", run_id)
    assert synced.returncode == 0, synced.stderr
    assert "registered pgoutage version 1" in synced.stdout
    assert PASSWORD not in synced.stdout + synced.stderr
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] > 0.5 and run.data.tags["trainpipe.status"] == "finished"
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    assert {c.data.tags["trainpipe.step"] for c in children} >= {"train", "evaluate", "gate", "register"}
    assert all(c.info.status == "FINISHED" for c in children)
    (version,) = client.search_model_versions("name = 'pgoutage'")
    assert version.run_id == run_id
    print(f"outage run exit 2 after {seconds:.1f} s")
