"""Preemption: SIGTERM writes a checkpoint and exits 143; after SIGTERM or SIGKILL, --resume gives
final weights bitwise equal to an uninterrupted run with the same seed (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "torch_scripts" / "fit_mlp.py"
ROOT = Path(__file__).resolve().parents[1]


def _run(out: Path, *extra: str, resume: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(SCRIPT), str(out), *extra, *(["--resume"] if resume else [])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env())


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _interrupt(out: Path, sig: int, extra: list[str], after_checkpoints: int = 1) -> subprocess.Popen[str]:
    """Start a slowed-down fit and send ``sig`` once a periodic checkpoint has been written (mid-epoch)."""
    cmd = [sys.executable, str(SCRIPT), str(out), "--step-sleep", "0.01", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
    last = out / "ckpt" / "last.pt"
    deadline = time.monotonic() + 120
    seen: set[int] = set()
    while len(seen) < after_checkpoints:
        assert proc.poll() is None, f"the fit ended before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        if last.exists():
            seen.add(last.stat().st_mtime_ns)
        time.sleep(0.02)
    time.sleep(0.15)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


def _assert_same_weights(a: Path, b: Path) -> None:
    wa = torch.load(a / "weights.pt", weights_only=True)
    wb = torch.load(b / "weights.pt", weights_only=True)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs after resume"


@pytest.mark.parametrize(("sig", "extra"), [
    (signal.SIGTERM, []),
    (signal.SIGKILL, ["--set", "grad_accum_steps=2", "--set", "optimizer=adam", "--set", "scheduler=one_cycle"]),
    (signal.SIGTERM, ["--set", "scheduler=plateau", "--set", "optimizer=sgd", "--set", "precision=bf16"]),
    # BatchNorm with 4801 training rows: each epoch's 1-row tail is folded into the batch before it
    (signal.SIGTERM, ["--rows", "6002", "--param", "batch_norm=true"]),
])
def test_resume_after_signal_is_bitwise_identical(tmp_path: Path, sig: int, extra: list[str]) -> None:
    reference = _run(tmp_path / "ref", *extra)
    assert reference.returncode == 0, reference.stderr
    proc = _interrupt(tmp_path / "cut", sig, extra)
    stderr = proc.stderr.read() if proc.stderr else ""
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, stderr
        assert "interrupted by signal SIGTERM; checkpoint written to" in stderr and "--resume" in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "cut" / "weights.pt").exists()
    resumed = _run(tmp_path / "cut", *extra, resume=True)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads((tmp_path / "cut" / "result.json").read_text())
    position = result["resumed_at"]
    assert position is not None and position["global_step"] > 0
    # the engine itself says it resumed (a silent restart would give the same weights with a fixed seed)
    assert any(n.startswith("resumed from checkpoint") for n in result["notes"]), result["notes"]
    if sig == signal.SIGTERM:
        assert position["micro"] > 0, "the SIGTERM checkpoint should be in the middle of an epoch"
    _assert_same_weights(tmp_path / "ref", tmp_path / "cut")
    reference_history = json.loads((tmp_path / "ref" / "result.json").read_text())["history"]
    assert result["history"] == reference_history


def test_resume_false_starts_afresh(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", "--set", "epochs=1")
    assert first.returncode == 0, first.stderr
    (tmp_path / "a" / "ckpt" / "stale.txt").write_text("x")
    again = _run(tmp_path / "a", "--set", "epochs=1")
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "a" / "ckpt" / "stale.txt").exists()
    assert json.loads((tmp_path / "a" / "result.json").read_text())["resumed_at"] is None


def test_resume_of_a_finished_run_does_not_train_again(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", "--set", "epochs=2")
    assert first.returncode == 0, first.stderr
    weights = torch.load(tmp_path / "a" / "weights.pt", weights_only=True)
    again = _run(tmp_path / "a", "--set", "epochs=2", resume=True)
    assert again.returncode == 0, again.stderr
    assert "epoch" not in again.stdout
    again_weights = torch.load(tmp_path / "a" / "weights.pt", weights_only=True)
    assert all(torch.equal(weights[k], again_weights[k]) for k in weights)
