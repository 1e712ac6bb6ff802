"""What a pipeline run reports: one record per step and the run as a whole."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StepRecord:
    name: str
    status: str  # ran | cached | failed
    reason: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    cost: float = 0.0
    key: str = ""
    fingerprint: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PipelineResult:
    run_id: str
    run_dir: Path
    pipeline: str
    status: str
    steps: list[StepRecord]
    metrics: dict[str, float] = field(default_factory=dict)
    tracking_uri: str = ""
    error: str = ""

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_dir": str(self.run_dir), "pipeline": self.pipeline,
                "status": self.status, "steps": [s.to_dict() for s in self.steps], "metrics": self.metrics,
                "tracking_uri": self.tracking_uri, "error": self.error}

    def write(self, path: Path) -> None:
        """Atomically, mode 0600, with every secret in its messages masked (errors may quote a URI)."""
        from trainpipe.config._secrets import scrub_strings, write_private_text

        data = {k: v if k == "run_dir" else scrub_strings(v) for k, v in self.to_dict().items()}
        write_private_text(path, json.dumps(data, indent=2, default=str))

    @classmethod
    def read(cls, path: Path) -> PipelineResult:
        data = json.loads(path.read_text())
        return cls(run_id=data["run_id"], run_dir=Path(data["run_dir"]), pipeline=data["pipeline"],
                   status=data["status"], steps=[StepRecord(**s) for s in data["steps"]],
                   metrics=data.get("metrics", {}), tracking_uri=data.get("tracking_uri", ""),
                   error=data.get("error", ""))
