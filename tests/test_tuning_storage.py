"""Real shared Optuna storages: SQLite resume, a journal file and PostgreSQL with several worker processes,
SIGKILL of a worker mid-trial, and ``trainpipe run``/``trainpipe tune`` end to end against MLflow.

PostgreSQL comes from Debian's package (``.ci/run`` installs it): a throw-away cluster is created with
``initdb`` in a temporary folder and served on 127.0.0.1. If it cannot be found or started, the tests fail
with the reason; they are never skipped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._servers import PostgresCluster
from tests.conftest import make_frame, write_pipeline

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


# -- a worker process: the library's study loop with a toy objective that logs what it runs -----------------


def worker_main(storage: str, study: str, n_trials: int, log: str, trial_seconds: float) -> None:
    from trainpipe.config._loader import validate_config
    from trainpipe.tuning import StudySettings, parse_storage, run_study

    space = validate_config({"name": "w", "data": {"source": "x", "target": "y"}, "model": {"type": "xgboost"},
                             "tuning": {"space": {"x": {"type": "float", "low": -3, "high": 3},
                                                  "k": {"type": "categorical", "choices": ["a", "b"]}}}},
                            source="worker").tuning.space  # type: ignore[union-attr]
    settings = StudySettings(study_name=study, storage=parse_storage(storage), metric="r2", direction="maximize",
                             n_trials=n_trials, seed=5)

    def objective(trial: Any, params: dict[str, Any], counter: Any) -> float:
        with open(log, "a") as fh:
            fh.write(json.dumps({"event": "start", "number": trial.number, "params": params,
                                 "pid": os.getpid()}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        time.sleep(trial_seconds)
        value = -(params["x"] - 1.0) ** 2 + (0.5 if params["k"] == "b" else 0.0)
        with open(log, "a") as fh:
            fh.write(json.dumps({"event": "end", "number": trial.number, "pid": os.getpid()}) + "\n")
        return value

    run_study(settings, space, objective)


def start_worker(storage: str, study: str, n_trials: int, log: Path, trial_seconds: float = 0.3,
                 heartbeat: int = 1, grace: int = 3) -> subprocess.Popen[str]:
    code = ("import sys; from tests.test_tuning_storage import worker_main; "
            "worker_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))")
    env = {**os.environ, "TRAINPIPE_TUNING_HEARTBEAT": str(heartbeat), "TRAINPIPE_TUNING_GRACE": str(grace),
           "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, storage, study, str(n_trials), str(log), str(trial_seconds)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def wait_all(procs: list[subprocess.Popen[str]], timeout: float = 240) -> None:
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, out[-3000:]


def load(storage: str, study: str) -> Any:
    import optuna

    from trainpipe.tuning import open_storage, parse_storage

    return optuna.load_study(study_name=study, storage=open_storage(parse_storage(storage)))


def check_exact(study: Any, n: int, log: Path) -> dict[str, Any]:
    """n slots finished, every trial number run by one process only, no params set run twice."""
    from trainpipe.tuning import summarize

    summary = summarize(study)
    assert summary["n_trials"] == n, summary
    assert summary["n_waiting"] == 0 and summary["n_running"] == 0, summary
    started = [e for e in events(log) if e["event"] == "start"]
    numbers = [e["number"] for e in started]
    assert len(numbers) == len(set(numbers)), "a trial was run by two workers"
    finished = [t for t in study.trials if t.state.is_finished()]
    assert sorted(numbers) == sorted(t.number for t in finished if "error" not in t.user_attrs
                                     or not t.user_attrs["error"].startswith("worker"))
    retried_params = {json.dumps(t.params, sort_keys=True) for t in study.trials if t.system_attrs.get("retry_history")}
    params = [json.dumps(t.params, sort_keys=True) for t in finished if t.state.name == "COMPLETE"]
    duplicates = {p for p in params if params.count(p) > 1} - retried_params
    assert not duplicates, duplicates
    return summary


# -- PostgreSQL fixture -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL cluster (Debian's package, tests/_servers.py) with an ``optuna`` database."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        cluster.createdb("optuna")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/optuna"
    finally:
        cluster.remove()


# -- PostgreSQL: many workers on one study -------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 4])
def test_postgres_workers_share_one_study_exactly(postgres_url: str, tmp_path: Path, workers: int) -> None:
    n, log, study = 12, tmp_path / "events.jsonl", f"shared-{workers}"
    procs = [start_worker(postgres_url, study, n, log, trial_seconds=0.2) for _ in range(workers)]
    wait_all(procs)
    summary = check_exact(load(postgres_url, study), n, log)
    assert summary["n_complete"] == n
    assert len({e["pid"] for e in events(log)}) >= 2  # the work really was shared


def test_postgres_sigkill_mid_trial_is_failed_and_retried(postgres_url: str, tmp_path: Path) -> None:
    n, log, study = 8, tmp_path / "events.jsonl", "killed"
    victim = start_worker(postgres_url, study, n, log, trial_seconds=3.0)
    deadline = time.monotonic() + 120
    while not any(e["event"] == "start" for e in events(log)):
        assert time.monotonic() < deadline, "the worker never started a trial"
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        time.sleep(0.1)
    killed = next(e for e in events(log) if e["event"] == "start")
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    survivor = start_worker(postgres_url, study, n, log, trial_seconds=0.1)
    wait_all([survivor])
    st = load(postgres_url, study)
    dead = st.trials[killed["number"]]
    assert dead.state.name == "FAIL"
    retries = [t for t in st.trials if t.system_attrs.get("retry_history") == [killed["number"]]]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == dead.params == killed["params"]
    from trainpipe.tuning import summarize

    summary = summarize(st)
    assert summary["n_trials"] == n and summary["n_retried"] == 1 and summary["n_running"] == 0


def test_two_trainpipe_tune_processes_on_one_postgres_study(postgres_url: str, tmp_path: Path) -> None:
    n = 8
    text = (f"name: pg\ndata: {{source: d.csv, target: label}}\n"
            "model: {type: lightgbm, params: {n_estimators: 30}}\n"
            f"tuning: {{n_trials: {n}, storage: '{postgres_url}', space: "
            "{num_leaves: {type: int, low: 4, high: 32}, "
            "learning_rate: {type: float, low: 0.02, high: 0.3, log: true}}}\n")
    procs = []
    for i in range(2):
        wd = tmp_path / f"machine{i}"
        wd.mkdir()
        make_frame(300).to_csv(wd / "d.csv", index=False)
        write_pipeline(wd, text)
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
        procs.append(subprocess.Popen([sys.executable, "-m", "trainpipe.cli", "tune", "pipeline.yaml", "--study",
                                       "cli-shared"], cwd=wd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
        outs.append(out)
    st = load(postgres_url, "cli-shared")
    finished = [t for t in st.trials if t.state.is_finished()]
    assert len(finished) == n and len({t.number for t in finished}) == n
    ran = [json.loads((next((tmp_path / f"machine{i}" / ".trainpipe" / "runs").iterdir()) / "steps" / "tune" /
                       "study_summary.json").read_text())["trials_run_by_this_worker"] for i in range(2)]
    assert sorted(ran[0] + ran[1]) == list(range(n))  # every trial run once, by one of the two
    assert all("n_trials: 8" in " ".join(o.split()) for o in outs)


# -- SQLite: resume an interrupted study ----------------------------------------------------------------


def test_sqlite_resume_after_sigkill(tmp_path: Path) -> None:
    url, n, log = f"sqlite:///{tmp_path}/study.db", 6, tmp_path / "events.jsonl"
    victim = start_worker(url, "resume", n, log, trial_seconds=1.0)
    deadline = time.monotonic() + 120
    while sum(e["event"] == "start" for e in events(log)) < 3:
        assert time.monotonic() < deadline and victim.poll() is None, "worker did not get to its third trial"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    before = load(url, "resume")
    assert sum(t.state.name == "COMPLETE" for t in before.trials) == 2
    assert sum(t.state.name == "RUNNING" for t in before.trials) == 1
    resumed = start_worker(url, "resume", n, log, trial_seconds=0.05)
    wait_all([resumed])
    st = load(url, "resume")
    from trainpipe.tuning import summarize

    summary = summarize(st)
    assert summary["n_trials"] == n and summary["n_complete"] == n and summary["n_retried"] == 1
    # the first two trials were not run again
    assert [e["number"] for e in events(log) if e["event"] == "start"].count(0) == 1


def test_sqlite_workers_never_run_one_trial_twice(tmp_path: Path) -> None:
    # Optuna's WAITING -> RUNNING claim reads then writes; on SQLite nothing holds the row in between, so
    # without trainpipe's claim lock two workers polling at once could both take the same trial.
    url, n, log = f"sqlite:///{tmp_path}/study.db", 24, tmp_path / "events.jsonl"
    procs = [start_worker(url, "sqlite-race", n, log, trial_seconds=0.0) for _ in range(3)]
    wait_all(procs)
    summary = check_exact(load(url, "sqlite-race"), n, log)
    assert summary["n_complete"] == n
    assert len({e["pid"] for e in events(log)}) >= 2, "only one worker took trials: nothing was shared"


# -- journal file: several processes on one machine -----------------------------------------------------------


def test_journal_two_processes_and_a_dead_worker(tmp_path: Path) -> None:
    url, n, log = f"journal://{tmp_path}/study.log", 10, tmp_path / "events.jsonl"
    procs = [start_worker(url, "journal", n, log, trial_seconds=0.2) for _ in range(2)]
    wait_all(procs)
    check_exact(load(url, "journal"), n, log)

    # a worker killed mid-trial: the next worker on this host sees its process is gone and retries the trial
    log2 = tmp_path / "events2.jsonl"
    victim = start_worker(url, "journal-kill", 4, log2, trial_seconds=3.0)
    deadline = time.monotonic() + 120
    while not any(e["event"] == "start" for e in events(log2)):
        assert time.monotonic() < deadline and victim.poll() is None
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    wait_all([start_worker(url, "journal-kill", 4, log2, trial_seconds=0.05)])
    from trainpipe.tuning import summarize

    summary = summarize(load(url, "journal-kill"))
    assert summary["n_trials"] == 4 and summary["n_retried"] == 1 and summary["n_complete"] == 4


# -- end to end: trainpipe run with a tuning section, real MLflow store -----------------------------------------


def test_trainpipe_run_tracks_the_study_and_trains_with_the_best_params(workdir: Path) -> None:
    from mlflow.tracking import MlflowClient

    make_frame(400).to_csv(workdir / "d.csv", index=False)
    write_pipeline(workdir, """\
