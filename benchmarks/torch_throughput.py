"""Training throughput (samples/s) of the trainpipe torch engine against two references, in one process.

(a) the limit: a plain hand-written loop that slices whole tensors with a permutation;
(b) the common pattern: a per-row ``Dataset.__getitem__`` with ``DataLoader(batch_size=..., shuffle=True)``.

All three train the same MLP (30 -> 256 -> 128 -> 64 -> 1, ReLU, dropout 0.1; the engine's
``TabularMLP``) from the same initial weights with the same work per step: BCE-with-logits, AdamW
(weight decay 0.01), gradient clipping at 1.0, a cosine schedule stepped per optimizer step, batch 512,
one precision for all (``--precision fp32``, the default, or ``bf16``: forward and loss under
``torch.autocast("cpu", dtype=torch.bfloat16)``, backward and optimizer step outside it, no grad scaler;
the engine gets the same through ``TrainingConfig.precision``), on a generated 200,000 x 30 table
(binary target). The engine runs without validation and without checkpoints (a separate row shows the
cost of its default periodic checkpoints). The holdout loss is evaluated in fp32 for every precision.

Measurements are interleaved — (a), engine, (a), engine, ... then (b) — and medians are reported,
so (a) and the engine see the same background load.

Usage::

    .venv/bin/python benchmarks/torch_throughput.py [--rows 200000] [--epochs 2] [--repeat 5]
        [--precision fp32|bf16] [--no-write]

A bf16 run writes its own RESULTS.md section (``## torch_throughput_bf16``) and leaves the fp32 one alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _results import RESULTS, replace_section
from torch import nn

from trainpipe.config import TrainingConfig
from trainpipe.models.torch import Engine, MLPSpec, TabularMLP, TensorData, objective_for

HERE = Path(__file__).resolve().parent
SECTION = "## torch_throughput"
SECTIONS = {"fp32": SECTION, "bf16": "## torch_throughput_bf16"}
PRECISIONS = ("fp32", "bf16")
BATCH, LR, CLIP, FEATURES, HOLDOUT = 512, 1e-3, 1.0, 30, 20_000


def make_table(rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    w = rng.normal(size=FEATURES).astype(np.float32)
    logit = X @ w / np.sqrt(FEATURES) + 0.5 * X[:, 0] * X[:, 1]
    y = (logit + rng.normal(scale=0.5, size=rows) > 0).astype(np.float32)
    return torch.from_numpy(X), torch.from_numpy(y).reshape(-1, 1)


def fresh_model(init: dict[str, torch.Tensor], hidden: tuple[int, ...]) -> TabularMLP:
    net = TabularMLP(MLPSpec(n_inputs=FEATURES, out_dim=1, hidden_dims=hidden, dropout=0.1))
    net.load_state_dict(init)
    return net


def _autocast(precision: str) -> torch.autocast:
    """Forward + loss under bf16 autocast when asked; a disabled context (plain fp32) otherwise."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def _cpu_bf16_flags() -> str:
    """The CPU's bf16 matmul flags (avx512_bf16, amx_bf16) as /proc/cpuinfo lists them."""
    try:
        flags: set[str] = set()
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
    except OSError:
        return "CPU bf16 flags unknown (no /proc/cpuinfo)"
    found = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"CPU bf16 flags: {', '.join(found)}" if found else "CPU bf16 flags: none (no avx512_bf16/amx_bf16)"


def _optim(net: nn.Module, total_steps: int, fused: bool = False) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=0.01, fused=fused)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)


def hand_loop(net: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int, fused: bool = False,
              precision: str = "fp32") -> float:
    """(a) The limit: whole tensors, index slicing, nothing else."""
    n = X.shape[0]
    opt, sched = _optim(net, epochs * math.ceil(n / BATCH), fused)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(0)
    net.train()
    loss = torch.zeros(())
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            with _autocast(precision):
                loss = loss_fn(net(X[idx]), y[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), CLIP)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
    return float(loss.detach())


class RowDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(b) The common pattern, best case: one row of a tensor per ``__getitem__`` (like ``TensorDataset``)."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[i], self.y[i]


class NumpyRowDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(b) The tutorial pattern: numpy arrays, ``torch.tensor(row)`` per ``__getitem__``."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor) -> None:
        self.X, self.y = X.numpy(), y.numpy()

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(self.X[i], dtype=torch.float32), torch.tensor(self.y[i], dtype=torch.float32)


def dataloader_loop(net: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int,
                    dataset: type[torch.utils.data.Dataset[Any]] = RowDataset, precision: str = "fp32") -> float:
    loader = torch.utils.data.DataLoader(dataset(X, y), batch_size=BATCH, shuffle=True,  # type: ignore[call-arg]
                                         generator=torch.Generator().manual_seed(0))
    opt, sched = _optim(net, epochs * len(loader))
    loss_fn = nn.BCEWithLogitsLoss()
    net.train()
    loss = torch.zeros(())
    for _ in range(epochs):
        for xb, yb in loader:
            with _autocast(precision):
                loss = loss_fn(net(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), CLIP)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
    return float(loss.detach())


def engine_loop(net: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int,
                checkpoint_dir: Path | None = None, precision: str = "fp32") -> float:
    training = TrainingConfig(epochs=epochs, batch_size=BATCH, learning_rate=LR, optimizer="adamw",
                              scheduler="cosine", gradient_clip_norm=CLIP, device="cpu", seed=0,
                              precision=precision)
    engine = Engine(net, objective_for("binary"), training, weight_decay=0.01, checkpoint_dir=checkpoint_dir)
    result = engine.fit(TensorData((X,), y))
    return result.history["train_loss"][-1]


def timed(loop: Callable[[nn.Module], object], net: nn.Module,
          holdout: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float, float]:
    """Wall and CPU seconds of ``loop(net)``, then (untimed) the trained net's loss on a holdout table."""
    t0, c0 = time.perf_counter(), time.process_time()
    loop(net)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    net.eval()
    with torch.no_grad():
        loss = float(nn.functional.binary_cross_entropy_with_logits(net(holdout[0]), holdout[1]))
    return wall, cpu, loss


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short=8", "HEAD"], capture_output=True, text=True,
                              cwd=HERE, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


_PRECISION_TEXT = {"fp32": "fp32",
                   "bf16": "bf16 autocast for forward and loss (backward and optimizer step outside it, "
                           "no grad scaler; fp32 weights and optimizer state)"}

NAMES = {"a": "(a) hand-written tensor-slicing loop (the limit)",
         "a_fused": "(a') the same loop with `AdamW(fused=True)`, as the engine builds it",
         "engine": "**trainpipe engine**",
         "engine_ckpt": "trainpipe engine + checkpoint every 200 steps and each epoch",
         "b": "(b) per-row `Dataset` (tensor rows) + `DataLoader(batch_size=512, shuffle=True)`",
         "b_np": "(b') per-row `Dataset` (numpy row -> `torch.tensor`) + `DataLoader`"}


