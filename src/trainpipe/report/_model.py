"""The model page: every version of a registered model with its metrics and gate verdict, its current
aliases, and the alias history (the audit log of ``trainpipe models promote / rollback`` and registrations)
on a timeline."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError

MODEL_NAME_CHARS = 100


@dataclass
class ModelRecord:
    name: str
    store: str
    description: str
    versions: list[dict[str, Any]]  # version, created, aliases, run_id, gate_verdict, model_type, metrics, report
    metric_names: list[str]
    moves: list[dict[str, Any]]  # time, alias, from_version, to_version, user, reason, gate_verdict
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version


def _epoch(stamp: str) -> float:
    """``2026-11-29T08:09:03.123456Z`` (the audit log's UTC time) as epoch seconds."""
    try:
        head, _, frac = stamp.rstrip("Z").partition(".")
        return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) + (float(f"0.{frac}") if frac else 0.0)
    except ValueError:
        return 0.0


def load_model(name: str, tracking_uri: str, state_dir: Path) -> ModelRecord:
    """Model ``name`` as the MLflow registry at ``tracking_uri`` holds it; ConfigError (exit 2) when unknown."""
    if not name or len(name) > MODEL_NAME_CHARS or any(ord(ch) < 32 for ch in name):
        raise ConfigError(f"--model {name!r}: expected a registered model name (see `trainpipe models list`).")
    from mlflow.exceptions import MlflowException

    from trainpipe.config import redact_uri
    from trainpipe.registry._filters import search_model_versions
    from trainpipe.registry._registry import history, reader_for

    client = reader_for(tracking_uri)
    try:
        rm = client.get_registered_model(name)
    except MlflowException as exc:
        try:
            known = [m.name for m in client.search_registered_models(max_results=20)]
        except MlflowException:
            known = []
        raise ConfigError(f"--model {name!r}: no registered model of that name in {redact_uri(tracking_uri)}. "
                          f"Registered models: {', '.join(known) or 'none'} (see `trainpipe models list`).") from exc
    aliases = {str(a): str(v) for a, v in (rm.aliases or {}).items()}
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    versions, metric_names = [], []
    for mv in sorted(search_model_versions(client, name), key=lambda m: -int(m.version)):
        tags = dict(mv.tags or {})
        metrics = {k[len("test_"):]: float(v) for k, v in tags.items() if k.startswith("test_") and _is_number(v)}
        metric_names += [m for m in metrics if m not in metric_names]
        run_id = tags.get("run_id") or mv.run_id or ""
        report = state_dir / "runs" / run_id / "report.html" if run_id else None
        versions.append({"version": str(mv.version), "created": _when(mv.creation_timestamp),
                         "aliases": sorted(by_version.get(str(mv.version), [])), "run_id": run_id,
                         "gate_verdict": tags.get("gate_verdict", ""), "model_type": tags.get("model_type", ""),
                         "data_fingerprint": tags.get("data_fingerprint", ""), "git_commit": tags.get("git_commit", ""),
                         "metrics": metrics,
                         "report": str(report.resolve()) if report is not None and report.is_file() else ""})
    from trainpipe.config._secrets import scrub, scrub_strings

    moves = [{**scrub_strings(m.to_dict()), "t": _epoch(m.time)} for m in history(client, name)]
    return ModelRecord(name=name, store=redact_uri(tracking_uri), description=scrub((rm.description or "")[:2000]),
                       versions=versions, metric_names=metric_names, moves=moves, aliases=aliases)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000)) if ms else ""


__all__ = ["ModelRecord", "load_model"]
