"""The search space: from ``tuning.space`` (or a default per model family) to ``trial.suggest_*`` calls.

Keys prefixed ``training.`` (``training.learning_rate``) tune the ``training`` section; every other key is
a model parameter; a key the model ignores or trainpipe sets itself is refused (``_space_checks``). Without
``space:`` the default space the model's family declares (``ModelFamily.default_space``) is used;
``space: {}`` is refused. A parameter with ``when: {other: value}`` is sampled only in trials where the
categorical parameter ``other`` took ``value`` (Optuna's define-by-run conditional spaces).

Keys prefixed ``features.text_options.`` (``max_features``, ``min_df``, ``analyzer``, ``sublinear_tf``) tune the
TF-IDF step of the text columns: each trial's folds are preprocessed with its settings (the tune step's fold
source re-fits the preprocessor per distinct setting) and train refits the preprocessor with the chosen ones.
Without ``space:``, a pipeline whose text columns go through TF-IDF tunes :func:`default_text_space` beside the
family's default space (not with ``tuning.ensemble``, whose members share one preprocessor). In a multi-family
study these keys are written without a family prefix: the text settings are shared by every family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError
from trainpipe.config import PipelineConfig, TrainingConfig
from trainpipe.config._schema import SearchParam
from trainpipe.tuning._space_checks import TEXT_PREFIX, TRAINING_PREFIX, check_consumed, check_text_keys, text_keys

if TYPE_CHECKING:
    import optuna


def default_space(model_type: str) -> dict[str, SearchParam]:
    """The search space used when ``tuning.space`` is not given: the one the model's family declares."""
    from trainpipe.models import family_for

    space = family_for(model_type).space_for(model_type)
    if not space:
        raise ConfigError(
            f"tuning.space: there is no default search space for {model_type}. "
            "List the parameters to tune under tuning.space, e.g. "
            "{alpha: {type: float, low: 0.0001, high: 10, log: true}}."
        )
    try:
        return {name: p if isinstance(p, SearchParam) else SearchParam.model_validate(p) for name, p in space.items()}
    except ValueError as exc:
        raise ConfigError(f"tuning.space: the default search space the {model_type} family declares is not "
                          f"valid ({exc}); list the parameters to tune under tuning.space.") from None


# features.text_options.max_features choices of the default text space (per analyzer; plus the config's value)
DEFAULT_MAX_FEATURES = (2000, 5000, 20000, 50000)
DEFAULT_MIN_DF_HIGH = 5


def default_text_space(config: PipelineConfig) -> dict[str, SearchParam]:
    """The TF-IDF part of the default space: ``max_features`` (a few sizes, categorical so that trials share
    their preprocessed folds), ``min_df`` 1..5 and the ``analyzer``. Every range holds the config's own value,
    which the defaults' trial 0 takes."""
    from trainpipe.features._text import text_options

    opts = text_options(config.features)
    sizes: list[Any] = sorted({*DEFAULT_MAX_FEATURES, *([opts["max_features"]] if opts["max_features"] else [])})
    if opts["max_features"] is None:
        sizes.append(None)  # all terms: the config's value
    return {f"{TEXT_PREFIX}max_features": SearchParam(type="categorical", choices=sizes),
            f"{TEXT_PREFIX}min_df": SearchParam(type="int", low=1, high=max(DEFAULT_MIN_DF_HIGH, opts["min_df"])),
            f"{TEXT_PREFIX}analyzer": SearchParam(type="categorical", choices=["word+char", "word", "char"])}


def with_text_part(config: PipelineConfig, space: dict[str, SearchParam],
                   tfidf_columns: Sequence[str] | None) -> dict[str, SearchParam]:
    """``space`` plus :func:`default_text_space` when the pipeline has TF-IDF columns (``tfidf_columns``; None:
    not known yet, nothing added) and no explicit ``tuning.ensemble`` (``model.type: auto``'s own ensemble yields
    to the text settings)."""
    from trainpipe.tuning._ensemble import explicit_ensemble

    if not tfidf_columns or explicit_ensemble(config) is not None:
        return space
    return {**space, **default_text_space(config)}


