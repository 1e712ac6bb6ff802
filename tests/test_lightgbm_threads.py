"""LightGBM's thread count follows OpenMP's default (``OMP_NUM_THREADS``) unless the config sets one.

The sklearn API's own default is every physical core whatever ``OMP_NUM_THREADS`` says, so parallel tuning
workers (or xdist test workers) oversubscribed the cores: OpenMP threads spinning at barriers for a busy core
made one 3,500-row fit take minutes."""

from __future__ import annotations

import numpy as np
import pytest

from trainpipe.config import TrainingConfig
from trainpipe.data import TaskInfo
from trainpipe.models._lightgbm import LightGBMAdapter


def _fit(params: dict[str, object]) -> dict[str, object]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(np.int64)
    adapter = LightGBMAdapter(TaskInfo("binary", (0, 1)), "lightgbm", {"n_estimators": 5, **params},
                              TrainingConfig())
    adapter.fit(X[:200], y[:200], X[200:], y[200:])
    return dict(adapter.booster.params)


def test_the_default_thread_count_is_openmps_not_every_physical_core() -> None:
    booster_params = _fit({})
    assert int(booster_params["num_threads"]) == 0  # 0: OpenMP's default, which honours OMP_NUM_THREADS


@pytest.mark.parametrize("key", ["n_jobs", "num_threads"])
def test_a_configured_thread_count_is_kept(key: str) -> None:
    assert int(_fit({key: 1})["num_threads"]) == 1
