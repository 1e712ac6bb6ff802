"""docs/pipeline.reference.yaml loads, and shows every key of the schema (so the docs cannot fall behind)."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from trainpipe.config import PipelineConfig, load_config

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "pipeline.reference.yaml"


def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """(the section model, the model of a dict's values) named by a field's annotation, if any."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _models_in(arg)
            if found != (None, None):
                return found
        return None, None
    if origin is dict:
        value = typing.get_args(annotation)[1]
        inner, _ = _models_in(value)
        return None, inner
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, None
    return None, None


def _missing(model: type[BaseModel], data: Any, prefix: str) -> list[str]:
    if not isinstance(data, dict):
        return [f"{prefix or '<top>'} (not a mapping)"]
    missing: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if name not in data:
            missing.append(path)
            continue
        section, values = _models_in(field.annotation)
        if section is not None:
            missing += _missing(section, data[name], f"{path}.")
        elif values is not None:
            entries = data[name] or {}
            if not entries:
                missing.append(f"{path}.<an example entry>")
                continue
            for key in values.model_fields:  # each key of the entry model shown in at least one entry
                if not any(isinstance(e, dict) and key in e for e in entries.values()):
                    missing.append(f"{path}.*.{key}")
    return missing


def test_reference_file_loads_and_passes_the_config_checks() -> None:
    from trainpipe.pipeline._preflight import preflight

    loaded = load_config(REFERENCE)
    preflight(loaded.config)  # the checks `trainpipe run` makes before reading data: params, space, metrics
    assert loaded.config.name == "telco-churn"


def test_reference_file_shows_every_schema_key() -> None:
    import yaml

    data = yaml.safe_load(REFERENCE.read_text())
    missing = _missing(PipelineConfig, data, "")
    assert not missing, f"docs/pipeline.reference.yaml lacks these schema keys: {missing}"
