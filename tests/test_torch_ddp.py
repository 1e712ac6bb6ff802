"""DDP through torchrun (gloo on CPU): 2 processes with the same global batch and seed reach the same
validation loss as 1 process; a checkpoint written by 2 processes resumes in 1."""

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
