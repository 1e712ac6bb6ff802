"""``trainpipe export ...`` (write the step graph as an Airflow DAG or a Kubeflow pipeline) and ``trainpipe
orchestrate ...`` (the first and last task of an exported DAG: open and close one run)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from trainpipe._cli_common import ConfigArg, DebugOpt, ProfileOpt, SetOpt, _guard, err, out

export_app = typer.Typer(help="Write the step graph as an Airflow DAG or a Kubeflow pipeline.", no_args_is_help=True)
orchestrate_app = typer.Typer(help="The tasks an exported DAG runs around the steps (open and close one run).",
                              no_args_is_help=True)

ImageOpt = Annotated[str | None, typer.Option("--image", help="The trainpipe image the tasks run (see the "
                                              "Dockerfile); without it, the worker's own trainpipe command.")]
CheckOpt = Annotated[bool, typer.Option("--check", help="Load the written file with the orchestrator's own "
                                        "parser (Airflow's DagBag, the kfp compiler) and print any error.")]
WorkdirOpt = Annotated[Path | None, typer.Option(
    "--workdir", help="The project folder the tasks run in (its .trainpipe holds runs, cache and the default "
    "MLflow store). Default: the current directory. Containers mount it at the same path.")]
EnvOpt = Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE set for every task (repeatable; "
                                                  "secret names are refused: give them to the workers instead).")]


def _env(items: list[str] | None) -> dict[str, str]:
    from trainpipe._exceptions import ConfigError
    from trainpipe.config._secrets import is_secret_name

    env: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--env {item!r}: expected KEY=VALUE.")
        if is_secret_name(key):
            raise ConfigError(f"--env {key}: a secret name; the exported file is not the place for a secret. Set "
                              "it in the workers' environment (an Airflow connection, a Kubernetes secret).")
        env[key.strip()] = value
    return env


def _trainpipe_command() -> str:
    here = Path(sys.argv[0])
    if here.name == "trainpipe" and here.is_file():
        return str(here.resolve())
    return shutil.which("trainpipe") or "trainpipe"


@export_app.command("airflow")
def export_airflow(
    config: ConfigArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The DAG folder to write into.")] = Path("dags"),
    image: ImageOpt = None,
    kubernetes: Annotated[bool, typer.Option("--kubernetes", help="KubernetesPodOperator tasks (with --image): "
                                             "resources from orchestration:, a GPU for train on CUDA.")] = False,
    volume_claim: Annotated[str, typer.Option("--volume-claim", help="--kubernetes: the PersistentVolumeClaim "
                                              "holding the project folder.")] = "trainpipe-project",
    namespace: Annotated[str, typer.Option("--namespace", help="--kubernetes: the pods' namespace.")] = "default",
    workdir: WorkdirOpt = None,
    env: EnvOpt = None,
    check: CheckOpt = False,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="Print the DAG as a Mermaid flowchart instead "
                                          "(nothing written).")] = False,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Write one self-contained Airflow DAG file for CONFIG: open_run, a task per step, close_run."""

    def go() -> None:
        from trainpipe._exceptions import ConfigError
        from trainpipe.config import load_config
        from trainpipe.export import build_plan, render_dag, write_dag
        from trainpipe.export._checks import check_airflow

        if kubernetes and not image:
            raise ConfigError("--kubernetes runs the steps in pods of the trainpipe image: give --image IMAGE too.")
        loaded = load_config(config, profile=profile, overrides=set_ or [])
        where = (workdir or Path.cwd()).resolve()
        plan = build_plan(loaded, workdir=where, config_path=config.resolve())
        if mermaid:
            from trainpipe.export._airflow import dag_mermaid

            out.print(dag_mermaid(plan), markup=False, highlight=False, soft_wrap=True)
            return
        mode = "kubernetes" if kubernetes else ("docker" if image else "bash")
        text = render_dag(plan, mode=mode, image=image, trainpipe=_trainpipe_command(), volume_claim=volume_claim,
                          namespace=namespace, env=_env(env), profile=profile, overrides=set_ or [])
        path = write_dag(text, output, loaded.config.name)
        out.print(f"wrote {path} ({mode} tasks: open_run, {', '.join(s['name'] for s in plan['steps'])}, "
                  "close_run)", markup=False, highlight=False)
        if check:
            report = check_airflow(path)
            out.print(report, markup=False, highlight=False)

    _guard(debug, go)


@export_app.command("kubeflow")
def export_kubeflow(
    config: ConfigArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The pipeline spec to write (YAML).")] = Path(
        "pipeline.kfp.yaml"),
    image: Annotated[str, typer.Option("--image", help="The trainpipe image every component runs.")]
    = "trainpipe:latest",
    python_components: Annotated[bool, typer.Option(
        "--python-components", help="Lightweight Python components (they call the trainpipe command; what kfp's "
        "local SubprocessRunner runs) instead of container components.")] = False,
    check: CheckOpt = False,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Compile CONFIG's step graph to a Kubeflow Pipelines v2 spec with the kfp SDK: one component per step."""

    def go() -> None:
        from trainpipe.config import load_config
        from trainpipe.export._checks import check_kubeflow
        from trainpipe.export._kubeflow import compile_pipeline

        loaded = load_config(config, profile=profile, overrides=set_ or [])
        path = compile_pipeline(loaded, output, image=image, python_components=python_components)
        out.print(f"wrote {path}", markup=False, highlight=False)
        if check:
            out.print(check_kubeflow(path), markup=False, highlight=False)

    _guard(debug, go)


