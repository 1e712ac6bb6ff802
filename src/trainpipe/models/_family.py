"""``ModelFamily``: everything the rest of trainpipe asks about a model family, declared in one object.

A family is one module that defines an adapter (see :class:`trainpipe.models.ModelAdapter`) and a
``ModelFamily`` naming it, and one entry point in its distribution::

    [project.entry-points."trainpipe.model_families"]
    knn = "knnfam:FAMILY"

The pipeline, tuning, registry and evaluation never import a family module: they ask the family found by
:func:`trainpipe.models.family_for` (names, install extra, pip pins of the served model, tasks, input kind,
default search space, how it reports per-round values to a pruner, its config checks and objective tables,
checkpoint and signal-safety hooks, the libraries whose versions go into cache keys and lineage).
``trainpipe.testing.check_family`` is the conformance kit every family passes.

Nothing here imports a model library: a family's callables import theirs when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from trainpipe.config import TrainingConfig
    from trainpipe.data import TaskInfo
    from trainpipe.models._protocol import ModelAdapter

ALL_TASKS = ("binary", "multiclass", "regression")
CLASSIFICATION = ("binary", "multiclass")
InputKind = Literal["matrix", "frame", "tensors", "text"]

# Why a search-space key is refused, shared by the built-in families' ``owned_params`` (third-party families
# may use them too): the parameter is set by trainpipe, or never changes what is learned.
SEED_TEXT = ("trainpipe sets it from training.seed; a tuned seed picks the luckiest random draw, not a better "
             "model. Remove it from tuning.space; set training.seed to change the seed")
THREADS_TEXT = ("it sets the number of threads, which changes speed, not the model, so every trial would train "
                "the same model. Remove it from tuning.space; set it in model.params")
LOGGING_TEXT = "it changes only the library's logging. Remove it from tuning.space; set it in model.params"
DEVICE_TEXT = ("it moves the same training to other hardware, so trials differ only in speed. Remove it from "
               "tuning.space; set it in model.params")
OBJECTIVE_TEXT = ("trainpipe sets the objective from the task: it leaves it to the library's own choice for a "
                  "binary, multiclass or regression target (and XGBoost replaces any other objective for a "
                  "multiclass target, so a tuned one is recorded but not used there). Remove it from "
                  "tuning.space; to train with another objective, set model.params.objective, which the config "
                  "check matches against the task")
EVAL_METRIC_TEXT = ("trainpipe sets it from tuning.metric, so that early stopping and pruning follow the study's "
                    "metric; trials with different evaluation metrics would stop and prune on different scales. "
                    "Remove it from tuning.space; set tuning.metric to choose what the study optimizes")
EARLY_STOPPING_TEXT = ("trainpipe sets it from training.early_stopping_rounds. Remove it from tuning.space; tune "
                       "training.early_stopping_rounds instead")


@dataclass(frozen=True)
class TaskRequirement:
    """What a ``model.type`` (or a key of ``model.params``, e.g. a booster's ``objective``) says about the task:
    the config check refuses a task outside ``tasks`` naming ``key`` and ``subject``, and suggests ``fix``
    (``{task}`` is replaced by the task that does not fit)."""

    key: str
    subject: str
    tasks: tuple[str, ...]
    fix: str


def objective_requirement(objective: str, regression: bool) -> TaskRequirement:
    """What a booster's explicit ``model.params.objective`` says about the task (shared by the boosters)."""
    tasks: tuple[str, ...] = ("regression",) if regression else CLASSIFICATION
    kind = "regression" if regression else "classification"
    return TaskRequirement("model.params.objective", f"{objective!r} (a {kind} objective)", tasks,
                           "Remove model.params.objective (trainpipe picks the one for the task), "
                           "or use a {task} objective.")


def installed_pins(distributions: Sequence[str], first_only: bool = False) -> list[str]:
    """``name==version`` of each installed distribution (the first installed only with ``first_only``: e.g.
    ``xgboost-cpu`` or ``xgboost``, which hold the same module); a local build tag (``+cpu``) is dropped,
    since pinning it would pull another build when the environment is re-created."""
    from importlib import metadata

    pins = []
    for dist in distributions:
        try:
            pins.append(f"{dist}=={metadata.version(dist).split('+')[0]}")
        except metadata.PackageNotFoundError:
            continue
        if first_only:
            break
    return pins


#: modules whose names a skops file may never be trusted with: their members call, import, open or execute
#: (``builtins.exec``, ``operator.methodcaller``, ``functools.partial``, ``os.system``...), whoever declares them
_UNTRUSTABLE_MODULES = frozenset({
    "builtins", "__builtin__", "operator", "functools", "itertools", "os", "posix", "nt", "sys", "subprocess",
    "importlib", "types", "pickle", "_pickle", "copyreg", "marshal", "runpy", "code", "codeop", "ctypes",
    "shutil", "socket", "io", "_io", "pathlib", "tempfile", "webbrowser", "pty", "signal", "threading",
    "multiprocessing", "inspect", "numpy.lib", "numpy.ctypeslib", "joblib", "cloudpickle", "dill", "torch",
})


def untrustable_type(name: str) -> str | None:
    """Why ``name`` may not be added to the skops allow-list (None: it may): not an exact dotted
    ``module.Class`` name, or a member of a module that runs code."""
    import re

    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", name):
        return "is not an exact dotted type name such as mypkg.models.Centroids"
    parts = name.split(".")
    for i in range(1, len(parts)):
        if ".".join(parts[:i]) in _UNTRUSTABLE_MODULES:
            return f"is in module {'.'.join(parts[:i])!r}, whose members can run code when a model file names them"
    return None


@dataclass(frozen=True)
class ModelFamily:
    """One model family, as the rest of trainpipe sees it.

    * ``name``: recorded as the model's family (``spec.json``); ``names`` and ``aliases``: the exact
      ``model.type`` values it answers to; ``claims``: a predicate for further types (scikit-learn: dotted
      class paths), which raises ConfigError for a type it claims but refuses.
    * ``adapter``: returns the adapter class (importing it lazily); the class is built as
      ``cls(task, model_type, params, training)`` and loaded by ``cls.load(directory, task, model_type)``,
      unless ``loader`` says otherwise (``loader(directory, task, model_type, unsafe_trust_types)``).
    * ``extra``: the ``pip install "trainpipe[extra]"`` that provides its library; ``libraries``: the
      distributions whose versions key the step cache and go into lineage; ``requirements``: the exact pins of
      what the served model needs beyond trainpipe's own (default: the first installed of ``libraries``).
    * ``tasks`` it can learn; ``input_kind``: what ``fit`` takes (``matrix``: the preprocessed matrix).
    * ``default_space``: the search space used without ``tuning.space`` (``{name: {type, low, high, ...}}``),
      or a callable of the model type returning one (None: no default).
    * ``round_budget(params, training)``: how many per-round values its adapter reports through ``on_round``
      (boosting rounds, epochs); None when it reports none a pruner can use (the median rule is then used).
      ``metric_params(metric, task, params)``: model params that make its per-round metric follow
      ``tuning.metric``.
    * ``check_config(task, params, model_type)``: raise ConfigError for params it cannot take, before any
      data is read (``task`` may be ``auto``); ``task_requirement(model_type, params)``: the tasks the
      configured model can learn (a classifier class, a booster objective), checked against the task.
    * ``checkpoints``: its adapter has ``configure_checkpoints(directory, resume)`` and resumes from them;
      ``categorical_indices``: its adapter has ``set_categorical_columns(indices)`` (ordinal-coded columns);
      ``preferred_categorical_encoding``: ``onehot``/``ordinal`` when the user did not choose;
      ``defer_signals``: its library calls back into Python through ctypes while training, so SIGTERM/SIGINT
      must wait for the next ``on_round`` call; ``refit_on_train_val``: after tuning, the final model is fitted
      on train + validation rows (False: its validation split drives early stopping and checkpoints);
      ``gpu``: ``training.device: auto`` means a GPU when one is present.
    * ``training_settings``: the ``training.*`` keys its adapter reads (None: all; a callable gets all of them
      and returns those it reads); ``training_hint(model_type,
      setting)``: what it uses instead of a setting it ignores; ``owned_params``: model params trainpipe sets
      itself or that never change the model, with why (tuning them is refused).
    * ``trusted_types``: exact type names its skops model files may hold beyond trainpipe's fixed allow-list
      (code, never read from a file).
    """

    name: str
    names: tuple[str, ...]
    adapter: Callable[[], type]
    aliases: tuple[str, ...] = ()
    claims: Callable[[str], bool] | None = None
    loader: Callable[[Path, TaskInfo, str, tuple[str, ...]], ModelAdapter] | None = None
    extra: str | None = None
    libraries: tuple[str, ...] = ()
    requirements: Callable[[], list[str]] | None = None
    tasks: tuple[str, ...] = ALL_TASKS
    input_kind: InputKind = "matrix"
    default_space: Mapping[str, Any] | Callable[[str], Mapping[str, Any] | None] | None = None
    round_budget: Callable[[Mapping[str, Any], TrainingConfig], int] | None = None
    metric_params: Callable[[str, str, Mapping[str, Any]], dict[str, Any]] | None = None
    check_config: Callable[[str, Mapping[str, Any], str], None] | None = None
    task_requirement: Callable[[str, Mapping[str, Any]], TaskRequirement | None] | None = None
    checkpoints: bool = False
    categorical_indices: bool = False
    preferred_categorical_encoding: str | None = None
    defer_signals: bool = False
    refit_on_train_val: bool = True
    gpu: bool = False
    training_settings: frozenset[str] | Callable[[frozenset[str]], frozenset[str]] | None = None
    training_hint: Callable[[str, str], str | None] | None = None
    owned_params: Mapping[str, str] = field(default_factory=dict)
    trusted_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.trusted_types:
            why = untrustable_type(name)
            if why:
                raise ValueError(f"model family {self.name!r}: trusted_types {name!r} {why}. A family may trust "
                                 "only the exact names of its own data classes; every model file of every family "
                                 "is checked against the list.")

    def answers(self, model_type: str) -> bool:
        """Whether ``model_type`` names this family exactly (a name or an alias)."""
        return model_type in self.names or model_type in self.aliases

    def adapter_class(self) -> Any:
        return self.adapter()

    def create(self, task: TaskInfo, model_type: str, params: Mapping[str, Any],
               training: TrainingConfig) -> ModelAdapter:
        adapter: ModelAdapter = self.adapter()(task, model_type, dict(params), training)
        return adapter

    def load(self, directory: Path, task: TaskInfo, model_type: str,
             unsafe_trust_types: tuple[str, ...] = ()) -> ModelAdapter:
        if self.loader is not None:
            return self.loader(Path(directory), task, model_type, tuple(unsafe_trust_types))
        cls: Any = self.adapter()
        loaded: ModelAdapter = cls.load(Path(directory), task, model_type)
        return loaded

    def check(self, task_name: str, params: Mapping[str, Any], model_type: str) -> None:
        """Its config check, if it has one (``task_name`` may be ``auto``)."""
        if self.check_config is not None:
            self.check_config(task_name, params, model_type)

    def pip_requirements(self) -> list[str]:
        """Exact pins of the libraries the served model needs (trainpipe's common ones not included)."""
        if self.requirements is not None:
            return list(self.requirements())
        return installed_pins(self.libraries, first_only=True)

    def space_for(self, model_type: str) -> dict[str, Any] | None:
        """The default search space for ``model_type`` (plain mappings or ``SearchParam`` values), or None."""
        space = self.default_space(model_type) if callable(self.default_space) else self.default_space
        return None if space is None else dict(space)

    def reads_training(self, every: frozenset[str]) -> frozenset[str]:
        """The ``training.*`` settings (out of ``every``) its adapter reads."""
        if self.training_settings is None:
            return every
        if callable(self.training_settings):
            return frozenset(self.training_settings(every))
        return frozenset(self.training_settings)

    def rounds(self, params: Mapping[str, Any], training: TrainingConfig) -> int | None:
        """The number of per-round values its adapter reports with these settings; None when it reports none."""
        return None if self.round_budget is None else int(self.round_budget(params, training))
