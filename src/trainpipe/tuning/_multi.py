"""Several model families in one study: ``tuning.families`` (or ``model.type: auto``).

**The space.** One categorical parameter ``family`` (its choices: the model types), then each family's own
space with its names prefixed ``TYPE/`` (``xgboost/max_depth``, ``lightgbm/num_leaves``,
``torch_mlp/training.learning_rate``) and sampled only when ``family`` took that type (Optuna's conditional,
define-by-run spaces; TPE with ``group=True`` models each family's parameters apart). A family takes the
keys of ``tuning.space`` prefixed with its type, or its declared default space when there are none.
``model.params`` apply to ``model.type``'s family only; the other families start from their own defaults,
except bagged trees (ExtraTrees, RandomForest), which start from 300 trees, and a logistic regression, which
gets 1,000 iterations (:data:`STUDY_BASE_PARAMS`).
The TF-IDF settings (``features.text_options.*``) are the exception: shared by every family, written without a
prefix and sampled in every trial (one preprocessing per trial, whatever the family).

**The defaults** of every family are trials ``0 .. k-1`` (enqueued with ``family`` fixed), so the study knows
each family's quality and cost before it spends anything on search.

**Cost-aware allocation.** After the defaults, each trial's family is drawn (seeded by the trial number, so a
one-worker study is reproducible) with a weight that favours quality per second::

    w_f = exp(-(best - best_f) / se) * sqrt(fastest_cost / cost_f)

``best_f``: the family's best mean score so far (oriented so that higher is better); ``se``: the standard error
of the best trial's estimate (a family within the noise of the leader keeps most of its weight, one 3 SE
behind keeps 5 %); ``cost_f``: its mean wall seconds per finished trial (the square root: a slow family that
leads still gets trials, a slow one that trails gets few). A family with more than 25 finished trials per
parameter it searches (:data:`SATURATION_TRIALS_PER_PARAM`) has its weight scaled by ``25 d / n_f`` (after
the floor below): its space is explored, and more trials of it would mostly re-fit the noise (a logistic
regression's one ``C``).
The cost factor applies when the study has a time or cost budget (``timeout``, ``max_cost``); a study budgeted
in trials alone (``n_trials``) weighs by quality only, so that with one worker and a seed it is the same run to
run (timings differ). A family whose mean trial would not fit in the time left is skipped; every family with
a completed trial keeps at least 2 % of the largest weight; a family whose every trial failed gets none. The
sampler then proposes that family's parameters (``PartialFixedSampler`` fixing ``family``).

**Pruning.** ``pruner: auto`` is ``none`` in a multi-family study: pruners compare trials at the same step, and
a step is a boosting round in one family and an epoch in another. Set ``median`` or ``hyperband`` to prune
anyway.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError
from trainpipe.config import PipelineConfig
from trainpipe.config._schema import SearchParam

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

FAMILY_PARAM = "family"
SEP = "/"
AUTO = "auto"
# model.type: auto, per task kind: fast, strong tabular learners first. torch_mlp is left out: on CPU one of its
# trials costs 10-50 boosted trees' worth of time for a rarely better model (list it in tuning.families to try it).
# Classification adds a logistic regression (on the standardised, one-hot features): it costs almost nothing, and
# on some tables it is the best single model (benchmarks/automl.py, its defaults on trainpipe's split: breast_cancer
# test ROC AUC 0.995 against the tuned trees' 0.982 and FLAML's 0.984; penguins log loss 0.049 against 0.068) or a
# member the ensemble takes (wa_churn 0.851). A linear regressor is not added: Ridge's Boston rmse was 5.84
# against the trees' 4.3-4.6 (FLAML leaves linear models out of regression for the same reason)
AUTO_FAMILIES = {
    "classification": ("lightgbm", "xgboost", "sklearn.ensemble.ExtraTreesClassifier",
                       "sklearn.linear_model.LogisticRegression"),
    "regression": ("lightgbm", "xgboost", "sklearn.ensemble.ExtraTreesRegressor"),
}
MIN_SHARE = 0.02  # the smallest weight of a family with a completed trial, relative to the largest
# a family past this many trials per parameter it searches has its weight scaled by (that many / its trials):
# a one-parameter space (a logistic regression's C) is explored in a few dozen trials, and a cheap family that
# leads would otherwise take nearly every trial (penguins at 60 s: 225 of 233 trials went to C, one to
# ExtraTrees), leaving the ensemble no diverse members
SATURATION_TRIALS_PER_PARAM = 25


def is_multi(config: PipelineConfig) -> bool:
    """Whether the study searches over several families (``tuning.families`` or ``model.type: auto``)."""
    return config.tuning is not None and (config.tuning.families is not None or config.model.type == AUTO)


def _installed(model_type: str) -> bool:
    from trainpipe.models import family_for
    from trainpipe.models._family import installed_pins

    family = family_for(model_type)
    return not family.libraries or bool(installed_pins(family.libraries, first_only=True))


def auto_families(task: str) -> list[str]:
    """The families ``model.type: auto`` searches for ``task`` (installed ones only). With ``task: auto`` (not
    inferred yet) the task-neutral ones (the boosters), for the checks before any data is read."""
    if task == "auto":
        kinds = [t for t in AUTO_FAMILIES["classification"] if t in AUTO_FAMILIES["regression"]]
    else:
        kinds = list(AUTO_FAMILIES["regression" if task == "regression" else "classification"])
    found = [t for t in kinds if _installed(t)]
    if not found:
        raise ConfigError("model.type: auto found none of its families installed "
                          f"({', '.join(kinds)}). Install them with pip install \"trainpipe[boost]\", or list "
                          "the model types to search in tuning.families.")
    return found


def study_families(config: PipelineConfig, task: str) -> list[str]:
    """The model types the study searches (one: ``model.type``, when it is a single-family study)."""
    assert config.tuning is not None
    if config.tuning.families is not None:
        return list(config.tuning.families)
    if config.model.type == AUTO:
        return auto_families(task)
    return [config.model.type]


def lead_type(config: PipelineConfig, task: str = "auto") -> str:
    """The model type that stands for the config where one is needed before the study (the preprocessing's
    categorical encoding, the timing probe): ``model.type``, or with ``auto`` the first family searched."""
    if config.model.type != AUTO:
        return config.model.type
    return study_families(config, task)[0]


# the starting parameters of a family that is not model.type (model.params belong to model.type alone). Bagged
# trees get better with more trees and never worse, only slower: sklearn's 100 leave the score depending on the
# seed (breast_cancer, the same ExtraTrees settings: test ROC AUC 0.973-0.981 over 3 seeds with 100 trees,
# 0.981 with 500), so a study fits 300, as AutoGluon's defaults do; the cost-aware allocation accounts for it.
# A logistic regression gets 1,000 L-BFGS iterations (sklearn's 100 stop short of convergence on small C or
# many one-hot columns, with a warning per fold)
STUDY_BASE_PARAMS: dict[str, dict[str, Any]] = {
    **{f"sklearn.ensemble.{name}": {"n_estimators": 300}
       for name in ("ExtraTreesClassifier", "ExtraTreesRegressor", "RandomForestClassifier", "RandomForestRegressor")},
    "sklearn.linear_model.LogisticRegression": {"max_iter": 1000},
}


def family_config(config: PipelineConfig, model_type: str) -> PipelineConfig:
    """``config`` with its model section for ``model_type``: ``model.params`` when it is ``model.type``, else
    the family's :data:`STUDY_BASE_PARAMS` (none for most families: their own defaults)."""
    params = (dict(config.model.params) if model_type == config.model.type
              else dict(STUDY_BASE_PARAMS.get(model_type, {})))
    model = config.model.model_copy(update={"type": model_type, "params": params})
    return config.model_copy(update={"model": model})