@orchestrate_app.command("open")
def orchestrate_open(
    config: ConfigArg,
    run_dir: Annotated[Path, typer.Option("--run-dir", help=".trainpipe/runs/NAME: the run directory to create.")],
    orchestrator: Annotated[str, typer.Option("--orchestrator", help="Recorded as trainpipe.orchestrator.")]
    = "airflow",
    run_type: Annotated[str, typer.Option("--run-type", help="manual | schedule | asset | api, or an Airflow "
                                          "run type (scheduled, asset_triggered, ...).")] = "manual",
    ids: Annotated[list[str] | None, typer.Option("--id", help="KEY=VALUE: an orchestrator id to tag the run with "
                                                  "(dag_id=..., run_id=...).")] = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Check the config with this run's overrides (--set, and TRAINPIPE_OVERRIDES as JSON), create the run
    directory and the MLflow parent run tagged with the trigger and the orchestrator's ids."""

    def go() -> None:
        from trainpipe._exceptions import ConfigError
        from trainpipe.export import open_run, overrides_from_env, trigger_of

        tags: dict[str, str] = {}
        for item in ids or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"--id {item!r}: expected KEY=VALUE, e.g. dag_id=trainpipe_churn.")
            tags[key] = value
        opened = open_run(config, run_dir, overrides=[*(set_ or []), *overrides_from_env()], profile=profile,
                          trigger=trigger_of(run_type), orchestrator=orchestrator, ids=tags)
        again = " (already open: this task was retried)" if opened.reused else ""
        out.print(f"opened {opened.run_dir} (mlflow run {opened.mlflow_run_id}, trigger {opened.trigger}){again}",
                  markup=False, highlight=False)

    _guard(debug, go)


@orchestrate_app.command("close")
def orchestrate_close(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="The run directory open created.")],
    debug: DebugOpt = False,
) -> None:
    """End the run's MLflow parent run: FINISHED when every step ran, FAILED otherwise. Exit 1 when a step
    failed (the DAG run fails), 0 when it finished or the gate refused the model (nothing registered)."""

    def go() -> None:
        from trainpipe._exceptions import TrainpipeError
        from trainpipe.export import close_run

        closed = close_run(run_dir)
        if closed.status == "failed":
            raise TrainpipeError(closed.message)
        (out if closed.status == "finished" else err).print(closed.message, markup=False, highlight=False)

    _guard(debug, go)


def _pairs(steps: list[str] | None, paths: list[Path] | None) -> list[tuple[str, Path]]:
    from trainpipe._exceptions import ConfigError

    if len(steps or []) != len(paths or []):
        raise ConfigError(f"--from and --path come in pairs (a step and its artifact folder), got "
                          f"{len(steps or [])} --from and {len(paths or [])} --path.")
    return list(zip(steps or [], paths or [], strict=True))


@orchestrate_app.command("kfp-open", hidden=True)
def kfp_open_cmd(
    config_text: Annotated[str, typer.Option("--config-text")],
    output: Annotated[Path, typer.Option("--output")],
    job: Annotated[str, typer.Option("--job")] = "kfp-run",
    overrides: Annotated[str, typer.Option("--overrides", help="JSON object of --set overrides.")] = "{}",
    base_dir: Annotated[Path | None, typer.Option("--base-dir")] = None,
    debug: DebugOpt = False,
) -> None:
    """Kubeflow component: check the config with the overrides, open the run; the run artifact to OUTPUT."""

    def go() -> None:
        from trainpipe.export._kfp_step import kfp_open
        from trainpipe.export._run import overrides_from_env

        sets = overrides_from_env({"TRAINPIPE_OVERRIDES": overrides})
        out.print(f"opened mlflow run {kfp_open(config_text, output, job=job, overrides=sets, base_dir=base_dir)}")

    _guard(debug, go)


# the steps a Kubeflow component reads, each with its artifact folder
FromOpt = Annotated[list[str] | None, typer.Option("--from", help="A step this one reads (repeatable).")]
PathOpt = Annotated[list[Path] | None, typer.Option("--path", help="Its artifact folder (one per --from).")]


@orchestrate_app.command("kfp-step", hidden=True)
def kfp_step_cmd(
    name: Annotated[str, typer.Argument()],
    run: Annotated[Path, typer.Option("--run")],
    output: Annotated[Path, typer.Option("--output")],
    froms: FromOpt = None,
    paths: PathOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Kubeflow component: run one step on the artifacts of the steps it reads."""

    def go() -> None:
        from trainpipe.export._kfp_step import kfp_step

        kfp_step(name, run, _pairs(froms, paths), output)
        out.print(f"step {name} done", markup=False)

    _guard(debug, go)


@orchestrate_app.command("kfp-close", hidden=True)
def kfp_close_cmd(
    run: Annotated[Path, typer.Option("--run")],
    froms: FromOpt = None,
    paths: PathOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Kubeflow component: close the run from every step's artifact."""

    def go() -> None:
        from trainpipe.export._kfp_step import kfp_close

        out.print(kfp_close(run, _pairs(froms, paths)), markup=False, highlight=False)

    _guard(debug, go)


@orchestrate_app.command("kfp-failed", hidden=True)
def kfp_failed_cmd(
    config_text: Annotated[str, typer.Option("--config-text")],
    job: Annotated[str, typer.Option("--job")] = "kfp-run",
    debug: DebugOpt = False,
) -> None:
    """Kubeflow exit handler: a run the pipeline left RUNNING is marked FAILED."""

    def go() -> None:
        from trainpipe.export._kfp_step import kfp_failed

        out.print(kfp_failed(job, config_text), markup=False, highlight=False)

    _guard(debug, go)


__all__ = ["export_app", "orchestrate_app"]
