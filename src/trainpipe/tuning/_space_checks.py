"""Which search-space keys the chosen model consumes, checked before any data is read.

A key the model ignores (``training.batch_size`` for XGBoost), or one trainpipe sets itself (``objective``
from the task, ``eval_metric`` from ``tuning.metric``, ``random_state`` from ``training.seed``), would give
a study whose trials differ only in a recorded number: it is refused (exit 2) naming ``tuning.space.<key>``,
what the model uses instead and what to do. A key that is also fixed in ``model.params`` or ``training``
is honoured (the trial's value wins, as it always has) and reported as a note.

Which ``training.*`` settings a family reads, what it uses instead of the others, and which model parameters
trainpipe sets itself, the family declares (``ModelFamily.training_settings``, ``training_hint``,
``owned_params``); this module asks it.

Keys prefixed ``features.text_options.`` (``features.text_options.max_features``) tune the TF-IDF step of the
text columns (:func:`check_text_keys`): accepted only when the pipeline has text columns that go through
TF-IDF (``features.text``, or string columns the preprocess step inferred as free text), never for a family
that reads the raw text itself (``input_kind == "text"``, e.g. ``text_encoder``), and not with
``tuning.ensemble`` (the members of an ensemble share one fitted preprocessor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainpipe._exceptions import ConfigError
from trainpipe.config import PipelineConfig, TrainingConfig
from trainpipe.config._schema import SearchParam, TextOptions

TRAINING_PREFIX = "training."
TEXT_PREFIX = "features.text_options."
TEXT_OPTIONS = tuple(TextOptions.model_fields)

_ALL_TRAINING = frozenset(TrainingConfig.model_fields)
# training settings that never change what is learned: tuning them repeats one model
_TRAINING_NO_EFFECT = {
    "seed": "trainpipe seeds every trial from training.seed; a tuned seed picks the luckiest random draw, "
            "not a better model. Remove it from tuning.space; set training.seed to change the seed",
    "device": "it moves the same training to other hardware, so trials differ only in speed. Remove it from "
              "tuning.space; set training.device",
    "checkpoint_every": "it says how often a checkpoint is written, not what is learned. Remove it from "
                        "tuning.space; set training.checkpoint_every",
}


def training_settings_used(model_type: str) -> frozenset[str]:
    """The ``training.*`` settings the family of ``model_type`` reads (``ModelFamily.training_settings``)."""
    from trainpipe.models import family_for

    return family_for(model_type).reads_training(_ALL_TRAINING)


def _instead(model_type: str, setting: str) -> str:
    """What ``model_type`` uses in place of the training setting it ignores, and what to tune instead."""
    from trainpipe.models import family_for

    family = family_for(model_type)
    hint = family.training_hint(model_type, setting) if family.training_hint is not None else None
    return hint or "its adapter does not read it"


def _ignored(key: str, model_type: str, setting: str, used: frozenset[str]) -> str:
    uses = ", ".join(f"training.{s}" for s in sorted(used - set(_TRAINING_NO_EFFECT)))
    tail = f" The training settings {model_type} uses: {uses}." if uses else ""
    return (f"tuning.space.{key}: {model_type} does not use training.{setting}, so every trial would train the "
            f"same model; {_instead(model_type, setting)}. Remove {key} from tuning.space.{tail}")


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
    from trainpipe.models import family_for

    model_type = config.model.type
    used = training_settings_used(model_type)
    owned = family_for(model_type).owned_params
    problems: list[str] = []
    for name, param in space.items():
        if name.startswith(TEXT_PREFIX):
            continue  # the TF-IDF settings: check_text_keys
        if name.startswith(TRAINING_PREFIX):
            setting = name[len(TRAINING_PREFIX):]
            if setting not in _ALL_TRAINING:
                continue  # unknown training setting: the value check names it with a did-you-mean
            if setting in _TRAINING_NO_EFFECT and setting in used:
                problems.append(f"tuning.space.{name}: {_TRAINING_NO_EFFECT[setting]}.")
            elif setting not in used:
                problems.append(_ignored(name, model_type, setting, used))
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
                problems.append(_ignored(name, model_type, name, used))
    if problems:
        raise ConfigError("\n".join(problems))


def space_notes(config: PipelineConfig, space: Mapping[str, Any]) -> list[str]:
    """Keys tuned and also fixed in the config: the trial's value wins (and train uses the best one)."""
    notes = []
    fixed_training = config.training.model_fields_set
    fixed_text = config.features.text_options.model_fields_set
    for name in space:
        if name.startswith(TEXT_PREFIX):
            option = name[len(TEXT_PREFIX):]
            if option in fixed_text:
                value = getattr(config.features.text_options, option, None)
                notes.append(f"features.text_options.{option} ({value!r}) is also tuned by tuning.space.{name}: each "
                             "trial fits its own TF-IDF step with its value and train refits it with the best one, "
                             "so the fixed value is used only by the defaults' trial 0.")
        elif name.startswith(TRAINING_PREFIX):
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


