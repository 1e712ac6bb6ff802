"""What a Kubeflow component runs: ``trainpipe orchestrate kfp-open | kfp-step | kfp-close | kfp-failed``.

Components share no volume. Each runs in a fresh working directory and gets its inputs as kfp artifacts
(folders): ``kfp-open`` writes the run artifact (``run.json``, the resolved ``config.yaml``: what
``trainpipe step`` reads); ``kfp-step NAME`` lays the run artifact and the folders of the steps it reads out as a
run directory, runs the step with ``trainpipe step``'s code (``PipelineRunner.run_step``) and copies the step's
folder (plus its record) to its output artifact; ``kfp-close`` gets every step's artifact and closes the
MLflow parent run as ``trainpipe orchestrate close`` does. ``kfp-failed`` is the pipeline's exit handler: kfp
gives it no artifacts, so it finds the parent run by its ``kubeflow.run_id`` tag and ends it FAILED if the
pipeline stopped before ``kfp-close``.

Tracking needs a store every pod reaches: ``MLFLOW_TRACKING_URI`` or ``tracking.uri`` (an MLflow server).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trainpipe._exceptions import ConfigError

RECORD = "_kfp_step_record.json"
RUN_FILES = ("run.json", "config.yaml", "config.redacted.yaml", "source_dir.txt")


def _workdir() -> Path:
    given = os.environ.get("TRAINPIPE_KFP_WORKDIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given).resolve()
    return Path(tempfile.mkdtemp(prefix="trainpipe-kfp-")).resolve()


def _copy_dir(source: Path, target: Path) -> None:
    """A real copy (the step cache links files): an artifact must hold the bytes, not links into a pod."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=False)


def kfp_open(config_text: str, output: Path, *, job: str, overrides: Sequence[str], base_dir: Path | None) -> str:
    """Check the config with the overrides, open the tracked parent run; the run artifact goes to ``output``."""
    from trainpipe.export._run import open_run, run_dir_name

    workdir = _workdir()
    config = workdir / "pipeline.yaml"
    config.write_text(config_text)
    run_dir = Path(".trainpipe") / "runs" / run_dir_name("kubeflow", job)
    opened = open_run(config, run_dir, workdir=workdir, overrides=overrides, trigger="manual",
                      orchestrator="kubeflow", ids={"run_id": job}, base_dir=base_dir)
    output.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (opened.run_dir / name).exists():
            shutil.copyfile(opened.run_dir / name, output / name)
    return opened.mlflow_run_id


def _lay_out(run_artifact: Path, inputs: Sequence[tuple[str, Path]]) -> tuple[Path, Path]:
    """A working directory with ``.trainpipe/runs/NAME`` made of the run artifact and the input steps."""
    data = json.loads((run_artifact / "run.json").read_text())
    workdir = _workdir()
    run_dir = workdir / ".trainpipe" / "runs" / Path(data["run_dir"]).name
    (run_dir / "steps").mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (run_artifact / name).exists():
            shutil.copyfile(run_artifact / name, run_dir / name)
    if data.get("tracking_uri"):  # the store the open component used (a server every pod reaches)
        os.environ.setdefault("MLFLOW_TRACKING_URI", data["tracking_uri"])
    records = []
    for step, folder in inputs:
        _copy_dir(folder, run_dir / "steps" / step)
        record_file = run_dir / "steps" / step / RECORD
        if record_file.exists():
            records.append(json.loads(record_file.read_text()))
            record_file.unlink()
    data["steps"] = records
    data["run_dir"] = str(run_dir)
    (run_dir / "run.json").write_text(json.dumps(data, indent=2))
    return workdir, run_dir


def kfp_step(name: str, run_artifact: Path, inputs: Sequence[tuple[str, Path]], output: Path) -> None:
    """Run one step (its inputs from artifacts); its folder and record go to ``output``, even when it failed
    after writing nothing (then only the record, and the error propagates with its exit code)."""
    from trainpipe._api import build_runner, default_tracker
    from trainpipe.pipeline import StepGraph, load_run_config
    from trainpipe.pipeline._records import PipelineResult

    workdir, run_dir = _lay_out(run_artifact, inputs)
    loaded = load_run_config(run_dir)
    result = PipelineResult.read(run_dir / "run.json")
    tracker = default_tracker(loaded, workdir, steps=[name]) if result.tracking_uri else None
    runner = build_runner(loaded, tracker=tracker, steps=StepGraph.for_config(loaded.config).only([name]),
                          workdir=workdir)
    try:
        runner.run_step(name, run_dir)
    finally:
        done = PipelineResult.read(run_dir / "run.json")
        record = next((r for r in done.steps if r.name == name), None)
        if (run_dir / "steps" / name).is_dir():
            _copy_dir(run_dir / "steps" / name, output)
        output.mkdir(parents=True, exist_ok=True)
        if record is not None:
            (output / RECORD).write_text(json.dumps(record.to_dict()))
        for extra in ("gate_report.json", "gate_report.md", "validation_report.md", "drift_report.md"):
            if (run_dir / extra).exists():  # the reports a step writes beside the steps (shown in the log)
                shutil.copyfile(run_dir / extra, output / f"_{extra}")


def kfp_close(run_artifact: Path, inputs: Sequence[tuple[str, Path]]) -> str:
    from trainpipe.export._run import close_run

    workdir, run_dir = _lay_out(run_artifact, inputs)
    closed = close_run(run_dir.relative_to(workdir), workdir=workdir)
    if closed.status == "failed":
        from trainpipe._exceptions import TrainpipeError

        raise TrainpipeError(closed.message)
    return closed.message


def kfp_failed(job: str, config_text: str) -> str:
    """The exit handler: the parent run of ``job``, if still RUNNING (the pipeline stopped early): FAILED."""
    from trainpipe._api import default_tracker
    from trainpipe.config import load_config

    workdir = _workdir()
    (workdir / "pipeline.yaml").write_text(config_text)
    loaded = load_config(workdir / "pipeline.yaml")
    tracker = default_tracker(loaded, workdir, steps=())
    client = getattr(tracker, "client", None)
    if client is None:
        raise ConfigError("kfp-failed: the tracker has no MLflow client to look the run up with.")
    experiment = client.get_experiment_by_name(loaded.config.tracking.experiment or loaded.config.name)
    if experiment is None:
        return f"no experiment for {loaded.config.name}: nothing to close"
    runs = client.search_runs([experiment.experiment_id], f"tags.`kubeflow.run_id` = '{job.replace(chr(39), '')}'")
    left = [r for r in runs if r.info.status == "RUNNING"]
    for run in left:
        client.set_tag(run.info.run_id, "trainpipe.status", "failed")
        client.set_terminated(run.info.run_id, "FAILED")
    return f"{len(left)} run(s) of {job} marked FAILED" if left else f"run of {job} already closed"


__all__ = ["kfp_close", "kfp_failed", "kfp_open", "kfp_step"]
