"""The ``orchestration:`` section: how an exported Airflow DAG or Kubeflow pipeline runs each step.

Retries, the delay between them and a per-step timeout, plus the resources a container asks for (Kubernetes
and Kubeflow only): CPU and memory requests, a GPU limit and an accelerator type. ``steps:`` overrides any of
them for one step (its names are checked against the step graph when a pipeline is exported)::

    orchestration:
      retries: 1
      retry_delay: 5m
      timeout: 1h
      resources: {cpu: "2", memory: 4Gi}
      steps:
        train: {retries: 2, timeout: 6h, resources: {cpu: "8", memory: 16Gi, gpu: 1, accelerator: nvidia.com/gpu}}

Durations are seconds (an integer) or a number with a unit: ``90s``, ``5m``, ``2h``, ``1d``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
# Kubernetes quantities: "2", "500m", "0.5" (CPU); "4Gi", "512Mi", "1G" (memory)
_CPU_RE = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY_RE = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_ACCELERATOR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,99}$")


def duration_seconds(value: Any, key: str) -> int:
    """``90``, ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"`` as whole seconds (a ValueError naming ``key`` otherwise)."""
    if isinstance(value, bool):
        raise ValueError(f"{key}: expected a duration such as 300, 90s, 5m, 2h or 1d, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if match is None:
            raise ValueError(f"{key}: expected a duration such as 300, 90s, 5m, 2h or 1d, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0 or seconds > 30 * 86400:
        raise ValueError(f"{key}: expected a duration between 0 and 30d, got {value!r}")
    return round(seconds)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ResourcesConfig(_Section):
    """What one step's container asks for (KubernetesPodOperator, Kubeflow); ignored by the other modes."""

    cpu: str | None = None  # a Kubernetes quantity: "2", "500m"
    memory: str | None = None  # "4Gi", "512Mi"
    gpu: int = Field(0, ge=0, le=16)  # nvidia.com/gpu limit
    accelerator: str | None = None  # the GPU's resource name (the limit's key; kfp's accelerator type): nvidia.com/gpu

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value)
        if not _CPU_RE.match(text):
            raise ValueError(f"expected a Kubernetes CPU quantity such as 2, 0.5 or 500m, got {value!r}")
        return text

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value)
        if not _MEMORY_RE.match(text):
            raise ValueError(f"expected a Kubernetes memory quantity such as 4Gi, 512Mi or 1G, got {value!r}")
        return text

    @field_validator("accelerator")
    @classmethod
    def _accelerator(cls, value: str | None) -> str | None:
        if value is not None and not _ACCELERATOR_RE.match(value):
            raise ValueError(f"expected a GPU resource name such as nvidia.com/gpu (letters, digits, '-', '_', "
                             f"'.', '/'), got {value!r}")
        return value


class StepOrchestrationConfig(_Section):
    """One step's overrides of the section's defaults (unset keys keep them)."""

    retries: int | None = Field(None, ge=0, le=20)
    retry_delay: int | None = None
    timeout: int | None = None
    resources: ResourcesConfig | None = None

    @field_validator("retry_delay", "timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: Any) -> int | None:
        return None if value is None else duration_seconds(value, info.field_name)


class OrchestrationConfig(_Section):
    retries: int = Field(1, ge=0, le=20)
    retry_delay: int = 300  # seconds between tries (a duration: 300, 5m)
    timeout: int = 7200  # seconds one try of one step may run
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    steps: dict[str, StepOrchestrationConfig] = Field(default_factory=dict)

    @field_validator("retry_delay", "timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: Any) -> int:
        return duration_seconds(value, info.field_name)

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("expected a duration above 0 (a step with no time at all cannot run)")
        return value


__all__ = ["OrchestrationConfig", "ResourcesConfig", "StepOrchestrationConfig", "duration_seconds"]
