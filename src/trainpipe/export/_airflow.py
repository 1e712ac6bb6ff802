"""``trainpipe export airflow``: the step graph as one self-contained Airflow 3 DAG file.

The file is written as text (trainpipe never imports Airflow): a fixed block of DAG code and, embedded in it,
the plan (``_plan.build_plan``: the graph of ``trainpipe graph`` with each step's retries, timeout and
resources, the schedule and the asset). The config itself is referenced by its absolute path, read when a run
opens: the worker (or the container, which mounts the project at the same path) must see the project folder.

Every task runs the ``trainpipe`` command with a fixed argument list; values that come from the run (its id,
its params) reach it as arguments of a list (Docker, Kubernetes) or environment variables (Bash), never
spliced into a shell line. Airflow renders those arguments and the environment as Jinja templates when a task
starts, so every value the file embeds for them (--env, --workdir, --image, --set, ...) is checked to be plain
text first (:func:`check_literals`: no ``{{``/``{%``/``{#``, no template-file extension); the export's ``--set``
and ``--profile`` become open_run's arguments, so every run applies them.
"""

from __future__ import annotations

import pprint
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError

MODES = ("bash", "docker", "kubernetes")

DAG_TEMPLATE = '''\
"""Airflow DAG of the trainpipe pipeline {pipeline!r}: written by `trainpipe export airflow`; do not edit it,
export it again after changing the pipeline file. Tasks: open_run, one per step of `trainpipe graph`, close_run.
Execution mode: {mode}."""

from __future__ import annotations

import datetime
import re

from airflow.sdk import DAG, Asset, Param, TriggerRule

PLAN = {plan}


def _run_dir(run_id: str) -> str:
    """The run directory of one DAG run (trainpipe.export.run_dir_name: the run id, sanitised)."""
    name = re.sub(r"[^A-Za-z0-9_.\\-]+", "_", run_id).strip("._-")[:100] or "run"
    return ".trainpipe/runs/airflow-" + name


def _schedule():
    cron, asset = PLAN["schedule"], PLAN["asset"]
    if asset and cron:
        from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

        return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[Asset(asset)])
    if asset:
        return [Asset(asset)]
    return cron


RUN_DIR = "{{{{ run_id | trainpipe_run_dir }}}}"
ENV = {{
    "TRAINPIPE_OVERRIDES": "{{{{ params.overrides | tojson }}}}",
    "TRAINPIPE_FAST_EXIT": "1",
    **PLAN["env"],
}}


def _operator(task_id, args, spec, **extra):
    """One task running `trainpipe ARGS` (exit 4, the gate's refusal, skips it: register is skipped too)."""
    common = dict(task_id=task_id, retries=spec["retries"],
                  retry_delay=datetime.timedelta(seconds=spec["retry_delay"]),
                  execution_timeout=datetime.timedelta(seconds=spec["timeout"]), skip_on_exit_code=[4],
                  doc_md=spec.get("description") or None, **extra)
    mode = PLAN["mode"]
    if mode == "bash":
        from airflow.providers.standard.operators.bash import BashOperator

        env = dict(ENV, **{{f"TRAINPIPE_ARG_{{i}}": a for i, a in enumerate(args)}})
        line = " ".join(f'"$TRAINPIPE_ARG_{{i}}"' for i in range(len(args)))
        return BashOperator(bash_command=f'exec "$TRAINPIPE_BIN" {{line}}',
                            env=dict(env, TRAINPIPE_BIN=PLAN["trainpipe"]), append_env=True, cwd=PLAN["workdir"],
                            **common)
    if mode == "docker":
        from airflow.providers.docker.operators.docker import DockerOperator
        from docker.types import Mount

        return DockerOperator(image=PLAN["image"], command=list(args), environment=dict(ENV),
                              mounts=[Mount(source=PLAN["workdir"], target=PLAN["workdir"], type="bind")],
                              working_dir=PLAN["workdir"], mount_tmp_dir=False, auto_remove="success", **common)
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    resources = spec.get("resources") or {{}}
    requests = {{k: str(resources[k]) for k in ("cpu", "memory") if resources.get(k)}}
    limits = {{resources["accelerator"]: str(resources["gpu"])}} if resources.get("gpu") else {{}}
    claim = PLAN["volume_claim"]
    return KubernetesPodOperator(
        name=("trainpipe-" + task_id).replace("_", "-"), image=PLAN["image"],
        cmds=["sh", "-c", 'cd "$TRAINPIPE_WORKDIR" && exec trainpipe "$@"', "trainpipe"], arguments=list(args),
        env_vars=dict(ENV, TRAINPIPE_WORKDIR=PLAN["workdir"]), namespace=PLAN["namespace"],
        container_resources=k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None),
        volumes=[k8s.V1Volume(name="project", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
            claim_name=claim))],
        volume_mounts=[k8s.V1VolumeMount(name="project", mount_path=PLAN["workdir"])],
        get_logs=True, on_finish_action="delete_pod", **common)


with DAG(
    dag_id=PLAN["dag_id"],
    description=PLAN["description"] or None,
    schedule=_schedule(),
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["trainpipe", PLAN["pipeline"]],
    params={{"overrides": Param({{}}, type="object", description="--set overrides for this run, e.g. "
                                "{{\\"model.params.max_depth\\": 8}}; checked by open_run before any step")}},
    user_defined_filters={{"trainpipe_run_dir": _run_dir}},
    doc_md=__doc__,
) as dag:
    defaults = PLAN["defaults"]
    opened = _operator("open_run", ["orchestrate", "open", PLAN["config"], "--run-dir", RUN_DIR,
                                    "--orchestrator", "airflow", "--run-type", "{{{{ dag_run.run_type }}}}",
                                    "--id", "dag_id={{{{ dag.dag_id }}}}", "--id", "run_id={{{{ run_id }}}}",
                                    *PLAN.get("open_args", [])], defaults)
    tasks = {{}}
    for step in PLAN["steps"]:
        tasks[step["name"]] = _operator(step["name"], ["step", step["name"], "--run-dir", RUN_DIR], step)
    closed = _operator("close_run", ["orchestrate", "close", "--run-dir", RUN_DIR], defaults,
                       trigger_rule=TriggerRule.ALL_DONE)
    for step in PLAN["steps"]:
        inside = [u for u in step["upstream"] if u in tasks]
        for upstream in inside:
            tasks[upstream] >> tasks[step["name"]]
        if not inside:
            opened >> tasks[step["name"]]
        tasks[step["name"]] >> closed
'''


