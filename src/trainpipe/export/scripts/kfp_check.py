"""Load a compiled Kubeflow pipeline spec with kfp's own loader and print, as one JSON line, each task's
dependencies, artifact inputs, image, resources, retries, caching and timeout. Runs in the kfp virtual
environment, never in trainpipe's."""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    path = sys.argv[1]
    import yaml
    from kfp import components

    loaded = components.load_component_from_file(path)  # kfp's own parser: raises on a bad spec
    with open(path) as handle:
        docs = list(yaml.safe_load_all(handle))
    spec: dict[str, Any] = docs[0]
    platforms = docs[1].get("platforms", {}) if len(docs) > 1 and docs[1] else {}
    deadlines = platforms.get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    executors = spec["deploymentSpec"]["executors"]
    tasks: dict[str, Any] = {}
    groups = [spec["root"]["dag"]["tasks"]] + [c["dag"]["tasks"] for c in spec["components"].values() if "dag" in c]
    all_tasks = {k: v for g in groups for k, v in g.items()}
    shown = {k: v.get("taskInfo", {}).get("name", k) for k, v in all_tasks.items()}
    for key, task in all_tasks.items():
        ref = task.get("componentRef", {}).get("name", "")
        component = spec["components"].get(ref, {})
        if "dag" in component:
            continue
        executor = executors.get(component.get("executorLabel", ""), {}).get("container", {})
        artifacts = task.get("inputs", {}).get("artifacts", {})
        tasks[shown[key]] = {
            "depends_on": sorted(shown.get(d, d) for d in task.get("dependentTasks", [])),
            "reads": sorted(shown.get(a["taskOutputArtifact"]["producerTask"], "") for a in artifacts.values()
                            if "taskOutputArtifact" in a),
            "image": executor.get("image"),
            "command": executor.get("command", []) + executor.get("args", []),
            "resources": executor.get("resources", {}),
            "retries": task.get("retryPolicy", {}).get("maxRetryCount", 0),
            "backoff": task.get("retryPolicy", {}).get("backoffDuration"),
            "cache": task.get("cachingOptions", {}).get("enableCache", False),
            "timeout": deadlines.get(component.get("executorLabel", ""), {}).get("activeDeadlineSeconds"),
            "exit_handler": bool(task.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"),
        }
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    print(json.dumps({"name": loaded.name, "tasks": tasks, "parameters": params}, default=str))


if __name__ == "__main__":
    main()
