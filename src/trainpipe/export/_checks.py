"""``--check``: load a written DAG or pipeline spec with the orchestrator's own parser (in its own venv)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError


def airflow_dagbag(folder: Path) -> dict[str, Any]:
    """DagBag's view of a DAG folder: ``{"errors": {file: error}, "dags": {dag_id: tasks, schedule, ...}}``."""
    from trainpipe.export._engines import run_script

    return run_script("airflow", "airflow_check.py", str(folder), timeout=300)


def check_airflow(path: Path) -> str:
    """A line for the user; ConfigError (exit 2) with Airflow's own import error when the DAG does not load."""
    parsed = airflow_dagbag(path.parent)
    errors = {f: e for f, e in parsed["errors"].items() if Path(f).name == path.name}
    if errors:
        raise ConfigError(f"Airflow could not load {path}:\n" + "\n".join(errors.values()))
    dags = {d: v for d, v in parsed["dags"].items() if Path(v["fileloc"]).name == path.name}
    if not dags:
        raise ConfigError(f"Airflow loaded {path} but found no DAG in it.")
    shown = "; ".join(f"{d}: {len(v['tasks'])} tasks, {v['timetable']}" for d, v in dags.items())
    return f"check: Airflow's DagBag loads {path.name} with no import errors ({shown})"


def kubeflow_spec(path: Path) -> dict[str, Any]:
    """The compiled spec read back by kfp: components, their images, tasks and dependencies."""
    from trainpipe.export._engines import run_script

    return run_script("kfp", "kfp_check.py", str(path), timeout=300)


def check_kubeflow(path: Path) -> str:
    parsed = kubeflow_spec(path)
    return (f"check: kfp loads {path.name} as pipeline {parsed['name']!r} with {len(parsed['tasks'])} tasks "
            f"and no errors")


__all__ = ["airflow_dagbag", "check_airflow", "check_kubeflow", "kubeflow_spec"]