def defaults_text_params(config: PipelineConfig, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """The config's TF-IDF settings for the text keys of ``space`` whose range holds them: the values the
    defaults' trial 0 is enqueued with (a value outside the range is not recorded; the trial uses it anyway)."""
    from trainpipe.features._text import text_options

    opts = text_options(config.features)
    out: dict[str, Any] = {}
    for name in text_keys(space):
        option, param = name[len(TEXT_PREFIX):], space[name]
        value = opts.get(option)
        if param.type == "categorical":
            if value in (param.choices or []):
                out[name] = value
        elif (value is not None and not isinstance(value, bool) and param.low is not None
              and param.high is not None and param.low <= value <= param.high):
            out[name] = value
    return out


def resolve_space(config: PipelineConfig, tfidf_columns: Sequence[str] | None = None) -> dict[str, SearchParam]:
    """``tuning.space``, or the family's default space (plus the TF-IDF part when ``tfidf_columns`` is given and
    not empty: the columns the preprocessor runs through TF-IDF)."""
    if config.tuning is None:
        raise ConfigError("tuning: this pipeline has no tuning section.")
    if config.tuning.space is None:
        return with_text_part(config, default_space(config.model.type), tfidf_columns)
    if not config.tuning.space:
        raise ConfigError("tuning.space: empty search space: remove `space:` to use the model's default space, "
                          "or list parameters to tune under it, e.g. "
                          "{max_depth: {type: int, low: 3, high: 10}}.")
    return dict(config.tuning.space)


def _active(param: SearchParam, chosen: Mapping[str, Any]) -> bool | None:
    """True/False once the conditions can be decided, None while a condition's parameter is undecided."""
    for other, value in (param.when or {}).items():
        if other not in chosen:
            return None
        if chosen[other] != value:
            return False
    return True


def suggest(trial: optuna.Trial, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """Sample one point; conditional parameters after the parameters they depend on."""
    chosen: dict[str, Any] = {}
    pending = dict(space)
    skipped: set[str] = set()
    while pending:
        progress = False
        for name, param in list(pending.items()):
            if any(o in skipped for o in (param.when or {})):
                skipped.add(name)
                del pending[name]
                progress = True
                continue
            active = _active(param, chosen)
            if active is None:
                continue
            del pending[name]
            progress = True
            if not active:
                skipped.add(name)
                continue
            chosen[name] = _suggest_one(trial, name, param)
        if not progress:  # a cycle of conditions; the config check refuses these
            raise ConfigError(f"tuning.space: conditions of {sorted(pending)} refer to each other in a cycle.")
    return chosen


def _suggest_one(trial: optuna.Trial, name: str, p: SearchParam) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(name, list(p.choices or []))
    assert p.low is not None and p.high is not None  # validated by SearchParam
    if p.type == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(name, float(p.low), float(p.high), step=p.step, log=p.log)


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model params, training overrides) from a trial's parameters (its TF-IDF settings: :func:`text_params`)."""
    model = {k: v for k, v in params.items() if not k.startswith((TRAINING_PREFIX, TEXT_PREFIX))}
    training = {k[len(TRAINING_PREFIX):]: v for k, v in params.items() if k.startswith(TRAINING_PREFIX)}
    return model, training


def text_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's TF-IDF settings, ``{option: value}`` (empty when the space tunes none)."""
    return {k[len(TEXT_PREFIX):]: v for k, v in params.items() if k.startswith(TEXT_PREFIX)}


def grid_of(space: Mapping[str, SearchParam]) -> dict[str, list[Any]]:
    """All values per parameter for ``sampler: grid``; floats need a ``step``."""
    import numpy as np

    grid: dict[str, list[Any]] = {}
    for name, p in space.items():
        if p.type == "categorical":
            grid[name] = list(p.choices or [])
        elif p.type == "int":
            assert p.low is not None and p.high is not None
            grid[name] = list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
        else:
            if p.step is None or p.low is None or p.high is None:
                raise ConfigError(f"tuning.space.{name}: sampler 'grid' needs a 'step' for float parameters "
                                  "(or use type: categorical with the values to try).")
            n = int(np.floor((p.high - p.low) / p.step + 1e-9)) + 1
            grid[name] = [round(p.low + i * p.step, 12) for i in range(n)]
    return grid


def grid_points(space: Mapping[str, SearchParam], seed: int) -> list[dict[str, Any]]:
    """The distinct points of the grid, conditions applied (a parameter whose ``when`` does not hold is left
    out, so the depthwise half of a grid is not repeated once per max_leaves value), shuffled by ``seed``."""
    import itertools
    import random

    grid = grid_of(space)
    names = list(grid)
    points: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    for combo in itertools.product(*(grid[n] for n in names)):
        full = dict(zip(names, combo, strict=True))
        active: dict[str, bool] = {}

        def is_active(name: str, full: dict[str, Any] = full, active: dict[str, bool] = active) -> bool:
            if name not in active:
                conditions = (space[name].when or {}).items()
                active[name] = all(is_active(o) and full[o] == v for o, v in conditions)
            return active[name]

        point = {n: full[n] for n in names if is_active(n)}
        points.setdefault(tuple(point.items()), point)
    ordered = list(points.values())
    random.Random(seed).shuffle(ordered)
    return ordered


def _probe_values(p: SearchParam) -> list[Any]:
    if p.type == "categorical":
        return list(p.choices or [])
    assert p.low is not None and p.high is not None
    if p.type == "int":
        return [int(p.low), int(p.high)]
    return [float(p.low), float(p.high)]


def check_space(config: PipelineConfig, task: str | None = None,
                tfidf_columns: Sequence[str] | None = None) -> dict[str, SearchParam]:
    """Refuse a space the model cannot take (unknown parameter, bound out of range, a key the model ignores or
    trainpipe sets itself), before any trial. A multi-family study (``tuning.families``, ``model.type: auto``)
    checks each family's space and returns the conditional space over them (``trainpipe.tuning._multi``);
    ``task``: the inferred task (default ``config.task``). ``tfidf_columns``: the columns the preprocessor runs
    through TF-IDF (the tune step knows them from the preprocess step), or None before the data is read."""
    from trainpipe.tuning._multi import SEP, check_families, family_config, is_multi, multi_space

    if not is_multi(config):
        space = resolve_space(config, tfidf_columns)
        check_text_keys(config, space, tfidf_columns)
        return _check_one(config, space)
    assert config.tuning is not None
    given = config.tuning.space or {}
    prefixed = [n for n in given if SEP in n and n.split(SEP, 1)[1].startswith(TEXT_PREFIX)]
    if prefixed:
        raise ConfigError(f"tuning.space.{prefixed[0]}: the TF-IDF settings are shared by every family of the study "
                          f"(one preprocessing per trial); write {prefixed[0].split(SEP, 1)[1]} without the family "
                          "prefix.")
    shared = {n: p for n, p in given.items() if n.startswith(TEXT_PREFIX)}
    if config.tuning.space is None:
        shared = with_text_part(config, {}, tfidf_columns)
    check_text_keys(config, shared, tfidf_columns)
    tuning = config.tuning
    if tuning.space is not None and len(shared) < len(tuning.space):
        # each family's keys are TYPE/ prefixed; the shared TF-IDF keys are not theirs
        rest = {n: p for n, p in tuning.space.items() if not n.startswith(TEXT_PREFIX)}
        config = config.model_copy(update={"tuning": tuning.model_copy(update={"space": rest})})
    elif shared and tuning.space is not None:  # only TF-IDF keys: every family tunes its default space
        config = config.model_copy(update={"tuning": tuning.model_copy(update={"space": None})})
    per = check_families(config, task or config.task, default_space)
    for family, own in per.items():
        assert config.tuning is not None
        scoped = family_config(config, family)
        scoped = scoped.model_copy(update={"tuning": config.tuning.model_copy(update={"space": own,
                                                                                       "families": None})})
        try:
            _check_one(scoped, own)
        except ConfigError as exc:
            text = str(exc)
            for name in own:
                text = text.replace(f"tuning.space.{name}", f"tuning.space.{family}{SEP}{name}")
            raise ConfigError(f"tuning.families: {family}: {text}") from None
    return {**multi_space(per), **shared}


def _check_one(config: PipelineConfig, space: dict[str, SearchParam]) -> dict[str, SearchParam]:
    from trainpipe.models import check_model_config

    if not space:
        raise ConfigError("tuning.space: nothing to tune; list at least one parameter.")
    if config.tuning is not None and config.tuning.sampler == "grid":
        grid_of(space)
    check_consumed(config, space)
    fields = set(TrainingConfig.model_fields)
    base_training = config.training.model_dump()
    for name, param in space.items():
        if name.startswith(TEXT_PREFIX):
            continue  # checked by check_text_keys
        for value in _probe_values(param):
            if name.startswith(TRAINING_PREFIX):
                key = name[len(TRAINING_PREFIX):]
                if key not in fields:
                    import difflib

                    close = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.6)
                    hint = f" Did you mean 'training.{close[0]}'?" if close else ""
                    raise ConfigError(f"tuning.space.{name}: unknown training setting.{hint} "
                                      f"Settings: {', '.join(sorted(fields))}.")
                try:
                    TrainingConfig.model_validate({**base_training, key: value})
                except ValueError as exc:
                    raise ConfigError(f"tuning.space.{name}: the value {value!r} is not a valid "
                                      f"training.{key} ({str(exc).splitlines()[-1].strip()}).") from None
                continue
            model = config.model.model_copy(update={"params": {**config.model.params, name: value}})
            try:
                check_model_config(model, config.task)
            except ConfigError as exc:
                text = str(exc).replace(f"model.params.{name}:", f"tuning.space.{name}:")
                if not text.startswith("tuning.space"):
                    text = f"tuning.space.{name} (value {value!r}): {text}"
                raise ConfigError(text) from None
    return space
