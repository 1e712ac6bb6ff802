"""In-memory tracker for unit tests; keeps everything in dicts."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class MemoryRun:
    run_id: str
    name: str
    parent_id: str | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    status: str = "RUNNING"
    inputs: list[dict[str, Any]] = field(default_factory=list)


class InMemoryTracker:
    """A :class:`~trainpipe.tracking.Tracker` that writes nothing to disk."""

    def __init__(self) -> None:
        self.runs: dict[str, MemoryRun] = {}
        self._ids = itertools.count(1)

    @property
    def uri(self) -> str:
        return "memory://"

    def start_run(self, name: str, *, parent_id: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        run_id = f"run{next(self._ids)}"
        self.runs[run_id] = MemoryRun(run_id, name, parent_id, tags=dict(tags or {}))
        return run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self.runs[run_id].params.update({k: str(v) for k, v in params.items()})

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        for k, v in metrics.items():
            self.runs[run_id].metrics.setdefault(k, []).append((step or 0, float(v)))

    def log_metric_history(self, run_id: str, key: str, values: Sequence[float]) -> None:
        self.runs[run_id].metrics.setdefault(key, []).extend((i, float(v)) for i, v in enumerate(values))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.runs[run_id].tags.update({k: str(v) for k, v in tags.items()})

    def log_inputs(self, run_id: str, datasets: Sequence[Mapping[str, Any]]) -> None:
        self.runs[run_id].inputs.extend(dict(d) for d in datasets)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        prefix = f"{artifact_path}/" if artifact_path else ""
        files = [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]
        for f in files:
            rel = f.relative_to(path).as_posix() if path.is_dir() else f.name
            self.runs[run_id].artifacts[prefix + rel] = f.read_bytes()

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.runs[run_id].status = status

    def children(self, parent_id: str) -> list[MemoryRun]:
        return [r for r in self.runs.values() if r.parent_id == parent_id]