def dag_id_of(pipeline: str) -> str:
    return "trainpipe_" + "".join(c if c.isalnum() or c in "_-." else "_" for c in pipeline)


# Airflow renders an operator's templated fields (bash_command, env, cwd, image, command, arguments, env_vars,
# namespace, volumes, ...) with Jinja when a task runs, and reads a value ending in one of the operator's
# template_ext (BashOperator: .sh, .bash; DockerOperator: .env too) as the NAME of a template file. A value the
# DAG file embeds for such a field must hold neither: it would be run as a template (``{{ conn.db.password }}``
# in an --env value would put a connection's password into every task's environment).
_JINJA_MARKS = ("{{", "{%", "{#")  # what opens an expression, a statement, a comment
_TEMPLATE_EXT = (".sh", ".bash", ".env")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = ("TRAINPIPE_OVERRIDES", "TRAINPIPE_FAST_EXIT", "TRAINPIPE_BIN", "TRAINPIPE_WORKDIR")


def _literal(what: str, value: str | None) -> None:
    """ConfigError (exit 2) for a value Airflow would render as a Jinja template or read as a template file."""
    if value is None:
        return
    marks = [m for m in _JINJA_MARKS if m in value]
    if marks:
        raise ConfigError(f"{what}: {value!r} holds {marks[0]!r}; Airflow renders the tasks' arguments and "
                          "environment as Jinja templates, so this text would run as a template when the task "
                          "starts. Remove the braces (set such values in the workers' environment instead).")
    if value.strip().endswith(_TEMPLATE_EXT):
        raise ConfigError(f"{what}: {value!r} ends with {value.strip().rsplit('.', 1)[-1]!r}; Airflow reads a task "
                          f"value ending in {', '.join(_TEMPLATE_EXT)} as the name of a template file to render, "
                          "not as text. Rename it, or set it in the workers' environment instead.")


_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/:@+]{0,254}$")  # [registry[:port]/]name[:tag][@digest]


def check_image(image: str | None) -> None:
    """ConfigError (exit 2) unless ``image`` looks like a container image reference (no spaces, quotes, braces)."""
    if image is not None and not _IMAGE.match(image):
        raise ConfigError(f"--image: expected a container image reference such as registry.example/trainpipe:0.1.0 "
                          f"(letters, digits and . _ - / : @ +), got {image!r}.")


def check_literals(plan: dict[str, Any], *, image: str | None, trainpipe: str, volume_claim: str, namespace: str,
                   env: dict[str, str]) -> None:
    """Every value the DAG hands to an operator's templated fields is plain text (see :func:`_literal`), and every
    --env name is an environment variable name."""
    _literal("--workdir (the project folder)", plan["workdir"])
    _literal("the pipeline file's path", plan["config"])
    _literal("the trainpipe command", trainpipe)
    check_image(image)
    _literal("--volume-claim", volume_claim)
    _literal("--namespace", namespace)
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise ConfigError(f"--env {key!r}: expected an environment variable name (letters, digits and '_', "
                              "not starting with a digit).")
        if key in _RESERVED_ENV or key.startswith("TRAINPIPE_ARG_"):
            raise ConfigError(f"--env {key}: the DAG sets this variable itself (the run's overrides, the command and "
                              "its arguments); choose another name.")
        _literal(f"--env {key}", value)


