"""Reading past pipeline runs back from MLflow for ``trainpipe runs``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rich.table import Table

from trainpipe._exceptions import ConfigError
from trainpipe._format import format_number

_LINEAGE = ("config_hash", "data_fingerprint", "git.commit", "git.dirty", "trigger", "trainpipe.version",
            "python", "host", "user", "trainpipe.profile", "trainpipe.run_dir", "trainpipe.orchestrator",
            "airflow.dag_id", "airflow.run_id", "kubeflow.run_id")


def store(tracking_uri: str | None) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from trainpipe.tracking._mlflow import bound_http_defaults

    bound_http_defaults()
    from mlflow.tracking import MlflowClient

    from trainpipe.tracking import resolve_tracking_uri

    uri = tracking_uri or resolve_tracking_uri(None, Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise ConfigError(f"no tracking store at {uri}. Run a pipeline here first, or pass --tracking-uri.")
    return MlflowClient(tracking_uri=uri)


def mark_killed(client: Any, workdir: Path | None = None) -> list[str]:
    """Runs of this working directory whose process on this host died (SIGKILL): KILLED, here and in the store."""
    from trainpipe.tracking._stale import mark_killed_runs

    return mark_killed_runs((workdir or Path.cwd()) / ".trainpipe", client)


def _pipeline_runs(client: Any, pipeline: str | None, limit: int) -> list[Any]:
    from mlflow.entities import ViewType

    exps = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    if not exps:
        return []
    from trainpipe.registry._filters import equals

    query = "tags.`trainpipe.kind` = 'pipeline'"
    by_name = equals("tags.`trainpipe.pipeline`", pipeline) if pipeline else None
    if by_name:  # quoted so that any name works (None: a name with both quote kinds, matched below)
        query += f" and {by_name}"
    found = client.search_runs([e.experiment_id for e in exps], filter_string=query,
                               max_results=limit if by_name or not pipeline else 50_000,
                               order_by=["attributes.start_time DESC"])
    return [r for r in found if not pipeline or r.data.tags.get("trainpipe.pipeline") == pipeline][:limit]


def _get(client: Any, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        found = _by_prefix(client, run_id)
        if found is not None:
            return found
        raise ConfigError(f"run {run_id!r} was not found in the tracking store ({client.tracking_uri}). "
                          "List runs with: trainpipe runs list") from exc


def _by_prefix(client: Any, prefix: str) -> Any:
    """The one run whose id starts with ``prefix`` (``runs compare`` shows 12 characters), or None."""
    import re

    if not re.fullmatch(r"[0-9a-f]{6,31}", prefix):
        return None
    exps = client.search_experiments()
    matches = [r for r in client.search_runs([e.experiment_id for e in exps], max_results=50_000)
               if r.info.run_id.startswith(prefix)] if exps else []
    if len(matches) > 1:
        raise ConfigError(f"run id {prefix!r} is the start of {len(matches)} runs "
                          f"({', '.join(r.info.run_id for r in matches[:5])}); give more of it.")
    return matches[0] if matches else None


def _headline(metrics: dict[str, float]) -> str:
    for key in ("test_roc_auc", "test_r2", "test_accuracy", "test_rmse"):
        if key in metrics:
            return f"{key[5:]}={format_number(metrics[key])}"
    return ""


KINDS = ("run", "tune", "reproduce", "step", "sync")
COMMAND_TAG = "trainpipe.command"


def run_kind(tags: dict[str, str], metrics: dict[str, float]) -> str:
    """What made a pipeline run: ``run``, ``tune``, ``reproduce`` (the ``trainpipe.command`` tag; runs recorded
    before it existed are told apart by their other records), with ``, synced`` for a run uploaded later by
    ``trainpipe runs sync``."""
    kind = tags.get(COMMAND_TAG, "")
    if kind not in KINDS:
        if tags.get("trainpipe.reproduces"):
            kind = "reproduce"
        elif "step_tune_seconds" in metrics and "step_train_seconds" not in metrics:
            kind = "tune"
        else:
            kind = "run"
    return f"{kind}, synced" if tags.get("trainpipe.synced_from") and kind != "sync" else kind


def _tune_best(client: Any, run: Any) -> str:
    """``best METRIC=VALUE`` of the study a run's tune step ran (its step run's records), or ""."""
    from trainpipe.registry._filters import equals

    parent = equals("tags.`mlflow.parentRunId`", run.info.run_id)
    if parent is None:
        return ""
    found = client.search_runs([run.info.experiment_id], filter_string=f"{parent} and tags.`trainpipe.step` = 'tune'",
                               max_results=1)
    if not found or "best_value" not in found[0].data.metrics:
        return ""
    metric = found[0].data.params.get("tuning_metric", "value")
    return f"best {metric}={format_number(found[0].data.metrics['best_value'])}"


def _trigger(tags: dict[str, str]) -> str:
    """``schedule``, or ``schedule (airflow)`` for a run an orchestrator started."""
    orchestrator = tags.get("trainpipe.orchestrator", "")
    return tags.get("trigger", "") + (f" ({orchestrator})" if orchestrator else "")


def list_table(client: Any, pipeline: str | None, limit: int) -> Table:
    import datetime as dt

    table = Table(title="pipeline runs")
    table.add_column("run id", no_wrap=True)
    for col in ("pipeline", "kind", "started", "status", "trigger", "model", "headline metric", "seconds"):
        table.add_column(col)
    for r in _pipeline_runs(client, pipeline, limit):
        started = dt.datetime.fromtimestamp(r.info.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")
        kind = run_kind(r.data.tags, r.data.metrics)
        headline = _headline(r.data.metrics)
        if not headline and kind.startswith("tune"):
            headline = _tune_best(client, r)
        table.add_row(r.info.run_id, r.data.tags.get("trainpipe.pipeline", ""), kind, started, r.info.status,
                      _trigger(r.data.tags), r.data.params.get("model.type", ""),
                      headline, f"{r.data.metrics.get('total_seconds', 0.0):.1f}")
    return table


def show(client: Any, run_id: str) -> list[Any]:
    r = _get(client, run_id)
    head = Table(title=f"run {run_id} ({r.data.tags.get('trainpipe.pipeline', '')}) — {r.info.status}")
    head.add_column("lineage")
    head.add_column("value")
    for key in _LINEAGE:
        if key in r.data.tags:
            head.add_row(key, r.data.tags[key])
    params = Table(title="params")
    params.add_column("param")
    params.add_column("value")
    for k in sorted(r.data.params):
        params.add_row(k, r.data.params[k])
    metrics = Table(title="metrics")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for k in sorted(r.data.metrics):
        metrics.add_row(k, format_number(r.data.metrics[k]))
    out: list[Any] = [head, params, metrics]
    steps = _steps(client, run_id)
    if steps:
        table = Table(title="steps")
        for col in ("step", "status", "seconds", "reason"):
            table.add_column(col)
        for s in steps:
            table.add_row(s["name"], s["status"], f"{s['seconds']:.2f}", s["reason"])
        out.append(table)
    return out


def _steps(client: Any, run_id: str) -> list[dict[str, Any]]:
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "steps.json", tmp)
        except (MlflowException, OSError):
            return []
        return list(json.loads(Path(path).read_text()))


def compare(client: Any, run_ids: list[str], all_params: bool) -> Table:
    if len(run_ids) < 2:
        raise ConfigError("runs compare: give at least two run ids.")
    runs = [_get(client, rid) for rid in run_ids]
    table = Table(title="run comparison")
    table.add_column("")
    for r in runs:
        table.add_column(r.info.run_id[:12], justify="right")
    keys = sorted(set().union(*(r.data.params for r in runs)))
    for k in keys:
        values = [r.data.params.get(k, "—") for r in runs]
        if all_params or len(set(values)) > 1:
            table.add_row(f"[bold]{k}[/]", *values)
    table.add_section()
    metric_keys = sorted(set().union(*(r.data.metrics for r in runs)))
    for k in metric_keys:
        table.add_row(k, *(format_number(r.data.metrics[k]) if k in r.data.metrics else "—" for r in runs))
    return table
