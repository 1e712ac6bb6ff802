"""Load a DAG folder with Airflow's own parser (DagBag) and print, as one JSON line, the import errors and
each DAG's tasks, schedule and params. Runs in the Airflow virtual environment, never in trainpipe's."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any


def _task(t: Any) -> dict[str, Any]:
    resources = getattr(t, "container_resources", None)
    return {
        "operator": type(t).__name__,
        "upstream": sorted(t.upstream_task_ids),
        "retries": t.retries,
        "retry_delay": t.retry_delay.total_seconds() if t.retry_delay is not None else None,
        "timeout": t.execution_timeout.total_seconds() if t.execution_timeout is not None else None,
        "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
        "skip_on_exit_code": sorted(getattr(t, "skip_on_exit_code", None) or []),
        "image": getattr(t, "image", None),
        "resources": {"requests": getattr(resources, "requests", None), "limits": getattr(resources, "limits", None)}
        if resources is not None else None,
    }


def main() -> None:
    folder = sys.argv[1]
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="trainpipe-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    dags: dict[str, Any] = {}
    for dag_id, dag in bag.dags.items():
        timetable = dag.timetable
        inner = getattr(timetable, "timetable", timetable)
        condition = getattr(timetable, "asset_condition", None)
        dags[dag_id] = {
            "tasks": {t.task_id: _task(t) for t in dag.tasks},
            "timetable": type(timetable).__name__,
            "cron": getattr(inner, "expression", None) or getattr(inner, "_expression", None),
            "assets": sorted(a.uri for a in getattr(condition, "objects", [condition]) if hasattr(a, "uri"))
            if condition is not None else [],
            "params": {k: dag.params[k] for k in dag.params},
            "fileloc": dag.fileloc,
        }
    print(json.dumps({"errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": dags}, default=str))


if __name__ == "__main__":
    main()