name: tuned
data: {source: d.csv, target: label}
model: {type: xgboost, params: {n_estimators: 40}}
tuning:
  n_trials: 6
  metric: roc_auc
  space:
    max_depth: {type: int, low: 2, high: 6}
    learning_rate: {type: float, low: 0.02, high: 0.3, log: true}
""")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = subprocess.run([sys.executable, "-m", "trainpipe.cli", "run", "pipeline.yaml"], cwd=workdir, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/.trainpipe/mlflow.db")
    exp = client.get_experiment_by_name("tuned")
    runs = client.search_runs([exp.experiment_id], max_results=200)
    by_id = {r.info.run_id: r for r in runs}
    study_runs = [r for r in runs if r.data.tags.get("optuna.role") == "study"]
    assert len(study_runs) == 1
    study_run = study_runs[0]
    assert study_run.data.tags["trainpipe.step"] == "tune"
    assert by_id[study_run.data.tags["mlflow.parentRunId"]].data.tags["trainpipe.kind"] == "pipeline"
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == study_run.info.run_id]
    assert len(trials) == 6
    assert {r.data.tags["optuna.state"] for r in trials} <= {"complete", "pruned", "fail"}
    artifacts = {a.path for a in client.list_artifacts(study_run.info.run_id, "tuning")}
    assert {"tuning/optimization_history.png", "tuning/trials.csv", "tuning/study_summary.json"} <= artifacts
    run_dir = next((workdir / ".trainpipe" / "runs").iterdir())
    best = json.loads((run_dir / "steps" / "tune" / "best_params.json").read_text())
    trained = json.loads((run_dir / "steps" / "train" / "train.json").read_text())["params"]
    if best["final_fit"]["mode"] == "untuned_defaults":  # the defaults were kept: the config's own model section
        assert best["best_trial"] == 0 and trained["n_estimators"] == 40 and "eval_metric" not in trained
    else:
        for key, value in best["model_params"].items():
            assert trained[key] == value
    assert study_run.data.metrics["best_value"] == pytest.approx(best["best_value"])