def split_family(params: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(the trial's family, its parameters without the ``TYPE/`` prefix); (None, params) in a one-family study."""
    family = params.get(FAMILY_PARAM)
    if family is None:
        return None, dict(params)
    prefix = f"{family}{SEP}"
    return str(family), {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def _family_key_error(name: str, families: Sequence[str]) -> ConfigError:
    import difflib

    head = name.split(SEP, 1)[0] if SEP in name else name
    close = difflib.get_close_matches(head, list(families), n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}{SEP}{name.split(SEP, 1)[1]}'?" if close and SEP in name else ""
    return ConfigError(
        f"tuning.space.{name}: with tuning.families ({', '.join(families)}) every key of tuning.space names its "
        f"family, e.g. '{families[0]}{SEP}{name.split(SEP, 1)[-1]}'.{hint} A space that names the parameters of "
        "one family only would leave the others nothing to tune: families without keys here use their default "
        "space, so remove tuning.space to use every family's default space.")


def family_spaces(config: PipelineConfig, families: Sequence[str],
                  default_space: Callable[[str], dict[str, SearchParam]]) -> dict[str, dict[str, SearchParam]]:
    """Each family's own space (unprefixed names): its ``TYPE/`` keys of ``tuning.space``, else its default
    (``default_space(model_type)``)."""
    assert config.tuning is not None
    given = config.tuning.space
    if given is not None and not given:
        raise ConfigError("tuning.space: empty search space: remove `space:` to use every family's default space.")
    per: dict[str, dict[str, SearchParam]] = {f: {} for f in families}
    for name, param in (given or {}).items():
        head, _, rest = name.partition(SEP)
        if not rest or head not in per:
            raise _family_key_error(name, families)
        per[head][rest] = param
    for family in families:
        if not per[family]:
            per[family] = default_space(family)
    return per


def multi_space(per_family: Mapping[str, Mapping[str, SearchParam]]) -> dict[str, SearchParam]:
    """The study's conditional space: ``family``, then each family's parameters under ``TYPE/``."""
    families = list(per_family)
    space: dict[str, SearchParam] = {FAMILY_PARAM: SearchParam(type="categorical", choices=families)}
    for family, own in per_family.items():
        for name, param in own.items():
            when: dict[str, Any] = {f"{family}{SEP}{o}": v for o, v in (param.when or {}).items()}
            when[FAMILY_PARAM] = family
            space[f"{family}{SEP}{name}"] = param.model_copy(update={"when": when})
    return space


def check_families(config: PipelineConfig, task: str,
                   default_space: Callable[[str], dict[str, SearchParam]]) -> dict[str, dict[str, SearchParam]]:
    """Refuse an unknown family (with the registry's did-you-mean), a family that cannot learn ``task``, a
    ``model.type`` outside ``tuning.families``, and each family's bad space keys; return the spaces."""
    from trainpipe.models import family_for

    assert config.tuning is not None
    families = study_families(config, task)
    for name in families:
        if name == AUTO:
            raise ConfigError("tuning.families: 'auto' is a model.type, not a family; list model types, e.g. "
                              "[lightgbm, xgboost], or set model.type: auto without tuning.families.")
        try:
            family = family_for(name)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("model.type:", "tuning.families:", 1)) from None
        if task in ("binary", "multiclass", "regression"):
            req = family.task_requirement(name, {}) if family.task_requirement is not None else None
            tasks = tuple(req.tasks) if req is not None else tuple(family.tasks)
            if task not in tasks:
                raise ConfigError(f"tuning.families: {name!r} cannot learn a {task} task (it learns "
                                  f"{', '.join(tasks)}). Remove it from tuning.families, or use its "
                                  f"{task} counterpart.")
    if config.model.type != AUTO and config.model.type not in families:
        raise ConfigError(f"tuning.families: model.type {config.model.type!r} is not in the list "
                          f"{families}; add it (model.params apply to it), or set model.type: auto.")
    return family_spaces(config, families, default_space)


def pick_family(trials: Sequence[FrozenTrial], families: Sequence[str], seed: int, number: int,
                remaining: float | None = None, by_cost: bool = True) -> str:
    """The family of trial ``number`` (module docstring): quality per second, seeded by the trial number.
    ``by_cost=False`` (a study budgeted in trials only): quality alone, so the draw does not depend on timings."""
    finished: dict[str, list[float]] = {f: [] for f in families}
    searched: dict[str, set[str]] = {f: set() for f in families}  # the parameter names its trials sampled
    best: dict[str, float] = {}
    best_se: dict[str, float] = {}
    for t in trials:
        family = t.params.get(FAMILY_PARAM)
        if family not in finished or t.state.name not in ("COMPLETE", "PRUNED", "FAIL"):
            continue
        finished[family].append(float(t.user_attrs.get("wall_seconds", 0.0) or 0.0))
        searched[family].update(k for k in t.params if k.startswith(f"{family}{SEP}"))
        raw = t.user_attrs.get("oriented_value")
        oriented = float(raw) if raw is not None else -math.inf
        if t.state.name == "COMPLETE" and math.isfinite(oriented) and oriented > best.get(family, -math.inf):
            best[family] = oriented
            best_se[family] = float(t.user_attrs.get("score_se", 0.0) or 0.0)
    untried = [f for f in families if not finished[f]]
    if untried:
        return untried[0]
    if not best:
        return families[number % len(families)]
    leader = max(best, key=lambda f: best[f])
    scale = max(best_se[leader], 1e-6 * max(1.0, abs(best[leader])))
    cost = {f: max(sum(c) / len(c), 1e-3) for f, c in finished.items()}
    fastest = min(cost[f] for f in best)
    weights: dict[str, float] = {}
    for f in families:
        if f not in best:
            continue  # every finished trial of it failed
        w = math.exp(-min(50.0, (best[leader] - best[f]) / scale))
        if by_cost:
            w *= math.sqrt(fastest / cost[f])
        if remaining is not None and cost[f] > remaining and f != leader:
            w = 0.0
        weights[f] = w
    top = max(weights.values())
    if top <= 0.0:
        return leader
    weights = {f: (max(w, MIN_SHARE * top) if w > 0 else 0.0) for f, w in weights.items()}
    # saturation after the floor: the floor is a share of the unsaturated leader (scaling every weight alike
    # would change nothing)
    weights = {f: w * min(1.0, SATURATION_TRIALS_PER_PARAM * max(len(searched[f]), 1) / len(finished[f]))
               for f, w in weights.items()}
    rng = random.Random((seed * 1_000_003 + number * 7_919) % (2**32))  # as the trial's sampler seed
    names = [f for f in families if weights.get(f, 0.0) > 0]
    return rng.choices(names, weights=[weights[f] for f in names], k=1)[0]


def family_stats(trials: Sequence[FrozenTrial], families: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per family: trials, completed, best mean, mean wall seconds per finished trial (study_summary.json)."""
    out: dict[str, dict[str, Any]] = {}
    for f in families:
        mine = [t for t in trials if t.params.get(FAMILY_PARAM) == f]
        done = [t for t in mine if t.state.name == "COMPLETE" and t.value is not None]
        secs = [float(t.user_attrs.get("wall_seconds", 0.0) or 0.0) for t in mine
                if t.state.name in ("COMPLETE", "PRUNED", "FAIL")]
        oriented = [(float(t.user_attrs.get("oriented_value", 0.0)), t) for t in done
                    if t.user_attrs.get("oriented_value") is not None]
        top = max(oriented, key=lambda p: p[0])[1] if oriented else None
        out[f] = {"trials": len(mine), "complete": len(done),
                  "pruned": sum(t.state.name == "PRUNED" for t in mine),
                  "failed": sum(t.state.name == "FAIL" for t in mine),
                  "best_value": None if top is None else float(top.value),  # type: ignore[arg-type]
                  "best_trial": None if top is None else top.number,
                  "mean_trial_seconds": sum(secs) / len(secs) if secs else None}
    return out