def open_args(profile: str | None, overrides: Sequence[str]) -> list[str]:
    """The export's ``--profile`` and ``--set`` as arguments of open_run (every run of the DAG applies them, as the
    plan did); a secret among them is refused: the DAG file is not the place for one."""
    from trainpipe.config._secrets import is_secret_name, scrub

    args: list[str] = []
    if profile:
        _literal("--profile", profile)
        args += ["--profile", profile]
    for item in overrides:
        key = item.partition("=")[0]
        if is_secret_name(key) or scrub(item) != item:
            raise ConfigError(f"--set {key}=...: a secret (its name or its value looks like one); the exported DAG "
                              "file would hold it in clear text. Write ${NAME} in the pipeline file and set NAME in "
                              "the workers' environment instead.")
        _literal(f"--set {key}", item)
        args += ["--set", item]
    return args


def render_dag(plan: dict[str, Any], *, mode: str = "bash", image: str | None = None, trainpipe: str = "trainpipe",
               volume_claim: str = "trainpipe-project", namespace: str = "default",
               env: dict[str, str] | None = None, profile: str | None = None, overrides: Sequence[str] = ()) -> str:
    """The DAG file's text for a plan (``_plan.build_plan``); ``profile`` and ``overrides`` (the export's
    ``--profile`` and ``--set``) are applied by every run's open_run."""
    if mode not in MODES:
        raise ConfigError(f"export mode: expected one of {', '.join(MODES)}, got {mode!r}.")
    if mode != "bash" and not image:
        raise ConfigError(f"the {mode} mode runs the trainpipe image: give --image IMAGE.")
    check_literals(plan, image=image, trainpipe=trainpipe, volume_claim=volume_claim, namespace=namespace,
                   env=dict(env or {}))
    embedded = {**plan, "mode": mode, "image": image, "trainpipe": trainpipe, "volume_claim": volume_claim,
                "namespace": namespace, "dag_id": dag_id_of(plan["pipeline"]), "env": dict(env or {}),
                "open_args": open_args(profile, overrides)}
    embedded.pop("graph", None)  # the steps (with their upstream) are the graph; the rest is documentation
    text = pprint.pformat(embedded, indent=4, width=116, sort_dicts=False)
    return DAG_TEMPLATE.format(pipeline=plan["pipeline"], mode=mode, plan=text)


def dag_mermaid(plan: dict[str, Any]) -> str:
    """The exported DAG as a Mermaid flowchart: open_run, the steps with the graph's edges, close_run."""
    def node(name: str) -> str:
        return "".join(c if c.isalnum() or c == "_" else "_" for c in name)

    steps = plan["steps"]
    lines = ["flowchart LR", '    open_run(["open_run<br/><i>config + overrides checked, MLflow run</i>"])']
    for s in steps:
        extra = [f"retries {s['retries']}"] + (["GPU"] if s["resources"].get("gpu") else [])
        lines.append(f'    {node(s["name"])}["{s["name"]}<br/><i>{", ".join(extra)}</i>"]')
    lines.append('    close_run(["close_run<br/><i>all done: FINISHED / FAILED</i>"])')
    names = {s["name"] for s in steps}
    for s in steps:
        inside = [u for u in s["upstream"] if u in names]
        for u in inside:
            lines.append(f"    {node(u)} --> {node(s['name'])}")
        if not inside:
            lines.append(f"    open_run --> {node(s['name'])}")
    leaves = [s["name"] for s in steps if not any(s["name"] in t["upstream"] for t in steps)]
    lines += [f"    {node(n)} -.-> close_run" for n in leaves]
    return "\n".join(lines)


def dag_file_name(pipeline: str) -> str:
    return f"{dag_id_of(pipeline)}.py"


def write_dag(text: str, out_dir: Path, pipeline: str) -> Path:
    """Write the DAG into ``out_dir`` (created), atomically: a DAG folder's parser never sees half a file."""
    target = out_dir / dag_file_name(pipeline)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        tmp.replace(target)
    except (FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        raise ConfigError(f"-o {out_dir}: cannot write the DAG file there ({exc.strerror or exc}); -o names the DAG "
                          "folder to write into (created if missing).") from None
    return target


__all__ = ["DAG_TEMPLATE", "MODES", "check_image", "check_literals", "dag_file_name", "dag_id_of", "dag_mermaid",
           "open_args", "render_dag", "write_dag"]
