"""The Tracker seam: what the pipeline needs from an experiment tracker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Tracker(Protocol):
    """Runs with params, metrics, tags and artifacts. ``MlflowTracker`` is the real one."""

    @property
    def uri(self) -> str: ...

    def start_run(self, name: str, *, parent_id: str | None = None,
                  tags: Mapping[str, str] | None = None) -> str:
        """Create a run and return its id."""
        ...

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_metric_history(self, run_id: str, key: str, values: Sequence[float]) -> None:
        """A whole curve (one value per step) in as few writes as the backend allows."""
        ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def log_inputs(self, run_id: str, datasets: Sequence[Mapping[str, Any]]) -> None:
        """Dataset inputs of the run, described as in :func:`trainpipe.tracking._datasets.describe_splits`."""
        ...

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """A file, or a directory's contents, under ``artifact_path``."""
        ...

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """``status``: FINISHED, FAILED or KILLED."""
        ...