def text_keys(space: Mapping[str, Any]) -> list[str]:
    """The keys of ``space`` that tune the TF-IDF step (``features.text_options.<option>``)."""
    return [name for name in space if name.startswith(TEXT_PREFIX)]


def reads_raw_text(config: PipelineConfig) -> bool:
    """Whether the pipeline's (lead) family reads the text columns itself, so no TF-IDF step is fitted."""
    from trainpipe.models import family_for
    from trainpipe.tuning._multi import lead_type

    return family_for(lead_type(config)).input_kind == "text"


def no_text_possible(config: PipelineConfig) -> bool:
    """True when the config alone shows there will be no TF-IDF column: none declared, and declared feature
    lists (which turn the inference of text columns off)."""
    fc = config.features
    return not fc.text and (fc.numeric is not None or fc.categorical is not None)


def _probe_text_values(param: SearchParam) -> list[Any]:
    if param.type == "categorical":
        return list(param.choices or [])
    assert param.low is not None and param.high is not None
    if param.type == "int":
        return [int(param.low), int(param.high)]
    return [param.low, param.high]


def check_text_keys(config: PipelineConfig, space: Mapping[str, SearchParam],
                    tfidf_columns: Sequence[str] | None) -> None:
    """Refuse, all at once, the ``features.text_options.*`` keys of ``space`` that cannot be tuned: an unknown
    option (did-you-mean), a value ``features.text_options`` refuses, no TF-IDF text column, a family that reads
    raw text, ``tuning.ensemble``. ``tfidf_columns``: the columns the preprocessor runs through TF-IDF, or None
    before the data is read (then only what the config alone decides is checked)."""
    import difflib

    keys = text_keys(space)
    if not keys:
        return
    problems: list[str] = []
    base = config.features.text_options.model_dump()
    for name in keys:
        option = name[len(TEXT_PREFIX):]
        if option not in TEXT_OPTIONS:
            close = difflib.get_close_matches(option, TEXT_OPTIONS, n=1, cutoff=0.5)
            hint = f" Did you mean '{TEXT_PREFIX}{close[0]}'?" if close else ""
            problems.append(f"tuning.space.{name}: unknown TF-IDF setting {option!r}.{hint} Settings: "
                            f"{', '.join(TEXT_PREFIX + o for o in TEXT_OPTIONS)}.")
            continue
        for value in _probe_text_values(space[name]):
            try:
                TextOptions.model_validate({**base, option: value})
            except ValueError as exc:
                problems.append(f"tuning.space.{name}: the value {value!r} is not a valid features.text_options."
                                f"{option} ({str(exc).splitlines()[-1].strip()}).")
                break
    shown = ", ".join(keys)
    if reads_raw_text(config):
        from trainpipe.tuning._multi import lead_type

        problems.append(f"tuning.space: {shown}: {lead_type(config)} reads the text columns itself (no TF-IDF step "
                        "is fitted), so the TF-IDF settings would change nothing. Remove them from tuning.space; "
                        "tune the model's own parameters instead (e.g. max_length, training.learning_rate).")
    elif (tfidf_columns is not None and not tfidf_columns) or (tfidf_columns is None and no_text_possible(config)):
        problems.append(f"tuning.space: {shown}: this pipeline has no text column going through TF-IDF, so there is "
                        "nothing for them to tune. Declare the text columns under features.text (string columns "
                        "with long, mostly distinct values are inferred as text when no feature lists are "
                        "declared), or remove these keys from tuning.space.")
    from trainpipe.tuning._ensemble import explicit_ensemble

    if explicit_ensemble(config) is not None:
        problems.append(f"tuning.space: {shown}: tuning.ensemble combines several trials' models behind one fitted "
                        "preprocessor, so its trials cannot each fit their own TF-IDF step. Remove these keys, or "
                        "remove tuning.ensemble.")
    if problems:
        raise ConfigError("\n".join(problems))
