"""Render the step graph of a pipeline file as an Airflow DAG or a Kubeflow pipeline, and run the tasks that
open and close an orchestrated run (``trainpipe export``, ``trainpipe orchestrate``)."""

from trainpipe.export._airflow import MODES, dag_file_name, dag_id_of, render_dag, write_dag
from trainpipe.export._engines import engine_python
from trainpipe.export._plan import build_plan, check_orchestration, check_schedule
from trainpipe.export._run import (
    ClosedRun,
    OpenedRun,
    close_run,
    open_run,
    overrides_from_env,
    run_dir_name,
    trigger_of,
)

__all__ = [
    "MODES",
    "ClosedRun",
    "OpenedRun",
    "build_plan",
    "check_orchestration",
    "check_schedule",
    "close_run",
    "dag_file_name",
    "dag_id_of",
    "engine_python",
    "open_run",
    "overrides_from_env",
    "render_dag",
    "run_dir_name",
    "trigger_of",
    "write_dag",
]
