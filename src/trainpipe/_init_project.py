"""``trainpipe init DATA --target COL``: a commented starter ``pipeline.yaml`` inferred from the data.

The file is built from what the run itself would infer (task, feature kinds, dropped columns) so that the
first ``trainpipe run`` does what the comments say. It is loaded back through the config loader before it
is written: a starter file that does not validate is never left behind.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

_MAX_ALLOWED_LEVELS = 12  # a categorical column with at most this many levels gets an `allowed:` check
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class StarterConfig:
    """What ``init`` found and the YAML text it writes."""

    text: str
    task: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    dropped: dict[str, str]


def pipeline_name(source: str) -> str:
    """A valid pipeline name from the data source (file stem, or the packaged item's name)."""
    stem = Path(source.split(":", 1)[-1]).stem if ":" in source and not Path(source).exists() else Path(source).stem
    name = _NAME_UNSAFE.sub("-", stem).strip("-._") or "pipeline"
    if not name[0].isalnum():
        name = f"p{name}"
    return name[:60]


def build_starter(source: str, target: str, *, base_dir: Path, name: str | None = None,
                  task: str = "auto", model_type: str = "xgboost") -> StarterConfig:
    """Read the data once and return the starter file for it."""
    from trainpipe.config import config_from_dict
    from trainpipe.data._sources import read_source, resolve_source
    from trainpipe.data._task import infer_task
    from trainpipe.features._spec import infer_feature_spec

    resolved = resolve_source(source, Path.cwd())  # as typed on the command line: relative to the cwd
    df = read_source(resolved)
    if resolved.kind == "file":  # in the file, relative to the file's own folder (how the loader reads it)
        import os

        source = Path(os.path.relpath(resolved.path, base_dir.resolve())).as_posix()
    if target not in df.columns:
        close = difflib.get_close_matches(target, [str(c) for c in df.columns], n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"--target: {target!r} is not a column of {source}.{hint} Columns: {[str(c) for c in df.columns][:30]}"
        )
    name = name or pipeline_name(source)
    skeleton = {"name": name, "task": task, "data": {"source": source, "target": target},
                "model": {"type": model_type}}
    loaded = config_from_dict(skeleton, base_dir=base_dir)
    info = infer_task(df[target], task, None, target)
    spec = infer_feature_spec(df, loaded.config)
    text = _render(df, name=name, source=source, target=target, task=info.task, positive=info.positive_label,
                   numeric=spec.numeric, categorical=spec.categorical, dropped=dict(spec.dropped),
                   model_type=model_type)
    return StarterConfig(text, info.task, tuple(spec.numeric), tuple(spec.categorical), dict(spec.dropped))


def write_starter(starter: StarterConfig, out: Path, *, force: bool = False) -> None:
    """Validate the text through the loader, then write it atomically; an existing file needs ``force``."""
    from trainpipe.config import load_config

    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it, or -o to write elsewhere.")
    out.parent.mkdir(parents=True, exist_ok=True)
    probe = out.with_name(f".{out.name}.init-check.yaml")
    try:
        probe.write_text(starter.text)
        load_config(probe)  # the file must load exactly as the user will load it
    finally:
        probe.unlink(missing_ok=True)
    _atomic_write_text(out, starter.text)


def _atomic_write_text(path: Path, text: str) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _yaml_scalar(value: Any) -> str:
    """A YAML scalar that reads back as the same value (JSON strings are valid YAML)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _yaml_list(values: Any) -> str:
    return "[" + ", ".join(_yaml_scalar(v) for v in values) + "]"


def _metrics_for(task: str) -> tuple[list[str], str, str]:
    """Default metrics, the champion metric and a suggested gate threshold for a task."""
    if task == "binary":
        return ["roc_auc", "pr_auc", "f1", "accuracy", "log_loss"], "roc_auc", 'roc_auc: ">= 0.75"'
    if task == "multiclass":
        return ["f1_macro", "accuracy", "log_loss"], "f1_macro", 'f1_macro: ">= 0.60"'
    return ["rmse", "mae", "r2"], "rmse", 'r2: ">= 0.50"'


def _column_checks(df: pd.DataFrame, numeric: Any, categorical: Any) -> list[str]:
    """Suggested per-column checks: types, observed ranges for numbers, observed levels for small categories."""
    lines: list[str] = []
    for col in numeric:
        s = df[col]
        parts = ["dtype: numeric"]
        if not s.isna().any():
            parts.append("nullable: false")
        lines.append(f"    {_yaml_scalar(col)}: {{{', '.join(parts)}}}"
                     f"    # seen: min {_fmt(s.min())}, max {_fmt(s.max())}")
    for col in categorical:
        s = df[col]
        levels = sorted({str(v) for v in s.dropna().unique()})
        parts = []
        if len(levels) <= _MAX_ALLOWED_LEVELS:
            parts.append(f"allowed: {_yaml_list(levels)}")
        if not s.isna().any():
            parts.append("nullable: false")
        if parts:
            lines.append(f"    {_yaml_scalar(col)}: {{{', '.join(parts)}}}")
    return lines


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return str(value)


def _render(df: pd.DataFrame, *, name: str, source: str, target: str, task: str, positive: Any,
            numeric: Any, categorical: Any, dropped: dict[str, str], model_type: str) -> str:
    metrics, champion, threshold = _metrics_for(task)
    y = df[target]
    lines = [
        f"# Starter pipeline written by `trainpipe init` from {source} ({len(df):,} rows x {df.shape[1]} columns).",
        "# Every key not written here has a default; docs/pipeline.reference.yaml shows them all.",
        "# Check it with `trainpipe validate pipeline.yaml`, then `trainpipe run pipeline.yaml`.",
        "",
        f"name: {_yaml_scalar(name)}                # MLflow experiment and registered model name",
        f"task: {task}                # inferred from {target!r}: {y.nunique(dropna=True)} distinct values",
        "",
        "data:",
        f"  source: {_yaml_scalar(source)}",
        f"  target: {_yaml_scalar(target)}",
    ]
    if task == "binary" and positive is not None:
        lines.append(f"  positive_label: {_yaml_scalar(positive)}    # the class that f1, precision and recall score")
    if dropped:
        lines.append(f"  drop_columns: {_yaml_list(sorted(dropped))}")
        for col, why in sorted(dropped.items()):
            lines.append(f"  #   {col}: {why}")
    split = "stratified" if task in ("binary", "multiclass") else "random"
    lines += [
        f"  split: {{method: {split}, test_size: 0.2, val_size: 0.1, seed: 42}}"
        "   # time + time_column for data ordered in time",
        "",
        "features:                # inferred from the data; listing them pins the set",
        f"  numeric: {_yaml_list(numeric)}",
        f"  categorical: {_yaml_list(categorical)}",
        "",
        "validation:               # checks that refuse bad data before anything is trained (exit 3)",
        f"  min_rows: {max(1, min(100, len(df) // 2))}           # a later file with fewer rows is refused",
    ]
    checks = _column_checks(df, numeric, categorical)
    if checks:
        lines.append("  columns:                # suggested from what this file holds: loosen what may change")
        lines += checks
    lines += [
        "",
        "model:",
        f"  type: {model_type}            # lightgbm, torch_mlp, or an sklearn class path",
        "  params: {}",
        "",
        "evaluation:",
        f"  metrics: {_yaml_list(metrics)}",
        "",
        "gate:                     # a model that fails these is not registered (exit 4)",
        "  thresholds:",
        f"    {threshold}",
        f"  champion: {{metric: {champion}, min_delta: 0.0, confidence: 0.95}}",
        "",
        "registry:",
        "  promote: staging",
        "",
    ]
    return "\n".join(lines)


__all__ = ["StarterConfig", "build_starter", "pipeline_name", "write_starter"]
