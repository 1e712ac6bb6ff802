"""Run a pipeline written with ``trainpipe export kubeflow --python-components`` on kfp's local
SubprocessRunner (no cluster): ``python kfp_local_run.py PIPELINE.py PIPELINE_ROOT [OVERRIDES_JSON]``.
Each component calls the trainpipe command named by ``TRAINPIPE_BIN``. Prints one JSON line."""

from __future__ import annotations

import json
import runpy
import sys


def main() -> None:
    source, root = sys.argv[1], sys.argv[2]
    overrides = sys.argv[3] if len(sys.argv) > 3 else "{}"
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, raise_on_error=False)
    module = runpy.run_path(source, run_name="trainpipe_kfp_pipeline")
    task = module["pipeline"](overrides=overrides)
    state = getattr(task, "state", None) or getattr(getattr(task, "_pipeline_task_status", None), "name", None)
    print(json.dumps({"ok": True, "state": str(state)}))


if __name__ == "__main__":
    main()
