"""DDP through torchrun (gloo on CPU): 2 processes with the same global batch and seed reach the same
validation loss as 1 process; a checkpoint written by 2 processes resumes in 1; SIGTERM to torchrun
checkpoints and a resumed 2-process run ends bitwise equal to an uninterrupted one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "torch_scripts" / "fit_mlp.py"
ROOT = Path(__file__).resolve().parents[1]


def _fit(out: Path, nproc: int, *extra: str) -> dict[str, object]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd = [*(launcher if nproc > 1 else [sys.executable]), str(SCRIPT), str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result: dict[str, object] = json.loads((out / "result.json").read_text())
    return result


def test_two_processes_match_one(tmp_path: Path) -> None:
    args = ("--set", "batch_size=128", "--param", "dropout=0")
    one = _fit(tmp_path / "one", 1, *args)
    two = _fit(tmp_path / "two", 2, *args)
    assert one["world_size"] == 1 and two["world_size"] == 2
    v1, v2 = one["history"]["val_loss"], two["history"]["val_loss"]  # type: ignore[index]
    assert len(v1) == len(v2) == 3
    assert v2[-1] == pytest.approx(v1[-1], rel=1e-3)
    assert sorted(p.name for p in (tmp_path / "two" / "ckpt").iterdir() if p.suffix == ".pt")[-1] == "last.pt"


def test_checkpoint_of_two_processes_resumes_in_one(tmp_path: Path) -> None:
    args = ("--set", "batch_size=128", "--set", "scheduler=none")
    first = _fit(tmp_path / "run", 2, *args, "--set", "epochs=2")
    assert len(first["history"]["val_loss"]) == 2  # type: ignore[index]
    resumed = _fit(tmp_path / "run", 1, *args, "--set", "epochs=3", "--resume")
    assert resumed["resumed_at"]["world_size"] == 2  # type: ignore[index]
    history = resumed["history"]
    assert history["val_loss"][:2] == first["history"]["val_loss"]  # type: ignore[index]
    assert len(history["val_loss"]) == 3  # type: ignore[index]


def test_sigterm_under_torchrun_checkpoints_and_resumes_bitwise(tmp_path: Path) -> None:
    import signal
    import time

    import torch

    # 20,000 rows: ~125 steps an epoch, so the signal (~30 steps after the first checkpoint) lands mid-epoch
    args = ("--rows", "20000", "--set", "batch_size=128", "--set", "checkpoint_every=10", "--set", "epochs=2")
    _fit(tmp_path / "ref", 2, *args)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*launcher, str(SCRIPT), str(tmp_path / "cut"), "--step-sleep", "0.01", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    while not (tmp_path / "cut" / "ckpt" / "last.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # torchrun forwards it to every worker
    _, stderr = proc.communicate(timeout=120)
    assert "interrupted by signal SIGTERM; checkpoint written to" in stderr
    assert not (tmp_path / "cut" / "weights.pt").exists()
    resumed = _fit(tmp_path / "cut", 2, *args, "--resume")
    assert resumed["resumed_at"]["micro"] > 0  # type: ignore[index]
    assert any(n.startswith("resumed from checkpoint") for n in resumed["notes"])  # type: ignore[union-attr]
    ref = torch.load(tmp_path / "ref" / "weights.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "weights.pt", weights_only=True)
    assert all(torch.equal(ref[k], cut[k]) for k in ref)
