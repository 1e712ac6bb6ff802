"""``trainpipe export kubeflow``: the step graph as a Kubeflow Pipelines v2 spec, compiled by the real kfp SDK.

trainpipe writes the pipeline as a Python file (``<output>.py``, beside the spec: read it, or compile it again
yourself) and compiles it with the kfp of its own virtual environment (``_engines.engine_python("kfp")``):
kfp pins protobuf<7 and an old requests, so it is never imported here.

The pipeline: ``open-run`` (the config, embedded, checked with the ``overrides`` pipeline parameter; the
MLflow parent run), one component per step of ``trainpipe graph`` reading the artifacts of the steps it
depends on (each step's folder is an artifact: no shared volume), ``close-run`` after the last step, and an
exit handler that marks the parent run FAILED when the pipeline stops early. Per step: retries with a
back-off, the timeout (kfp-kubernetes), CPU/memory requests and the GPU limit and accelerator type of the
``orchestration:`` section, caching on for steps and off for open/close.

``python_components=True`` writes lightweight Python components instead of container components; they call
the same ``trainpipe orchestrate kfp-...`` commands (``TRAINPIPE_BIN``) and are what kfp's local
``SubprocessRunner`` can run (it runs Python components only).
"""

from __future__ import annotations

import pprint
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainpipe.config import LoadedConfig

_IDENT = re.compile(r"[^A-Za-z0-9_]")
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}")

HEADER = '''\
"""Kubeflow pipeline of the trainpipe pipeline {pipeline!r}: written by `trainpipe export kubeflow`; do not edit,
export again after changing the pipeline file. Compile: python THIS_FILE OUTPUT.yaml (with kfp==2.17)."""

import json
import sys

from kfp import compiler, dsl

IMAGE = {image!r}
CONFIG = {config!r}
BASE_DIR = {base_dir!r}
PLAN = {plan}
'''

CONTAINER = '''

@dsl.container_component
def {func}({params}):
    return dsl.ContainerSpec(image=IMAGE, command=["trainpipe"], args=[{args}])
'''

PYTHON = '''

@dsl.component(base_image=IMAGE)
def {func}({params}):
    import os
    import subprocess

    done = subprocess.run([os.environ.get("TRAINPIPE_BIN", "trainpipe"), {args}])
    if done.returncode != 0:
        raise RuntimeError(f"trainpipe exited with {{done.returncode}} (4: the gate refused the model)")
'''

FOOTER = '''

def _ident(name):
    return "s_" + "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def _settings(task, spec, cache=True):
    task.set_caching_options(cache)
    task.set_retry(num_retries=spec["retries"], backoff_duration=f"{spec['retry_delay']}s")
    resources = spec.get("resources") or {}
    if resources.get("cpu"):
        task.set_cpu_request(str(resources["cpu"]))
    if resources.get("memory"):
        task.set_memory_request(str(resources["memory"]))
    if resources.get("gpu"):
        task.set_accelerator_type(resources["accelerator"]).set_accelerator_limit(int(resources["gpu"]))
    try:
        from kfp import kubernetes
    except ImportError:  # kfp-kubernetes not installed: no per-step timeout in the spec
        return task
    kubernetes.set_timeout(task, int(spec["timeout"]))
    return task


@dsl.pipeline(name=PLAN["name"], description=PLAN["description"] or None)
def pipeline(overrides: str = "{}"):
    failed = _kfp_failed(config=CONFIG, job=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
    failed.set_caching_options(False)
    with dsl.ExitHandler(failed, name="trainpipe-run"):
        opened = _settings(_open_run(config=CONFIG, overrides=overrides, job=dsl.PIPELINE_JOB_NAME_PLACEHOLDER),
                           PLAN["defaults"], cache=False)
        opened.set_display_name("open_run")
        tasks = {}
        for step in PLAN["steps"]:
            reads = {_ident(u): tasks[u].outputs["out"] for u in step["upstream"] if u in tasks}
            task = COMPONENTS[step["name"]](run=opened.outputs["run"], **reads)
            tasks[step["name"]] = _settings(task, step)
            task.set_display_name(step["name"])
        closing = _close_run(run=opened.outputs["run"], **{_ident(n): t.outputs["out"] for n, t in tasks.items()})
        _settings(closing, PLAN["defaults"], cache=False).set_display_name("close_run")


if __name__ == "__main__":
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=sys.argv[1])
    print(json.dumps({"compiled": sys.argv[1], "steps": [s["name"] for s in PLAN["steps"]]}))
'''


def _ident(name: str) -> str:
    return "s_" + _IDENT.sub("_", name)


def _component(func: str, params: list[str], args: list[str], python: bool) -> str:
    body = PYTHON if python else CONTAINER
    return body.format(func=func, params=", ".join(params), args=", ".join(args))


