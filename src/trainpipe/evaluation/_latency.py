"""Inference latency from raw rows: per-row p50/p95 and batch throughput."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def measure_latency(predict: Any, raw: pd.DataFrame, n_single: int = 100, budget_s: float = 1.5,
                    seed: int = 0, batch: bool = True) -> dict[str, float]:
    """Time ``predict`` on single rows (up to ``n_single`` or ``budget_s``); with ``batch``, the whole frame."""
    import numpy as np

    n = len(raw)
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, size=min(n, n_single), replace=False)
    predict(raw.iloc[idx[:1]])  # warm-up
    times = []
    start = time.perf_counter()
    for i in idx:
        t0 = time.perf_counter()
        predict(raw.iloc[[int(i)]])
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    ms = np.asarray(times) * 1000.0
    out = {
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p95_ms": float(np.percentile(ms, 95)),
        "latency_rows_timed": float(len(times)),
    }
    if batch:
        t0 = time.perf_counter()
        predict(raw)
        batch_s = time.perf_counter() - t0
        out["batch_rows_per_s"] = float(n / batch_s) if batch_s > 0 else float("inf")
    return out
