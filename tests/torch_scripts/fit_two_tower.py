"""Fit two_tower on fixed generated interactions (the SIGKILL resume test runs it as a subprocess).

usage: python fit_two_tower.py OUT_DIR [--resume] [--step-sleep S] [--loss NAME]

Writes OUT_DIR/model (the saved model folder) and OUT_DIR/result.json (history, notes); checkpoints go to
OUT_DIR/ckpt.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trainpipe.config import TrainingConfig
from trainpipe.data._interactions import RankingData
from trainpipe.models._two_tower import TwoTowerAdapter
from trainpipe.models.torch._two_tower_module import TwoTowerNet
from trainpipe.tasks import TaskInfo


def frames(n_users: int = 150, n_items: int = 60, per_user: int = 20, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        mine = [i for i in range(n_items) if i % 5 == u % 5]
        rows += [(u, int(rng.choice(mine)) if rng.random() < 0.85 else int(rng.integers(n_items)))
                 for _ in range(per_user)]
    df = pd.DataFrame(rows, columns=["user", "item"])
    val = df.groupby("user").tail(2)
    train = df.drop(val.index)
    items = pd.DataFrame({"item": range(n_items), "genres": [["A|B", "C", "B|D", "E", "A"][i % 5]
                                                            for i in range(n_items)]})
    return train, val, pd.DataFrame({"user": range(n_users)}), items


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--step-sleep", type=float, default=0.0)
    ap.add_argument("--loss", default="in_batch_softmax")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.step_sleep:
        original = TwoTowerNet.training_step

        def slow(self: TwoTowerNet, batch: object) -> torch.Tensor:
            time.sleep(args.step_sleep)
            return original(self, batch)

        TwoTowerNet.training_step = slow  # type: ignore[method-assign]
    train, val, users, items = frames()

    def data(frame: pd.DataFrame) -> RankingData:
        return RankingData(frame, "user", "item", users, items, item_features=["genres"])

    training = TrainingConfig(epochs=3, batch_size=64, learning_rate=0.01, checkpoint_every=10, seed=5,
                              scheduler="cosine", early_stopping_patience=10, grad_accum_steps=2, optimizer="adam")
    adapter = TwoTowerAdapter(TaskInfo("ranking"), "two_tower", {"embedding_dim": 16, "tower_layers": [32, 16],
                                                                 "dropout": 0.2, "loss": args.loss, "k": 5},
                              training)
    adapter.configure_checkpoints(args.out / "ckpt", resume=args.resume)
    args.out.mkdir(parents=True, exist_ok=True)
    report = adapter.fit(data(train), np.empty(0), data(val), None)
    adapter.save(args.out / "model")
    (args.out / "result.json").write_text(json.dumps({"history": report.history, "notes": report.notes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
