"""Fit torch_mlp on a fixed generated table (used by the resume and DDP tests as a subprocess).

usage: python fit_mlp.py OUT_DIR [--resume] [--step-sleep S] [--set key=value ...]

Writes OUT_DIR/weights.pt (final state_dict) and OUT_DIR/result.json (history, resumed position);
checkpoints go to OUT_DIR/ckpt. Exits with TrainingInterrupted.exit_code on SIGTERM (like the CLI).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainpipe import TrainingInterrupted
from trainpipe.config import TrainingConfig
from trainpipe.data import TaskInfo
from trainpipe.models._torch_mlp import TorchMLPAdapter
from trainpipe.models.torch import TabularMLP


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    X[:, 7] = rng.integers(0, 5, size=n)
    score = X[:, 0] - 0.5 * X[:, 1] + X[:, 2] * X[:, 3] + (X[:, 7] == 3) + rng.normal(scale=0.3, size=n)
    return X, (score > 0.3).astype(np.int64)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--step-sleep", type=float, default=0.0)
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--set", action="append", default=[], help="training.KEY=VALUE")
    ap.add_argument("--param", action="append", default=[], help="model.params.KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    training = {"epochs": 3, "batch_size": 64, "learning_rate": 0.01, "checkpoint_every": 20, "seed": 11,
                "scheduler": "cosine", "early_stopping_patience": 10}
    training.update({k: _value(v) for k, v in (s.split("=", 1) for s in args.set)})
    if args.step_sleep:
        original = TabularMLP.forward

        def slow(self: TabularMLP, *inputs: torch.Tensor) -> torch.Tensor:
            if self.training:
                time.sleep(args.step_sleep)
            return original(self, *inputs)

        TabularMLP.forward = slow  # type: ignore[method-assign]
    params = {"hidden_dims": [32, 16], "dropout": 0.2}
    params.update({k: _value(v) for k, v in (s.split("=", 1) for s in args.param)})
    X, y = make_data(args.rows)
    split = int(0.8 * len(y))
    adapter = TorchMLPAdapter(TaskInfo("binary", (0, 1)), "torch_mlp",
                              params, TrainingConfig(**training))
    adapter.set_categorical_columns([7])
    adapter.configure_checkpoints(args.out / "ckpt", resume=args.resume)
    position = None
    if args.resume and (args.out / "ckpt" / "last.pt").exists():
        position = torch.load(args.out / "ckpt" / "last.pt", weights_only=True)["position"]
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        report = adapter.fit(X[:split], y[:split], X[split:], y[split:],
                             lambda e, total, m: print(f"epoch {e}/{total} {m}", flush=True)
                             if int(os.environ.get("RANK", "0")) == 0 else None)
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr, flush=True)
        return exc.exit_code
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes
        torch.save(adapter.net.state_dict(), args.out / "weights.pt")
        (args.out / "result.json").write_text(json.dumps({
            "history": report.history, "resumed_at": position, "best_iteration": report.best_iteration,
            "notes": report.notes,
            "world_size": int(os.environ.get("WORLD_SIZE", "1"))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