def measure(X: torch.Tensor, y: torch.Tensor, holdout: tuple[torch.Tensor, torch.Tensor], hidden: tuple[int, ...],
            epochs: int, repeat: int, loader_repeat: int,
            precision: str = "fp32") -> tuple[list[str], dict[str, float]]:
    torch.manual_seed(0)
    spec = MLPSpec(n_inputs=FEATURES, out_dim=1, hidden_dims=hidden, dropout=0.1)
    init = {k: v.clone() for k, v in TabularMLP(spec).state_dict().items()}

    def model() -> TabularMLP:
        return fresh_model(init, hidden)

    p = precision
    hand_loop(model(), X[:20_000], y[:20_000], 1, precision=p)  # warm-up (allocator, kernels)
    engine_loop(model(), X[:20_000], y[:20_000], 1, precision=p)
    times: dict[str, list[tuple[float, float, float]]] = {k: [] for k in NAMES}
    for _ in range(repeat):
        times["a"].append(timed(lambda net: hand_loop(net, X, y, epochs, precision=p), model(), holdout))
        times["engine"].append(timed(lambda net: engine_loop(net, X, y, epochs, precision=p), model(), holdout))
        times["a_fused"].append(timed(lambda net: hand_loop(net, X, y, epochs, fused=True, precision=p), model(),
                                      holdout))
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(1, repeat // 2)):
            times["engine_ckpt"].append(timed(lambda net: engine_loop(net, X, y, epochs, Path(tmp), precision=p),
                                              model(), holdout))
    for _ in range(loader_repeat):
        times["b"].append(timed(lambda net: dataloader_loop(net, X, y, epochs, precision=p), model(), holdout))
        times["b_np"].append(timed(lambda net: dataloader_loop(net, X, y, epochs, NumpyRowDataset, precision=p),
                                   model(), holdout))
    samples = X.shape[0] * epochs
    rates = {k: samples / statistics.median(t[0] for t in v) for k, v in times.items()}
    lines = [f"### MLP {FEATURES}-{'-'.join(map(str, hidden))}-1, {precision}", "",
             "| loop | median samples/s | engine is | each run, wall s | median CPU s | holdout loss (last run) |",
             "|---|---:|---:|---|---:|---:|"]
    for key, runs in times.items():
        walls = ", ".join(f"{t[0]:.2f}" for t in runs)
        cpu = statistics.median(t[1] for t in runs)
        ratio = "" if key.startswith("engine") else f"{rates['engine'] / rates[key]:.2f}x"
        lines.append(f"| {NAMES[key]} | {rates[key]:,.0f} | {ratio} | {walls} | {cpu:.2f} | {runs[-1][2]:.4f} |")
    vs_a, vs_af, vs_b, vs_bnp = (rates["engine"] / rates[k] for k in ("a", "a_fused", "b", "b_np"))
    cpu_med = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    cpu_ratio = ", ".join(f"{label} {cpu_med[key] / cpu_med['engine']:.2f}x"
                          for label, key in (("(a)", "a"), ("(a')", "a_fused"), ("(b)", "b"), ("(b')", "b_np")))
    pairs = ", ".join(f"{a[0] / e[0]:.2f}" for a, e in zip(times["a"], times["engine"], strict=True))
    lines += ["",
              f"Engine / (a): **{vs_a:.2f}x** (target >= 0.9x: {'met' if vs_a >= 0.9 else 'NOT met'}; per "
              f"interleaved pair: {pairs}); engine / (a'): **{vs_af:.2f}x**. Engine / (b): **{vs_b:.2f}x**, "
              f"engine / (b'): **{vs_bnp:.2f}x** "
              f"(target >= 3x: {'met' if vs_b >= 3 else 'NOT met'} against (b), "
              f"{'met' if vs_bnp >= 3 else 'NOT met'} against (b')). Periodic checkpoints cost "
              f"{(1 - rates['engine_ckpt'] / rates['engine']) * 100:.1f}% of engine throughput. By CPU seconds "
              f"(steadier under load) the engine is, relative to: {cpu_ratio}.", ""]
    return lines, rates


def run(rows: int, epochs: int, repeat: int, loader_repeat: int, hiddens: list[tuple[int, ...]],
        precision: str = "fp32") -> str:
    X_all, y_all = make_table(rows + HOLDOUT)
    X, y, holdout = X_all[:rows], y_all[:rows], (X_all[rows:], y_all[rows:])
    load_before = _load()
    tables: list[str] = []
    for hidden in hiddens:
        lines, _ = measure(X, y, holdout, hidden, epochs, repeat, loader_repeat, precision)
        tables += lines
    load_after = _load()
    head = [
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} CPUs · Python "
        f"{platform.python_version()} · torch {torch.__version__} ({torch.get_num_threads()} threads) · "
        f"{_cpu_bf16_flags()} · trainpipe at commit {_commit()}  ",
        f"Load average (1/5/15 min) before: {load_before}, after: {load_after}. The machine has 2 cores and "
        "other engineers were running tests and benchmarks on it at the same time, so absolute numbers are "
        "noisy; (a) and the engine are interleaved in the same process so they share the noise, and CPU "
        "seconds are shown as a second opinion.",
        "",
        f"Data: generated {rows:,} x {FEATURES} float32 table, binary target. Same initial weights everywhere; "
        f"ReLU, dropout 0.1. Work per step: BCE-with-logits, AdamW (weight decay 0.01), clip-norm {CLIP}, cosine "
        f"LR per step, batch {BATCH}, {_PRECISION_TEXT[precision]}, CPU. {epochs} epoch(s) per measurement; "
        f"{repeat} repetitions of (a) and the engine (interleaved), {loader_repeat} of (b) and (b'); medians. "
        "The engine runs without validation and without checkpoints, except in the checkpoint row. "
        "DataLoaders use `num_workers=0` (workers would compete with the 2 compute threads). The last column "
        f"is the loss (evaluated in fp32) of the trained model on {HOLDOUT:,} held-out rows (not timed): all "
        "loops do the same learning.",
        "",
    ]
    notes = [
        "Notes. The engine's per-step extras over (a): one device copy of the loss into a buffer (no `.item()` "
        "sync), a NaN/inf check every 25 optimizer steps, a Python check of the SIGTERM flag; at epoch end the "
        "train-loss reduction and a copy of the best weights. It builds its optimizer with `fused=True` (one "
        "kernel per step on CPU and CUDA), which (a), written the plain way, does not: that is why it can beat "
        "the \"limit\"; (a') shows the loop with the same optimizer kernel. The ratio to (b) is bounded by how "
        "much of a step is compute: on this CPU a 512-row "
        "step of the 256-128-64 MLP is several milliseconds of matmuls, while per-row fetching and collating "
        "adds a few microseconds per row, so the gap widens as the model gets smaller or the device faster "
        "(a GPU). Precision: each run measures one, for every loop (`--precision fp32`, the default, or "
        "`--precision bf16`); bf16 runs are written to their own section. Whether bf16 autocast is faster "
        "than fp32 on a CPU depends on bf16 matmul support (avx512_bf16 / amx_bf16, listed in the header "
        "line above): compare the fp32 and bf16 sections, measured on the same machine. On a shared machine "
        "use `--threads 1`: with torch's default of one thread per core, OpenMP threads spin against the other "
        "processes and wall times of the same work swing by an order of magnitude between repetitions (seen "
        "here, 1.9 s to 92 s).",
    ]
    return "\n".join(head + tables + notes) + "\n"


def write_section(body: str, command: str, precision: str = "fp32") -> None:
    heading = SECTIONS[precision]
    replace_section(heading, f"{heading}\n\nCommand: `{command}`\n\n{body}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of (a) and the engine")
    parser.add_argument("--loader-repeat", type=int, default=3, help="repetitions of (b), the slow one")
    parser.add_argument("--hidden", action="append", default=None,
                        help="hidden layer widths, e.g. 256,128,64 (repeatable; default 256,128,64 and 64,32)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice, one per core)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32, or bf16 autocast for forward+loss in every loop (the engine via "
                             "TrainingConfig.precision); a bf16 run writes its own RESULTS.md section")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md as it is")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    hiddens = [tuple(int(v) for v in h.split(",")) for h in (args.hidden or ["256,128,64", "64,32"])]
    body = run(args.rows, args.epochs, args.repeat, args.loader_repeat, hiddens, args.precision)
    print(body)
    if not args.no_write:
        extra = " ".join(a for a in sys.argv[1:] if a != "--no-write")
        write_section(body, f".venv/bin/python benchmarks/torch_throughput.py{' ' + extra if extra else ''}",
                      args.precision)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
