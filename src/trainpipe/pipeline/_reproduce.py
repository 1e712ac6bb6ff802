"""``trainpipe reproduce RUN_ID``: re-run a past run from its recorded config and data version.

The data file must still have the recorded fingerprint (else: refused, exit 2). Every step runs (no cache)
of the graph except those that use the model registry (and what reads them): nothing is gated or
registered. The quality metrics (``test_*``) are compared exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError, DataError


@dataclass
class ReproduceResult:
    original_run: str
    new_run: str
    run_dir: Path
    compared: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return bool(self.compared) and all(a == b for a, b in self.compared.values())

    @property
    def differences(self) -> dict[str, tuple[float | None, float | None]]:
        return {k: v for k, v in self.compared.items() if v[0] != v[1]}


def _recorded_config(run_id: str, tags: dict[str, str], workdir: Path) -> Any:
    """The run's resolved config, read only from this project's own ``.trainpipe/runs/<run_id>``.

    The ``trainpipe.run_dir`` tag is not followed: tags are writable by anyone who can write to the tracking
    store, and a config read from a folder they chose would have secret-named environment variables
    interpolated into it (e.g. into a tuning storage URL of theirs).
    """
    import re

    from trainpipe.pipeline._runner import CONFIG_FILE, STATE_DIR, load_run_config

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id):
        raise ConfigError(f"run id {run_id!r}: expected the MLflow run id (letters, digits, '-' and '_').")
    here = workdir / STATE_DIR / "runs" / run_id
    if (here / CONFIG_FILE).is_file():
        return load_run_config(here)
    recorded = tags.get("trainpipe.run_dir", "")
    raise ConfigError(
        f"run {run_id}: its resolved config is not in this project ({here / CONFIG_FILE} is missing; the run "
        f"recorded {recorded or 'no run folder'}; only the redacted copy config.redacted.yaml is in the tracking "
        "store, and secrets were masked in it). Run reproduce from the project folder where the run was made "
        "(or a copy of it), or run the pipeline file with the same settings."
    )


def reproduce_graph(config: Any) -> Any:
    """What reproduce runs: the config's graph without the steps that use the registry and their dependents."""
    from trainpipe.pipeline._graph import StepGraph

    return StepGraph.for_config(config).without(lambda s: s.uses_registry)


def reproduce(run_id: str, tracking_uri: str, *, workdir: Path | None = None, hooks: Any = None) -> ReproduceResult:
    from mlflow.exceptions import MlflowException

    from trainpipe.config import redact_uri
    from trainpipe.data import fingerprint_frame, fingerprint_source, read_source, resolve_source
    from trainpipe.pipeline._runner import STATE_DIR, TRIGGERS, PipelineRunner
    from trainpipe.registry import client_for
    from trainpipe.tracking import MlflowTracker

    workdir = (workdir or Path.cwd()).resolve()
    client = client_for(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ConfigError(f"run {run_id!r} is not in the tracking store {redact_uri(tracking_uri)} "
                          "(see: trainpipe runs list).") from exc
    tags = dict(run.data.tags)
    if tags.get("trainpipe.kind") != "pipeline":
        raise ConfigError(f"run {run_id} is not a trainpipe pipeline run (a step or trial run?); pass the "
                          "parent run id shown by `trainpipe runs list`.")
    loaded = _recorded_config(run_id, tags, workdir)
    from trainpipe.config import config_hash

    if tags.get("config_hash") and config_hash(loaded.config) != tags["config_hash"]:
        raise ConfigError(
            f"refusing to reproduce run {run_id}: its saved config no longer matches the config hash the run "
            f"recorded ({tags['config_hash'][:16]}…); the file was edited after the run. Restore it, or run the "
            "edited config with `trainpipe run` as a new run."
        )
    recorded = tags.get("data_fingerprint")
    if not recorded:
        raise ConfigError(f"run {run_id} recorded no data fingerprint (it failed before ingest finished); "
                          "there is nothing to reproduce.")
    source = resolve_source(loaded.config.data.source, loaded.base_dir)
    current = fingerprint_source(source) if source.kind == "file" else fingerprint_frame(read_source(source))
    if current != recorded:
        raise DataError(
            f"refusing to reproduce run {run_id}: the data at {loaded.config.data.source} has changed "
            f"(fingerprint now {current[:16]}…, recorded {recorded[:16]}…). Restore that version of the file "
            "to reproduce the run."
        )
    steps = reproduce_graph(loaded.config)
    cfg = loaded.config
    tracker = MlflowTracker(tracking_uri, cfg.tracking.experiment or cfg.name, workdir / STATE_DIR / "mlartifacts")
    runner = PipelineRunner(loaded, workdir=workdir, tracker=tracker, no_cache=True, steps=steps, hooks=hooks,
                            trigger=tags.get("trigger", "manual") if tags.get("trigger") in TRIGGERS else "manual",
                            command="reproduce")
    result = runner.run()
    tracker.set_tags(result.run_id, {"trainpipe.reproduces": run_id})
    old = {k: v for k, v in run.data.metrics.items() if k.startswith("test_")}
    new = {k: v for k, v in result.metrics.items() if k.startswith("test_")}
    compared = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))}
    return ReproduceResult(run_id, result.run_id, result.run_dir, compared)
