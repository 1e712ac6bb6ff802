"""A step: a pure function (config, input artifacts) -> output artifacts, with what its cache key covers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainpipe._hooks import Hooks
    from trainpipe.config import LoadedConfig, PipelineConfig
    from trainpipe.tracking import Tracker


@dataclass
class StepContext:
    """What a step function sees: the config, its inputs' folders and the folder to write to."""

    step: str
    loaded: LoadedConfig
    inputs: Mapping[str, Path]
    out_dir: Path
    run_dir: Path
    hooks: Hooks
    metrics: dict[str, float] = field(default_factory=dict)
    tracker: Tracker | None = None
    run_id: str | None = None  # this step's own tracking run (a child of the pipeline run)
    parent_run_id: str | None = None  # the pipeline run
    key: str = ""  # the step's cache key: names state that must survive a killed process (checkpoints)
    input_fingerprints: Mapping[str, str] = field(default_factory=dict)  # content hash of each input's outputs
    state_dir: Path | None = None  # <workdir>/.trainpipe
    resume: bool = False  # continue from the step's last checkpoint (``trainpipe run --resume``)
    curves: dict[str, list[float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> PipelineConfig:
        return self.loaded.config

    def input(self, step: str) -> Path:
        return self.inputs[step]


@dataclass(frozen=True)
class Step:
    """``config_keys`` are dotted config paths the step depends on; ``libraries`` go into its cache key;
    ``external`` adds key parts from outside the run directory (e.g. the data file's fingerprint)."""

    name: str
    func: Callable[[StepContext], None]
    inputs: tuple[str, ...] = ()
    config_keys: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    external: Callable[[LoadedConfig], dict[str, str]] | None = None
    description: str = ""
    run_files: tuple[str, ...] = ()  # files the step also puts at the top of the run directory
    cache: bool = True  # False: always runs (its result depends on state outside the run, e.g. the registry)
    # True: SIGTERM/Ctrl-C wait until the step is done and sealed (it changes state outside the run, e.g. it
    # registers a model: a run must not be reported interrupted after its side effect happened)
    uninterruptible: bool = False
