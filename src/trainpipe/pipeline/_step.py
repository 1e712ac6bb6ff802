"""A step: a pure function (config, input artifacts) -> output artifacts, with what its cache key covers.

A step declares its named inputs (``{"X_train": "preprocess.X_train"}``: the output ``X_train`` of step
``preprocess``, read in the step as ``ctx.artifact("X_train")``) and outputs (files, or file stems such as a
matrix's ``X_train`` written as ``.npy`` or ``.npz``, in its output folder), and flags the runner, the CLI and
the orchestrator exports read instead of step names (see :class:`Step`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainpipe._hooks import Hooks
    from trainpipe.config import LoadedConfig, PipelineConfig
    from trainpipe.registry import ModelRegistry
    from trainpipe.tracking import Tracker


WHOLE = "*"  # an input of a step's whole output folder (``Step(inputs=("ingest",))``, the older form)


def parse_ref(ref: str) -> tuple[str, str]:
    """``"preprocess.X_train"`` -> ``("preprocess", "X_train")`` (an output name may hold dots itself)."""
    step, dot, output = ref.partition(".")
    if not dot or not step or not output:
        raise ValueError(f"artifact reference {ref!r}: expected STEP.OUTPUT, e.g. 'preprocess.X_train'")
    return step, output


def refs(*items: str) -> dict[str, str]:
    """Inputs named after the outputs they read: ``refs("split.train.parquet")`` ->
    ``{"train.parquet": "split.train.parquet"}``."""
    return {parse_ref(r)[1]: r for r in items}


@dataclass
class StepContext:
    """What a step function sees: the config, its input artifacts and the folder to write to."""

    step: str
    loaded: LoadedConfig
    inputs: Mapping[str, Path]  # upstream step name -> its output folder
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
    declared: Mapping[str, str] = field(default_factory=dict)  # input name -> "step.output" (Step.inputs)
    registry: ModelRegistry | None = None  # the model registry (steps with uses_registry)
    prepared: Any = None  # what the step's ``Step.prepare`` started when the run began (None: nothing)

    @property
    def config(self) -> PipelineConfig:
        return self.loaded.config

    def input(self, step: str) -> Path:
        """The whole output folder of upstream step ``step`` (prefer :meth:`artifact`)."""
        return self.inputs[step]

    def artifact(self, name: str) -> Path:
        """The path of declared input ``name`` (a file, or a matrix's stem: see ``load_matrix``); it may not
        exist when the producer writes it only sometimes (``y_val.npy`` of an empty validation split)."""
        ref = self.declared.get(name)
        if ref is None:
            known = ", ".join(sorted(self.declared)) or "none"
            raise KeyError(f"step {self.step!r} declares no input {name!r} (its inputs: {known})")
        step, output = parse_ref(ref)
        return self.inputs[step] if output == WHOLE else self.inputs[step] / output

    def has_input(self, name: str) -> bool:
        """Whether input ``name`` is declared for this run's graph (``best_params.json`` only with tuning)."""
        ref = self.declared.get(name)
        return ref is not None and parse_ref(ref)[0] in self.inputs


@dataclass(frozen=True)
class Step:
    """One node of the graph.

    ``inputs`` maps an input name to ``"step.output"``; ``outputs`` are what the step writes (file names, or
    a matrix's stem). ``config_keys`` are dotted config paths the step depends on; ``libraries`` go into its
    cache key; ``external`` adds key parts from outside the run directory (e.g. the data file's fingerprint).

    Flags: ``always_run`` (its result depends on state outside the run, e.g. the registry: never cached),
    ``uses_registry`` (it needs the model registry), ``rank0_only`` (under torchrun only rank 0 runs it, and
    what depends on it), ``wants_gpu`` (it uses a GPU when the model does), ``runs_after_failure`` (it still
    runs when an earlier step failed, if its own inputs are there: reports), ``uninterruptible`` (SIGTERM and
    Ctrl-C wait until it is done and sealed: it changes state outside the run), ``single_process`` (a reason it
    cannot run inside torchrun, shown as the error). ``headline_metrics``: its metrics are the run's headline
    metrics (``test_*``). ``artifact_dir``: its outputs are logged to the tracking run under that folder.
    ``slice_tables``: ``(file, key)`` of per-slice metric tables in its output. ``after``: a check on its
    output that runs every time, cached or not (config keys outside its cache key). ``prepare``: called when a
    whole run starts, before any step; what it returns (e.g. a worker process warming up on the other core) is
    the step's ``ctx.prepared``, and its ``close()`` is called when the run ends.
    """

    name: str
    func: Callable[[StepContext], None]
    inputs: Mapping[str, str] = field(default_factory=dict)
    config_keys: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    external: Callable[[LoadedConfig], dict[str, str]] | None = None
    description: str = ""
    run_files: tuple[str, ...] = ()  # files the step also puts at the top of the run directory
    outputs: tuple[str, ...] = ()
    always_run: bool = False
    uses_registry: bool = False
    rank0_only: bool = False
    wants_gpu: bool = False
    runs_after_failure: bool = False
    uninterruptible: bool = False
    single_process: str = ""
    headline_metrics: bool = False
    artifact_dir: str = ""
    slice_tables: tuple[tuple[str, str], ...] = ()
    after: Callable[[LoadedConfig, Path], None] | None = None
    prepare: Callable[[LoadedConfig], Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, Mapping):  # the old form: a tuple of whole upstream steps
            object.__setattr__(self, "inputs", {s: f"{s}.{WHOLE}" for s in _names(self.inputs)})

    @property
    def upstream(self) -> tuple[str, ...]:
        """The steps whose outputs this one reads, in declaration order (its cache key covers their outputs)."""
        return tuple(dict.fromkeys(parse_ref(r)[0] for r in self.inputs.values()))

    @property
    def cache(self) -> bool:
        return not self.always_run

    def flags(self) -> dict[str, bool]:
        return {"always_run": self.always_run, "uses_registry": self.uses_registry, "rank0_only": self.rank0_only,
                "wants_gpu": self.wants_gpu, "runs_after_failure": self.runs_after_failure,
                "uninterruptible": self.uninterruptible, "single_process": bool(self.single_process),
                "headline_metrics": self.headline_metrics}


def _names(items: Iterable[str]) -> list[str]:
    return [str(i) for i in items]