def render_pipeline(plan: dict[str, Any], *, config_text: str, image: str, python_components: bool = False) -> str:
    """The kfp pipeline source for a plan (``_plan.build_plan``)."""
    embedded = {"name": re.sub(r"[^a-z0-9-]+", "-", plan["pipeline"].lower()).strip("-") or "trainpipe",
                "description": plan["description"], "steps": plan["steps"], "defaults": plan["defaults"]}
    shown = pprint.pformat(embedded, indent=1, width=116, sort_dicts=False)
    parts = [HEADER.format(pipeline=plan["pipeline"], image=image, config=config_text,
                           base_dir=str(Path(plan["config"]).parent), plan=shown)]
    art_in, art_out = "dsl.Input[dsl.Artifact]", "dsl.Output[dsl.Artifact]"
    python = python_components

    def path(name: str) -> str:  # an artifact's local path, in both component kinds
        return name + ".path"

    parts.append(_component("_open_run", ["config: str", "overrides: str", "job: str", f"run: {art_out}"],
                            ['"orchestrate"', '"kfp-open"', '"--config-text"', "config", '"--overrides"', "overrides",
                             '"--job"', "job", '"--base-dir"', repr(str(Path(plan["config"]).parent)),
                             '"--output"', path("run")], python))
    parts.append(_component("_kfp_failed", ["config: str", "job: str"],
                            ['"orchestrate"', '"kfp-failed"', '"--config-text"', "config", '"--job"', "job"], python))
    names = []
    for step in plan["steps"]:
        func = "_step" + _ident(step["name"])[1:]
        reads = [u for u in step["upstream"] if any(s["name"] == u for s in plan["steps"])]
        params = [f"run: {art_in}", *(f"{_ident(u)}: {art_in}" for u in reads), f"out: {art_out}"]
        args = ['"orchestrate"', '"kfp-step"', repr(step["name"]), '"--run"', path("run")]
        for u in reads:
            args += ['"--from"', repr(u), '"--path"', path(_ident(u))]
        args += ['"--output"', path("out")]
        parts.append(_component(func, params, args, python))
        names.append((step["name"], func))
    every = [s["name"] for s in plan["steps"]]
    close_args = ['"orchestrate"', '"kfp-close"', '"--run"', path("run")]
    for n in every:
        close_args += ['"--from"', repr(n), '"--path"', path(_ident(n))]
    parts.append(_component("_close_run", [f"run: {art_in}", *(f"{_ident(n)}: {art_in}" for n in every)],
                            close_args, python))
    parts.append("\n\nCOMPONENTS = {" + ", ".join(f"{n!r}: {f}" for n, f in names) + "}\n")
    parts.append(FOOTER)
    return "".join(parts)


_MARK = '"""Kubeflow pipeline of the trainpipe pipeline '  # how every file render_pipeline writes starts


def check_output(output: Path) -> Path:
    """The ``<output>.py`` written beside the spec; ConfigError (exit 2) when ``-o`` is not a YAML file name or
    when that ``.py`` exists and was not written by ``trainpipe export kubeflow`` (it would be overwritten)."""
    from trainpipe._exceptions import ConfigError

    if output.suffix.lower() not in (".yaml", ".yml", ".json") or output.is_dir():
        raise ConfigError(f"-o {output}: expected the pipeline spec's file name ending in .yaml (e.g. "
                          "pipeline.kfp.yaml); the pipeline's Python source is written beside it as .py.")
    source = output.with_suffix(".py")
    if source.exists():
        try:
            ours = source.is_file() and source.read_text(errors="replace").startswith(_MARK)
        except OSError:
            ours = False
        if not ours:
            raise ConfigError(f"-o {output}: {source} exists and was not written by trainpipe export kubeflow; "
                              "it would be overwritten by the pipeline's source. Choose another -o name.")
    return source


def clear_secrets(value: Any, key: str = "") -> list[str]:
    """The config keys (dotted) whose value is a secret in clear text: a secret-named key that is not a
    ``${NAME}`` placeholder, or a value that looks like one (a URI password, a token, ``API_KEY=...``)."""
    from trainpipe.config._secrets import is_secret_name, scrub

    if isinstance(value, dict):
        return [k for name, item in value.items() for k in clear_secrets(item, f"{key}.{name}" if key else name)]
    if isinstance(value, list):
        return [k for i, item in enumerate(value) for k in clear_secrets(item, f"{key}[{i}]")]
    if not isinstance(value, str) or not value:
        return []
    bare = _PLACEHOLDER.sub("", value)  # what is left once the ${NAME} the pods resolve are taken out
    leaf = key.rsplit(".", 1)[-1]
    if (is_secret_name(leaf) and bare.strip() and bare != "***") or scrub(bare) != bare:
        return [key]
    return []


def compile_pipeline(loaded: LoadedConfig, output: Path, *, image: str, python_components: bool = False) -> Path:
    """Write ``<output>.py`` and compile it to ``output`` with the kfp virtual environment's Python."""
    import yaml

    from trainpipe.config._secrets import env_placeholders
    from trainpipe.export._airflow import check_image
    from trainpipe.export._engines import run_script
    from trainpipe.export._plan import build_plan

    check_image(image)
    plan = build_plan(loaded, workdir=loaded.base_dir, config_path=loaded.path or loaded.base_dir / "pipeline.yaml")
    # the resolved config, secrets back to the ${NAME} they came from (read from each pod's environment)
    dump = env_placeholders(loaded.config.model_dump(mode="json"), loaded.secret_values)
    clear = clear_secrets(dump)
    if clear:
        from trainpipe._exceptions import ConfigError

        raise ConfigError(f"{', '.join(clear)}: a secret written in the pipeline file or given with --set; the "
                          "exported pipeline embeds the config, so it would hold the secret in clear text. Write "
                          "${NAME} there instead and give NAME to the pods' environment (a Kubernetes secret).")
    text = render_pipeline(plan, config_text=yaml.safe_dump(dump, sort_keys=False), image=image,
                           python_components=python_components)
    output = output.resolve()
    source = check_output(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(text)
    except (FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        from trainpipe._exceptions import ConfigError

        raise ConfigError(f"-o {output}: cannot write there ({exc.strerror or exc}).") from None
    tmp = output.with_name(f".{output.stem}.tmp.yaml")
    run_script("kfp", str(source), str(tmp), timeout=300)
    tmp.replace(output)
    return output


__all__ = ["check_output", "clear_secrets", "compile_pipeline", "render_pipeline"]
