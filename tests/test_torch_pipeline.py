"""torch_mlp through `trainpipe run`: SIGTERM then `--resume` gives the uninterrupted weights bit for bit,
and `torchrun --nproc_per_node=2 -m trainpipe.cli run` trains with DDP while only rank 0 tracks and registers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_frame, write_pipeline

pytestmark = pytest.mark.slow

TORCH = """\
name: mlp
data: {{source: data.csv, target: label}}
model: {{type: torch_mlp, params: {{hidden_dims: [32, 16], dropout: 0.1}}}}
training: {{epochs: {epochs}, batch_size: 64, learning_rate: 0.003, checkpoint_every: 40, seed: 3,
           early_stopping_patience: 100}}
evaluation: {{latency: false}}
"""


def _setup(directory: Path, epochs: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    make_frame(n=6000, seed=1).to_csv(directory / "data.csv", index=False)
    return write_pipeline(directory, TORCH.format(epochs=epochs))


def _cli(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "250"})


def _weights(workdir: Path) -> dict[str, object]:
    import torch

    runs = [p for p in (workdir / ".trainpipe" / "runs").iterdir() if (p / "steps" / "train").exists()]
    finished = [p for p in runs if (p / "steps" / "evaluate").exists()]
    (run_dir,) = finished
    state = torch.load(run_dir / "steps" / "train" / "model" / "torch_model.pt", weights_only=True)
    return dict(state)


def test_sigterm_then_resume_matches_an_uninterrupted_run_bitwise(tmp_path: Path) -> None:
    import torch

    reference_dir, resumed_dir = tmp_path / "reference", tmp_path / "resumed"
    ref = _cli(reference_dir, "run", str(_setup(reference_dir, 12)))
    path = _setup(resumed_dir, 12)
    _, ref_err = ref.communicate(timeout=600)
    assert ref.returncode == 0, ref_err

    proc = _cli(resumed_dir, "run", str(path))
    checkpoints = resumed_dir / ".trainpipe" / "checkpoints"
    deadline = time.monotonic() + 300
    while not (checkpoints.exists() and any(checkpoints.rglob("*.pt"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint was ever written"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        pytest.fail("training finished before SIGTERM arrived; make the run longer")
    assert proc.returncode == 143, err
    assert "checkpoint" in err and "Traceback" not in err

    resumed = _cli(resumed_dir, "run", str(path), "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    (train_json,) = [p for p in (resumed_dir / ".trainpipe" / "runs").glob("*/steps/train/train.json")]
    notes = json.loads(train_json.read_text())["notes"]
    assert len(notes) == 1 and notes[0].startswith("resumed from checkpoint")  # really resumed, not restarted
    a, b = _weights(reference_dir), _weights(resumed_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"  # type: ignore[arg-type]


def test_torchrun_two_processes_run_the_pipeline_rank0_tracks_and_registers(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    path = _setup(tmp_path, 3)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m",
                           "trainpipe.cli", "run", str(path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri = f"sqlite:///{tmp_path}/.trainpipe/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("mlp")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`trainpipe.kind` = 'pipeline'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # only rank 0 tracked
    assert [str(v.version) for v in client.search_model_versions("name = 'mlp'")] == ["1"]
    run_dirs = sorted(p.name for p in (tmp_path / ".trainpipe" / "runs").iterdir())
    assert len(run_dirs) == 2 and any(name.startswith("local-") for name in run_dirs)  # rank 1: untracked
