"""``trainpipe validate``: the config and the data checks (ingest, validate), and no run left behind.

Nothing is tracked, so no run directory is kept: the runner's ``.trainpipe/runs/local-*`` folder is removed
when the command ends, however it ends. The step cache is kept (a later ``trainpipe run`` reuses the checked
data). The validation report, passed or failed, is the one thing kept: the latest one of each pipeline, at
``.trainpipe/validation/<pipeline name>/validation_report.md`` (and ``.json``), and the command names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainpipe._exceptions import DataValidationError

REPORT_DIR = "validation"
_REPORTS = ("validation_report.json", "validation_report.md")


@dataclass
class ValidateOutcome:
    name: str
    checks: int
    report: Path | None


def report_dir(workdir: Path, name: str) -> Path:
    """Where ``trainpipe validate`` keeps the latest validation report of pipeline ``name``."""
    from trainpipe.pipeline._runner import STATE_DIR

    return workdir / STATE_DIR / REPORT_DIR / (re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "pipeline")


def validate_only(loaded: Any, *, workdir: Path | None = None, hooks: Any = None) -> ValidateOutcome:
    """Run ingest and validate of ``loaded`` in ``workdir``; raise as the steps do (exit 2 or 3), with the
    kept report's path added to a failed validation's message."""
    from trainpipe.pipeline._graph import StepGraph
    from trainpipe.pipeline._runner import STATE_DIR, PipelineRunner

    workdir = (workdir or Path.cwd()).resolve()
    runs = workdir / STATE_DIR / "runs"
    before = _entries(runs)
    steps = StepGraph.for_config(loaded.config).upstream_of("validate")
    try:
        result = PipelineRunner(loaded, workdir=workdir, steps=steps, hooks=hooks).run()
        kept = _keep_report(result.run_dir, workdir, loaded.config.name)
        checks = json.loads(kept.with_suffix(".json").read_text()).get("checks", []) if kept else []
        return ValidateOutcome(loaded.config.name, len(checks), kept)
    except DataValidationError as exc:
        kept = next((k for d in _mine(runs, before) if (k := _keep_report(d, workdir, loaded.config.name))), None)
        if kept is None:
            raise
        raise DataValidationError(f"{exc}\nReport: {kept}", exc.report) from exc
    finally:
        for run_dir in _mine(runs, before):
            shutil.rmtree(run_dir, ignore_errors=True)
        if not before and runs.is_dir() and not any(runs.iterdir()):
            with contextlib.suppress(OSError):  # a run that another command started here meanwhile
                runs.rmdir()


def _entries(runs: Path) -> set[str]:
    return {p.name for p in runs.iterdir()} if runs.is_dir() else set()


def _mine(runs: Path, before: set[str]) -> list[Path]:
    """Run directories made since ``before`` by this process (another command may be running here too)."""
    from trainpipe.tracking._stale import OWNER_FILE

    found = []
    for name in sorted(_entries(runs) - before):
        try:
            owner = json.loads((runs / name / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner.get("pid") == os.getpid():
            found.append(runs / name)
    return found


def _keep_report(run_dir: Path, workdir: Path, name: str) -> Path | None:
    """Copy the run's validation report to :func:`report_dir` (each file written whole); its .md path."""
    if not all((run_dir / f).is_file() for f in _REPORTS):
        return None
    target = report_dir(workdir, name)
    target.mkdir(parents=True, exist_ok=True)
    for f in _REPORTS:
        tmp = target / f".{f}.tmp-{os.getpid()}"
        shutil.copyfile(run_dir / f, tmp)
        tmp.replace(target / f)
    return target / "validation_report.md"


__all__ = ["ValidateOutcome", "report_dir", "validate_only"]
