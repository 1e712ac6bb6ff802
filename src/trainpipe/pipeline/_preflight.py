"""Checks of the whole config that need a library but no data: model type and params, metrics, tuning.

Several keys each fit only some tasks: a metric (``evaluation.metrics``, ``gate.thresholds``,
``gate.champion.metric``, ``tuning.metric``), a scikit-learn classifier or regressor, a booster objective,
``data.positive_label``. :func:`preflight` checks them against an explicit ``task``, or, with
``task: auto``, against each other (``rmse`` and ``recall`` can never both be computed);
:func:`check_task_fit` checks them again once the task is inferred from the data, before any training.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainpipe._exceptions import ConfigError
from trainpipe.config import PipelineConfig

_TASKS = ("binary", "multiclass", "regression")


def preflight(config: PipelineConfig) -> None:
    """Raise ConfigError for anything that would fail later for a config reason."""
    from trainpipe.evaluation import check_metric_names
    from trainpipe.evaluation._gate import is_latency_key
    from trainpipe.models import check_model_config

    if config.model.type != "auto":  # model.type: auto: tuning checks each family it searches (below)
        check_model_config(config.model, config.task)
    if config.tuning is not None:
        _check_tuning(config)
    if config.evaluation.metrics is not None:
        check_metric_names(config.evaluation.metrics)
    check_metric_names([m for m in config.gate.thresholds if not is_latency_key(m)], key="gate.thresholds")
    _check_latency_thresholds(config)
    if config.gate.champion.metric is not None:
        check_metric_names([config.gate.champion.metric], key="gate.champion.metric")
    for column, rule in config.gate.slices.items():
        for part in ("min", "max_gap"):
            check_metric_names(list(getattr(rule, part)), key=f"gate.slices.{column}.{part}")
    if config.task in _TASKS:
        check_task_fit(config, config.task)
    else:
        _check_consistent(_requirements(config))


def check_task_fit(config: PipelineConfig, task: str) -> None:
    """Raise ConfigError, naming every key at fault, when a part of the config cannot work for ``task``.

    Called by :func:`preflight` with an explicit task, and by the ``validate`` step right after the task is
    inferred from the target (``task: auto``), so that such a mistake costs no training.
    """
    if task not in _TASKS:
        return
    origin = f" (inferred from target {config.data.target!r})" if config.task == "auto" else ""
    misfits: dict[str, list[_Requirement]] = {}
    for req in _requirements(config):
        if task not in req.tasks:
            misfits.setdefault(req.key, []).append(req)
    if misfits:
        raise ConfigError("\n".join(_misfit(reqs, task, origin) for reqs in misfits.values()))


@dataclass(frozen=True)
class _Requirement:
    """One config key (or one entry of it) that works only for some tasks."""

    key: str
    subject: str  # what the key holds: "'rmse'", "sklearn.linear_model.Ridge (a regressor)"
    tasks: tuple[str, ...]
    fix: str  # what to do; "{task}" -> the task that does not fit, "{use}" -> the metrics that do
    metric: str | None = None  # the metric name, when the key holds one (for a name-specific hint)


def _misfit(reqs: list[_Requirement], task: str, origin: str) -> str:
    from trainpipe.evaluation._metrics import applicable, task_hint

    first = reqs[0]
    subjects = " and ".join(r.subject for r in reqs)
    verb = "does" if len(reqs) == 1 else "do"
    hints = "".join(task_hint(r.metric, task) for r in reqs if r.metric is not None)
    return (f"{first.key}: {subjects} {verb} not fit a {task} task{origin}; "
            f"{'it needs' if len(reqs) == 1 else 'they need'} {_tasks_text(first.tasks)}. " + hints
            + first.fix.format(task=task, use=", ".join(applicable(task))))


def _tasks_text(tasks: tuple[str, ...]) -> str:
    return "a binary task" if tasks == ("binary",) else "a " + " or ".join(tasks) + " task"


def _requirements(config: PipelineConfig) -> list[_Requirement]:
    from trainpipe.evaluation._metrics import METRICS

    out: list[_Requirement] = []
    model = _model_requirement(config)
    if model is not None:
        out.append(model)
    if config.data.positive_label is not None:
        out.append(_Requirement("data.positive_label", f"{config.data.positive_label!r}", ("binary",),
                                "Remove data.positive_label: it names the positive class of a two-class "
                                "target, and a {task} target has none."))
    for name in config.evaluation.metrics or []:
        out.append(_Requirement("evaluation.metrics", f"{name!r}", METRICS[name].tasks,
                                "Use {task} metrics ({use}), or remove evaluation.metrics to get the "
                                "defaults.", name))
    for name in config.gate.thresholds:
        if name in METRICS:
            out.append(_Requirement(f"gate.thresholds.{name}", f"{name!r}", METRICS[name].tasks,
                                    "Remove that threshold, or put it on a {task} metric ({use}).", name))
    champion = config.gate.champion.metric
    if champion is not None and champion in METRICS:
        out.append(_Requirement("gate.champion.metric", f"{champion!r}", METRICS[champion].tasks,
                                "Use a {task} metric ({use}), or remove it to compare on the first "
                                "evaluation metric.", champion))
    for column, rule in config.gate.slices.items():
        for part in ("min", "max_gap"):
            for name in getattr(rule, part):
                if name in METRICS:
                    out.append(_Requirement(f"gate.slices.{column}.{part}.{name}", f"{name!r}", METRICS[name].tasks,
                                            "Remove it, or put the slice rule on a {task} metric ({use}).", name))
    tuned = config.tuning.metric if config.tuning is not None else None
    if tuned is not None and tuned in METRICS:
        out.append(_Requirement("tuning.metric", f"{tuned!r}", METRICS[tuned].tasks,
                                "Use a {task} metric ({use}).", tuned))
    return out


def _model_requirement(config: PipelineConfig) -> _Requirement | None:
    """The tasks ``model.type`` (a classifier or regressor class, a booster's ``objective``) can learn, as its
    family declares (``ModelFamily.task_requirement``; ``check_model_config`` has run already)."""
    from trainpipe.models import family_for

    model = config.model
    if model.type == "auto":  # its families follow the task (tuning.families are checked by the tune step)
        return None
    family = family_for(model.type)
    req = family.task_requirement(model.type, dict(model.params)) if family.task_requirement is not None else None
    if req is not None:
        return _Requirement(req.key, req.subject, tuple(req.tasks), req.fix)
    if not set(_TASKS) <= set(family.tasks):
        return _Requirement("model.type", f"{model.type!r}", tuple(family.tasks),
                            "Pick a model type that learns a {task} task, or set task: to one it learns.")
    return None


def _check_consistent(requirements: list[_Requirement]) -> None:
    """With ``task: auto``: two keys that no single task can satisfy together."""
    problems = []
    for i, later in enumerate(requirements):
        for earlier in requirements[:i]:
            if not set(earlier.tasks) & set(later.tasks):
                problems.append(
                    f"{later.key}: {later.subject} needs {_tasks_text(later.tasks)}, but {earlier.key}: "
                    f"{earlier.subject} needs {_tasks_text(earlier.tasks)}; no task fits both. Fix the one "
                    "that is wrong, and set task: to say which task you mean."
                )
                break
    if problems:
        raise ConfigError("\n".join(problems))


def _check_latency_thresholds(config: PipelineConfig) -> None:
    """A threshold on latency needs the latency measured, under a name the evaluation writes."""
    import difflib

    from trainpipe.evaluation._gate import LATENCY_KEYS, is_latency_key

    problems = []
    for name in config.gate.thresholds:
        if not is_latency_key(name):
            continue
        if name not in LATENCY_KEYS:
            close = difflib.get_close_matches(name, LATENCY_KEYS, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known: {', '.join(LATENCY_KEYS)}."
            problems.append(f"gate.thresholds.{name}: unknown latency measure.{hint}")
        elif not config.evaluation.latency:
            problems.append(f"gate.thresholds.{name}: latency is not measured because evaluation.latency is "
                            "false, so this threshold could never pass. Set evaluation.latency: true or "
                            "remove the threshold.")
    if problems:
        raise ConfigError("\n".join(problems))


def _check_tuning(config: PipelineConfig) -> None:
    """The search space against the model family (unknown parameter, bound out of range), the metric and
    its direction, the storage URL: all before any data is read or any trial runs."""
    from trainpipe.tuning import check_space, infer_direction, objective_metric, parse_storage

    tuning = config.tuning
    if tuning is None:
        return
    metric = objective_metric(tuning, config.task)
    infer_direction(metric, tuning.direction)
    parse_storage(tuning.storage)
    check_space(config)
