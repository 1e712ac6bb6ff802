"""Which search-space keys the chosen model consumes, checked before any data is read.

A key the model ignores (``training.batch_size`` for XGBoost), or one trainpipe sets itself (``objective``
from the task, ``eval_metric`` from ``tuning.metric``, ``random_state`` from ``training.seed``), would give
a study whose trials differ only in a recorded number: it is refused (exit 2) naming ``tuning.space.<key>``,
what the model uses instead and what to do. A key that is also fixed in ``model.params`` or ``training``
is honoured (the trial's value wins, as it always has) and reported as a note.

This module owns the question "which ``training.*`` settings does a family read": the table below, or a
``training_settings`` class attribute on a family's adapter, which takes precedence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainpipe._exceptions import ConfigError
from trainpipe.config import PipelineConfig, TrainingConfig
from trainpipe.config._schema import SearchParam

TRAINING_PREFIX = "training."

_ALL_TRAINING = frozenset(TrainingConfig.model_fields)
_BOOSTERS = ("xgboost", "lightgbm")

# The training settings each family's adapter reads (the boosters: early stopping on the validation split;
# scikit-learn: one fit() call, seeded; torch: the whole loop except the boosters' early stopping).
_TRAINING_USED: dict[str, frozenset[str]] = {
    "torch": _ALL_TRAINING - {"early_stopping_rounds"},
    "xgboost": frozenset({"early_stopping_rounds", "seed"}),
    "lightgbm": frozenset({"early_stopping_rounds", "seed"}),
    "sklearn": frozenset({"seed"}),
}

# training settings that never change what is learned: tuning them repeats one model
_TRAINING_NO_EFFECT = {
    "seed": "trainpipe seeds every trial from training.seed; a tuned seed picks the luckiest random draw, "
            "not a better model. Remove it from tuning.space; set training.seed to change the seed",
    "device": "it moves the same training to other hardware, so trials differ only in speed. Remove it from "
              "tuning.space; set training.device",
    "checkpoint_every": "it says how often a checkpoint is written, not what is learned. Remove it from "
                        "tuning.space; set training.checkpoint_every",
}

_SEED = ("trainpipe sets it from training.seed; a tuned seed picks the luckiest random draw, not a better "
         "model. Remove it from tuning.space; set training.seed to change the seed")
_THREADS = ("it sets the number of threads, which changes speed, not the model, so every trial would train "
            "the same model. Remove it from tuning.space; set it in model.params")
_LOGGING = "it changes only the library's logging. Remove it from tuning.space; set it in model.params"
_DEVICE = ("it moves the same training to other hardware, so trials differ only in speed. Remove it from "
           "tuning.space; set it in model.params")
_OBJECTIVE = ("trainpipe sets the objective from the task: it leaves it to the library's own choice for a "
              "binary, multiclass or regression target (and XGBoost replaces any other objective for a "
              "multiclass target, so a tuned one is recorded but not used there). Remove it from tuning.space; "
              "to train with another objective, set model.params.objective, which the config check matches "
              "against the task")
_EVAL_METRIC = ("trainpipe sets it from tuning.metric, so that early stopping and pruning follow the study's "
                "metric; trials with different evaluation metrics would stop and prune on different scales. "
                "Remove it from tuning.space; set tuning.metric to choose what the study optimizes")
_EARLY_STOPPING = ("trainpipe sets it from training.early_stopping_rounds. Remove it from tuning.space; tune "
                   "training.early_stopping_rounds instead")

# model parameters trainpipe sets itself, or that never change the model, per family
_OWNED: dict[str, dict[str, str]] = {
    "xgboost": {"random_state": _SEED, "seed": _SEED, "n_jobs": _THREADS, "nthread": _THREADS,
                "verbosity": _LOGGING, "device": _DEVICE, "objective": _OBJECTIVE, "eval_metric": _EVAL_METRIC,
                "early_stopping_rounds": _EARLY_STOPPING,
                "callbacks": "trainpipe sets its own callbacks (progress, pruning). Remove it from tuning.space"},
    "lightgbm": {
        **dict.fromkeys(("seed", "random_seed", "random_state"), _SEED),
        **dict.fromkeys(("num_threads", "n_jobs", "nthread", "nthreads", "num_thread"), _THREADS),
        **dict.fromkeys(("verbosity", "verbose"), _LOGGING),
        **dict.fromkeys(("device_type", "device"), _DEVICE),
        **dict.fromkeys(("objective", "app", "loss", "application", "objective_type"),
                        _OBJECTIVE.replace("XGBoost", "LightGBM")),
        **dict.fromkeys(("metric", "metrics", "metric_types"), _EVAL_METRIC),
        **dict.fromkeys(("early_stopping_round", "early_stopping", "n_iter_no_change", "early_stopping_rounds"),
                        _EARLY_STOPPING),
    },
    "sklearn": {"random_state": _SEED, "n_jobs": _THREADS, "verbose": _LOGGING},
    "torch": {"keep_top_k": "it says how many checkpoints are kept, not what is learned. Remove it from "
                            "tuning.space; set it in model.params"},
}


def training_settings_used(model_type: str) -> frozenset[str]:
    """The ``training.*`` settings the family of ``model_type`` reads (all of them for a family not known here)."""
    from trainpipe.models import adapter_class, family_of

    declared = getattr(adapter_class(model_type), "training_settings", None)
    if declared is not None:
        return frozenset(declared)
    return _TRAINING_USED.get(family_of(model_type), _ALL_TRAINING)


def _estimator_params(model_type: str) -> set[str]:
    from trainpipe.models._sklearn import import_estimator

    return set(import_estimator(model_type)().get_params())


def _instead(family: str, model_type: str, setting: str) -> str:
    """What ``model_type`` uses in place of the training setting it ignores, and what to tune instead."""
    if family in _BOOSTERS:
        if setting == "epochs":
            return "it trains boosting rounds, set by model.params.n_estimators: tune n_estimators instead"
        if setting == "learning_rate":
            return "its learning rate is the model parameter learning_rate: tune learning_rate (no training. prefix)"
        if setting == "early_stopping_patience":
            return ("it stops after training.early_stopping_rounds rounds without improvement: tune "
                    "training.early_stopping_rounds instead")
        return ("it fits the whole matrix with its own tree-growing algorithm, with no mini-batches, optimizer, "
                "schedule or mixed precision")
    if family == "torch" and setting == "early_stopping_rounds":
        return ("it stops after training.early_stopping_patience epochs without improvement: tune "
                "training.early_stopping_patience instead")
    if family == "sklearn":
        own = {"epochs": ("max_iter", "n_estimators"), "learning_rate": ("learning_rate", "learning_rate_init",
                                                                          "eta0"),
               "early_stopping_rounds": ("n_iter_no_change",), "early_stopping_patience": ("n_iter_no_change",)}
        params = _estimator_params(model_type)
        match = [p for p in own.get(setting, ()) if p in params]
        hint = f": tune its own parameter {match[0]} (no training. prefix) instead" if match else ""
        return f"it is fitted by one call of its fit(), which takes no training.* settings{hint}"
    return "its adapter does not read it"


def _ignored(key: str, family: str, model_type: str, setting: str, used: frozenset[str]) -> str:
    uses = ", ".join(f"training.{s}" for s in sorted(used - set(_TRAINING_NO_EFFECT)))
    tail = f" The training settings {model_type} uses: {uses}." if uses else ""
    return (f"tuning.space.{key}: {model_type} does not use training.{setting}, so every trial would train the "
            f"same model; {_instead(family, model_type, setting)}. Remove {key} from tuning.space.{tail}")


def _is_model_param(config: PipelineConfig, name: str, param: SearchParam) -> bool:
    """Whether the model's own check (the adapter's ``check_config``) knows ``name`` as a parameter."""
    from trainpipe.models import check_model_config

    value = param.choices[0] if param.type == "categorical" and param.choices else param.low
    model = config.model.model_copy(update={"params": {**config.model.params, name: value}})
    try:
        check_model_config(model, config.task)
    except ConfigError as exc:
        return f"model.params.{name}: unknown parameter" not in str(exc)
    return True


def check_consumed(config: PipelineConfig, space: Mapping[str, SearchParam]) -> None:
    """Refuse, all at once, the keys of ``space`` the model ignores or trainpipe sets itself."""
    from trainpipe.models import family_of

    model_type = config.model.type
    family = family_of(model_type)
    used = training_settings_used(model_type)
    owned = _OWNED.get(family, {})
    problems: list[str] = []
    for name, param in space.items():
        if name.startswith(TRAINING_PREFIX):
            setting = name[len(TRAINING_PREFIX):]
            if setting not in _ALL_TRAINING:
                continue  # unknown training setting: the value check names it with a did-you-mean
            if setting in _TRAINING_NO_EFFECT and setting in used:
                problems.append(f"tuning.space.{name}: {_TRAINING_NO_EFFECT[setting]}.")
            elif setting not in used:
                problems.append(_ignored(name, family, model_type, setting, used))
            continue
        if name in owned and _is_model_param(config, name, param):
            problems.append(f"tuning.space.{name}: {owned[name]}.")
        elif name in _ALL_TRAINING and not _is_model_param(config, name, param):
            if name in _TRAINING_NO_EFFECT:
                problems.append(f"tuning.space.{name}: {_TRAINING_NO_EFFECT[name]}.")
            elif name in used:
                problems.append(f"tuning.space.{name}: {name} is a training setting, not a {model_type} "
                                "parameter (keys without the training. prefix tune model.params). "
                                f"Write training.{name}.")
            else:
                problems.append(_ignored(name, family, model_type, name, used))
    if problems:
        raise ConfigError("\n".join(problems))


def space_notes(config: PipelineConfig, space: Mapping[str, Any]) -> list[str]:
    """Keys tuned and also fixed in the config: the trial's value wins (and train uses the best one)."""
    notes = []
    fixed_training = config.training.model_fields_set
    for name in space:
        if name.startswith(TRAINING_PREFIX):
            setting = name[len(TRAINING_PREFIX):]
            if setting in fixed_training:
                value = getattr(config.training, setting, None)
                notes.append(f"training.{setting} ({value!r}) is also tuned by tuning.space.{name}: each trial "
                             "uses its own value and train uses the best one found, so the fixed value is not "
                             "used while tuning is on.")
        elif name in config.model.params:
            notes.append(f"model.params.{name} ({config.model.params[name]!r}) is also tuned by "
                         f"tuning.space.{name}: each trial uses its own value and train uses the best one found, "
                         "so the fixed value is not used while tuning is on.")
    return notes
