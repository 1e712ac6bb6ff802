"""What the runner logs about a whole run: the splits as dataset inputs, per-slice metrics, artifacts; and the
library warnings of a step as notes. Driven by the steps' declarations (``slice_tables``, ``artifact_dir``,
outputs), never by step names."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe.config import redact
from trainpipe.config._secrets import scrub
from trainpipe.pipeline._records import PipelineResult
from trainpipe.pipeline._step import Step, StepContext

if TYPE_CHECKING:
    from trainpipe._hooks import Hooks
    from trainpipe.config import LoadedConfig

STEP_RESULT = "_step_result.json"
SPLIT_INFO = "split.json"  # the output that marks a step's folder as the run's train/val/test splits
MAX_SLICE_LEVELS_LOGGED = 50  # per column: the largest slices (the evaluation sorts them by size)


def step_param(result: PipelineResult, key: str) -> str:
    """Param ``key`` as a step of this run recorded it (``data_fingerprint``: the step that read the data)."""
    for s in result.steps:
        stored = result.run_dir / "steps" / s.name / STEP_RESULT
        with contextlib.suppress(OSError, ValueError):
            value = json.loads(stored.read_text()).get("params", {}).get(key)
            if value:
                return str(value)
    return ""

def log_inputs(tracker: Any, hooks: Hooks, loaded: LoadedConfig, steps: Sequence[Step], parent: str, run_dir: Path,
               fingerprint: str | None) -> None:
    """The train, validation and test splits as the parent run's dataset inputs (see ``tracking._datasets``):
    the output of the step that declares ``split.json`` among its outputs."""
    splitter = next((s for s in steps if SPLIT_INFO in s.outputs), None)
    split_dir = run_dir / "steps" / splitter.name if splitter is not None else None
    if tracker is None or not fingerprint or split_dir is None or not split_dir.is_dir():
        return
    from trainpipe.config import redact_uri
    from trainpipe.tracking._datasets import describe_splits

    info_file = split_dir / SPLIT_INFO
    try:
        info = json.loads(info_file.read_text()) if info_file.is_file() else {}
        source = redact_uri(redact(loaded.config.data.source, secrets=loaded.secret_values))
        datasets = describe_splits(split_dir, fingerprint=fingerprint, source=scrub(source), split_info=info)
    except (OSError, ValueError) as exc:  # a damaged split file must not cost the run its other records
        hooks.on_message(f"tracking: the splits were not logged as dataset inputs ({type(exc).__name__}: "
                              f"{scrub(str(exc))[:200]})")
        return
    if datasets:
        tracker.log_inputs(parent, datasets)

def slice_metrics(steps: Sequence[Step], run_dir: Path) -> dict[str, float]:
    """Per-slice test metrics as run metrics (``test.slice.<column>/<level>.<metric>``), from the evaluation
    (evaluation.slices) and the fairness gate (gate.slices); ``slice_metrics.json`` maps each key back to
    the column and level it stands for (MLflow allows few characters in a key: see ``tracking._names``)."""
    from trainpipe.tracking._names import slice_metric_key

    tables: dict[str, list[dict[str, Any]]] = {}
    for path, key in ((run_dir / "steps" / s.name / file, k) for s in steps for file, k in s.slice_tables):
        if path.is_file():
            with contextlib.suppress(OSError, ValueError):
                for column, rows in (json.loads(path.read_text()).get(key) or {}).items():
                    tables.setdefault(column, []).extend(rows)
    out: dict[str, float] = {}
    mapping: dict[str, dict[str, Any]] = {}
    notes = []
    for column, rows in tables.items():
        levels = list(dict.fromkeys(str(r.get("slice")) for r in rows))
        if len(levels) > MAX_SLICE_LEVELS_LOGGED:
            notes.append(f"{column}: {len(levels)} levels, the {MAX_SLICE_LEVELS_LOGGED} largest logged as metrics")
        kept = set(levels[:MAX_SLICE_LEVELS_LOGGED])
        for r in rows:
            level = str(r.get("slice"))
            if level not in kept:
                continue
            for metric, value in r.items():
                if metric in ("slice", "count", "gated", "note") or not isinstance(value, int | float):
                    continue
                key = slice_metric_key("test", column, level, metric)
                while key in mapping and (mapping[key]["column"], mapping[key]["slice"]) != (column, level):
                    key += "_"  # two levels that read the same once sanitised
                out[key] = float(value)
                mapping[key] = {"column": column, "slice": level, "metric": metric, "count": r.get("count")}
    if mapping:
        (run_dir / "slice_metrics.json").write_text(json.dumps({"metrics": mapping, "notes": notes}, indent=1))
    return out

def log_artifacts(tracker: Any, steps: Sequence[Step], parent: str, run_dir: Path) -> None:
    if tracker is None:
        return
    for name in ("config.redacted.yaml", "steps.json", "slice_metrics.json", "validation_report.json",
                 "validation_report.md", "drift_report.json", "drift_report.md", "gate_report.json",
                 "gate_report.md"):
        path = run_dir / name
        if path.exists():
            tracker.log_artifact(parent, path)
    for step in steps:
        sub = step.artifact_dir
        folder = run_dir / "steps" / step.name
        if not sub or not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.name.startswith("_") or f.suffix in (".npy", ".npz", ".parquet") or f.name == "registered_model":
                continue
            tracker.log_artifact(parent, f, "model" if f.is_dir() and f.name == "model" else sub)


@contextlib.contextmanager
def warnings_as_notes(ctx: StepContext, limit: int = 5) -> Iterator[None]:
    """Library warnings raised while a step runs (sklearn's UndefinedMetricWarning and ConvergenceWarning,
    matplotlib's missing glyphs, pandas' date parsing) become one note each, once, naming the step,
    instead of raw lines with library file paths and source excerpts."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        # libraries' deprecations of each other's APIs: nothing a pipeline author can act on (and hidden
        # by Python's own default filters too)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        try:
            yield
        finally:
            seen: dict[tuple[str, str], int] = {}
            for w in caught:
                text = scrub((str(w.message).strip().splitlines() or [""])[0][:300])
                key = (w.category.__name__, text)
                seen[key] = seen.get(key, 0) + 1
            for (category, text), n in list(seen.items())[:limit]:
                times = f" ({n} times)" if n > 1 else ""
                ctx.hooks.on_message(f"{ctx.step}: {category}: {text}{times}")
            if len(seen) > limit:
                ctx.hooks.on_message(f"{ctx.step}: {len(seen) - limit} more kinds of library warnings")
