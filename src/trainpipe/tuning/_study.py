"""Create or join a study and run trials from its queue until the queue or a budget is spent.

How several workers share one study without losing or repeating a trial: the process that creates the
study enqueues ``n_trials`` empty WAITING trials ("slots") and then marks the study ready. Every worker
(one process here, others on other machines) pops a WAITING trial, which the storage hands to exactly
one of them (a row lock in PostgreSQL, a lock file beside an SQLite database, the log order in a
journal), samples its parameters then, and never creates a trial of its own. So the study ends with exactly ``n_trials``
finished trials, plus one for each trial that was retried after its worker died. The claims, heartbeats and
retries go through Optuna's public API only (``_queue``).

A worker whose trial dies (SIGKILL, preempted machine) stops recording heartbeats; the next worker to
look fails that trial and enqueues one retry with the same parameters (once). While other workers'
trials are still running, a worker with nothing to pop waits for them, so a stale one is retried even
when it was the last. The sampler is re-seeded per trial from (seed, trial number): one worker with a
fixed seed gives the same study trial by trial, and concurrent workers never draw the same start.

With ``defaults_trial`` (every study the tune step creates), the first queued trial is the family's defaults
(an empty override, or the config's TF-IDF settings when the space tunes them; marked with the
``trainpipe.defaults`` user attr, never pruned): the creator enqueues it
once, before the other slots, so the chosen configuration is never worse than the untuned model on the
selection estimate. With a deadline (``tuning.timeout``, counted from the tune step's start), no trial starts
once the time left is only the reserve for the final refit, and a running trial stops within one round.
A multi-family study (``settings.families``) queues every family's defaults first (``family`` fixed); only the
first of them to run is exempt from the deadline, and each later trial's family is drawn by
:func:`trainpipe.tuning._multi.pick_family` (fixed through ``PartialFixedSampler``).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError, MissingExtraError, TrainingInterrupted
from trainpipe.config import CostConfig
from trainpipe.config._schema import SearchParam
from trainpipe.tuning._budget import Budget, Meter
from trainpipe.tuning._objective import RoundCounter
from trainpipe.tuning._selection import DEFAULTS_ATTR, PLAN_ATTR, fold_stats
from trainpipe.tuning._space import grid_points, suggest
from trainpipe.tuning._storage import StorageSpec, open_storage

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from trainpipe.tuning._queue import QueueStudy

SLOTS_ATTR = "trainpipe.slots"
ObjectiveFn = Callable[["optuna.Trial", dict[str, Any], RoundCounter], float]
TrialHook = Callable[["FrozenTrial"], None]


FINGERPRINT_ATTR = "trainpipe.fingerprint"


@dataclass(frozen=True)
class StudySettings:
    study_name: str
    storage: StorageSpec
    metric: str
    direction: str  # maximize | minimize
    n_trials: int
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 42
    timeout: float | None = None
    max_cost: float | None = None
    prices: CostConfig = field(default_factory=CostConfig)
    on_gpu: bool = False
    max_resource: int | None = None  # rounds/epochs of one trial, for the hyperband pruner
    wait_ready_s: float = 60.0
    fingerprint: str = ""  # what the study answers (config + data); joining workers must match it
    defaults_trial: bool = False  # trial 0 runs the family's defaults (the tune step always sets it)
    plan: Mapping[str, Any] | None = None  # the selection plan, stored by the creator for every worker
    families: tuple[str, ...] = ()  # a multi-family study's model types (``family`` in the space); () otherwise
    # what the defaults' trial is enqueued with beyond its family: the config's TF-IDF settings (tuned text keys)
    defaults_params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StudyRun:
    """What this worker did; the study's totals come from :func:`summarize`."""

    study: Any
    ran: list[int] = field(default_factory=list)
    stopped_by: str = "n_trials"


def trial_seed(seed: int, number: int) -> int:
    return (seed * 1_000_003 + number * 7_919) % (2**32)


def make_sampler(settings: StudySettings, space: Mapping[str, SearchParam], number: int = 0) -> Any:
    import optuna
    from optuna.exceptions import ExperimentalWarning

    seed = trial_seed(settings.seed, number)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":  # every grid trial is queued with its point fixed (see _open_study)
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if settings.sampler == "cmaes":
            try:
                import cmaes  # noqa: F401  (optuna's CMA-ES sampler needs it)
            except ImportError:
                raise MissingExtraError("cmaes", "tuning", "tuning.sampler: cmaes") from None
            return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=5, warn_independent_sampling=False,
                                                independent_sampler=optuna.samplers.RandomSampler(seed=seed))
        if settings.sampler == "tpe":
            startup = max(4, min(10, settings.n_trials // 4))
            if settings.families:  # a conditional space: each family's parameters modelled apart
                return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                                  group=True)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    raise ConfigError(f"tuning.sampler: expected tpe, random, grid or cmaes, got {settings.sampler!r}.")


def make_pruner(settings: StudySettings) -> Any:
    import optuna

    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "median":
        warmup = max(1, (settings.max_resource or 10) // 10)
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=warmup)
    if settings.pruner == "hyperband":
        max_resource: int | str = settings.max_resource or "auto"
        min_resource = max(1, (settings.max_resource or 27) // 27)
        return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max_resource,
                                              reduction_factor=3)
    raise ConfigError(f"tuning.pruner: expected median, hyperband or none, got {settings.pruner!r}.")


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every study creation at INFO; trainpipe reports the study itself."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(before, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def open_study(settings: StudySettings, space: Mapping[str, SearchParam]) -> Any:
    """Create the study with its slots, or join the existing one of that name."""
    with _quiet_optuna():
        return _open_study(settings, space)


def _open_study(settings: StudySettings, space: Mapping[str, SearchParam]) -> QueueStudy:
    import optuna
    from optuna.exceptions import DuplicatedStudyError

    from trainpipe.tuning._queue import QueueStudy

    storage = open_storage(settings.storage)
    sampler, pruner = make_sampler(settings, space), make_pruner(settings)
    try:
        optuna.create_study(storage=storage, study_name=settings.study_name, sampler=sampler, pruner=pruner,
                            direction=settings.direction, load_if_exists=False)  # type: ignore[arg-type]
    except DuplicatedStudyError:
        joined = QueueStudy(settings.study_name, storage, settings.storage, sampler=sampler, pruner=pruner)
        _check_joined(joined, settings)
        return joined
    study = QueueStudy(settings.study_name, storage, settings.storage, sampler=sampler, pruner=pruner)
    n = settings.n_trials
    import optuna.trial as ot

    study.set_user_attr("trainpipe.metric", settings.metric)
    study.set_metric_names([settings.metric])  # optuna-dashboard shows the metric, not "Objective 0"
    if settings.fingerprint:
        study.set_user_attr(FINGERPRINT_ATTR, settings.fingerprint)
    if settings.plan is not None:
        study.set_user_attr(PLAN_ATTR, dict(settings.plan))
    first = 0
    if settings.defaults_trial and settings.families:  # every family's defaults, before every other slot
        from trainpipe.tuning._multi import FAMILY_PARAM

        for family in settings.families:
            study.enqueue_trial({FAMILY_PARAM: family, **settings.defaults_params}, user_attrs={DEFAULTS_ATTR: True})
        first = len(settings.families)
        n = max(n, first)
    elif settings.defaults_trial:  # once, by the creator, before every other slot: it is popped first
        study.enqueue_trial(dict(settings.defaults_params), user_attrs={DEFAULTS_ATTR: True})
        first = 1
    if settings.sampler == "grid":  # the distinct points, each queued with its parameters fixed
        points = grid_points(space, settings.seed)[:n - first]
        n = len(points) + first
        for point in points:
            study.enqueue_trial(point)
    else:
        study.add_trials([ot.create_trial(state=ot.TrialState.WAITING) for _ in range(n - first)])
    study.set_user_attr(SLOTS_ATTR, n)  # last: joiners wait for this
    return study


def _check_joined(study: Any, settings: StudySettings) -> None:
    want = settings.direction
    have = study.direction.name.lower()
    if have != want:
        raise ConfigError(f"tuning: study {settings.study_name!r} in {settings.storage.shown} optimizes "
                          f"{have}, this config asks to {want} ({settings.metric}). Use another --study name.")
    deadline = time.monotonic() + settings.wait_ready_s
    while SLOTS_ATTR not in study.user_attrs:
        if time.monotonic() > deadline:
            if "trainpipe.metric" in study.user_attrs:  # set first by the creator: it stopped while queueing
                queued = len(study.get_trials(deepcopy=False))
                raise ConfigError(
                    f"tuning: study {settings.study_name!r} in {settings.storage.shown} was created by trainpipe, "
                    f"but the process creating it stopped before its trial queue was complete ({queued} of "
                    f"{settings.n_trials} trials queued). Use another --study name, or delete it with "
                    f"`optuna delete-study --study-name {settings.study_name} --storage URL` and start again.")
            raise ConfigError(f"tuning: study {settings.study_name!r} in {settings.storage.shown} was not created "
                              "by trainpipe (it has no trial queue). Use another --study name.")
        time.sleep(0.2)
    metric = study.user_attrs.get("trainpipe.metric")
    if metric and metric != settings.metric:
        raise ConfigError(f"tuning: study {settings.study_name!r} optimizes {metric}, this config asks for "
                          f"{settings.metric}. Use another --study name.")
    created_by = study.user_attrs.get(FINGERPRINT_ATTR)
    if settings.fingerprint and created_by and created_by != settings.fingerprint:
        raise ConfigError(
            f"tuning: study {settings.study_name!r} in {settings.storage.shown} was created by another config or "
            "other data (its search space, model, tuning settings, data or library versions differ), so its "
            "trials would not answer this run's question. Use another --study name (or the same config and "
            "data on every worker)."
        )


def spent_cost(study: Any) -> float:
    return float(sum(float(t.user_attrs.get("cost", 0.0)) for t in study.get_trials(deepcopy=False)))


def _others_running(study: Any) -> bool:
    from optuna.trial import TrialState

    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def run_study(settings: StudySettings, space: Mapping[str, SearchParam], objective: ObjectiveFn,
              on_trial_end: TrialHook | None = None, study: Any = None, *, started: float | None = None,
              reserve: Callable[[Any], float] | None = None) -> StudyRun:
    """Run trials from the study's queue until it is empty or a budget (timeout, max_cost) is spent.

    ``started``: the ``time.perf_counter()`` the timeout counts from (default: now); ``reserve(study)``: seconds
    of the timeout kept for what follows the study (the final refit)."""
    from trainpipe.tuning._queue import as_queue_study, claim, heartbeat_enabled, recover_dead_trials

    study = as_queue_study(study if study is not None else open_study(settings, space))
    run = StudyRun(study)
    budget = Budget(settings.timeout, settings.max_cost)
    if started is not None:
        budget.started = started
    poll = 0.5
    while True:
        recover_dead_trials(study)
        reason = budget.exhausted(spent_cost(study))
        deadline = None
        if settings.timeout is not None:
            deadline = budget.started + settings.timeout - (reserve(study) if reserve is not None else 0.0)
            if reason is None and time.perf_counter() >= deadline:
                reason = "timeout"
        if reason is not None:
            # the defaults' trial runs even past the deadline: it is the reference and the fallback model
            # (in a multi-family study, only until one family's defaults completed: that is the fallback)
            late = (claim(study, only_defaults=True) if reason == "timeout" and settings.defaults_trial
                    and not (settings.families and _defaults_done(study)) else None)
            if late is None:
                run.stopped_by = reason
                break
            frozen = _run_one(study, settings, space, late, objective, None)
            run.ran.append(frozen.number)
            if on_trial_end is not None:
                on_trial_end(frozen)
            continue
        trial_id = claim(study)
        if trial_id is None:
            if heartbeat_enabled(study) and _others_running(study):
                time.sleep(poll)  # another worker's trial may still go stale and come back for a retry
                continue
            run.stopped_by = "n_trials"
            break
        frozen = _run_one(study, settings, space, trial_id, objective, deadline)
        run.ran.append(frozen.number)
        if on_trial_end is not None:
            on_trial_end(frozen)
    return run


def _run_one(study: QueueStudy, settings: StudySettings, space: Mapping[str, SearchParam], trial_id: int,
             objective: ObjectiveFn, deadline: float | None = None) -> FrozenTrial:
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from trainpipe.tuning._queue import WORKER_ATTR, heartbeat, retry

    storage = study.queue_storage
    queued = storage.get_trial(trial_id)
    number, defaults = queued.number, bool(queued.user_attrs.get(DEFAULTS_ATTR))
    storage.set_trial_user_attr(trial_id, WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
    # the defaults' trial is never cut by the deadline: it is the fallback model. In a multi-family study only
    # the first one to run is (the others stop at the deadline like any trial, recorded as pruned)
    fallback = defaults and not (settings.families and _defaults_done(study))
    counter = RoundCounter(deadline=None if fallback else deadline, prunable=not defaults)
    state, value, error = TrialState.FAIL, None, ""
    counter_value = 0.0
    interrupted: BaseException | None = None
    with heartbeat(study, trial_id):
        try:
            # a fresh study object per trial: the sampler, re-seeded from (seed, number), sees the latest trials
            sampler = make_sampler(settings, space, number)
            if settings.families and not defaults:
                sampler = _family_sampler(study, settings, sampler, number, deadline)
            trial_study = study.for_trial(sampler)
            trial = optuna.Trial(trial_study, trial_id)
        except BaseException:
            storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
            raise
        meter = Meter(settings.prices, settings.on_gpu).start()
        try:
            params = _defaults_params(trial, settings, space) if defaults else suggest(trial, space)
            value = float(objective(trial, params, counter))
            if math.isfinite(value):
                state = TrialState.COMPLETE
                counter_value = value if settings.direction == "maximize" else -value
            else:
                error = f"objective value is {value}"
        except optuna.TrialPruned as exc:
            state, error = TrialState.PRUNED, str(exc)
        except (KeyboardInterrupt, TrainingInterrupted) as exc:
            interrupted, error = exc, f"interrupted: {exc}"
        except Exception as exc:  # a failing trial is recorded as failed and the study goes on
            error = f"{type(exc).__name__}: {exc}"[:1000]
        usage = meter.stop()
        attrs: dict[str, Any] = {"wall_seconds": usage.wall_seconds, "cpu_seconds": usage.cpu_seconds,
                                 "cost": usage.cost, "rounds_trained": counter.trained,
                                 "rounds_budget": counter.budget}
        if counter.fold_scores:
            repeats = int((settings.plan or {}).get("repeats", 1) or 1)
            mean, std, se = fold_stats(counter.fold_scores, repeats)
            if repeats > 1:
                attrs["cv_repeats"] = repeats
            attrs.update({"score_mean": mean, "score_std": std, "score_se": se, "n_folds": len(counter.fold_scores),
                          "fold_scores": counter.fold_scores, "fit_seconds": counter.fit_seconds,
                          "fit_rows": counter.fit_rows, "fold_rounds": counter.fold_rounds,
                          "best_rounds": counter.best_rounds})
        if state == TrialState.COMPLETE:
            attrs["oriented_value"] = counter_value  # higher is better, whatever the direction
        if error:
            attrs["error"] = error
        try:
            for key, val in attrs.items():
                trial.set_user_attr(key, val)
            if state == TrialState.COMPLETE:
                trial_study.tell(trial, value)
            else:
                trial_study.tell(trial, state=state)
        except UpdateFinishedTrialError:
            # another worker saw no heartbeat for longer than the grace period (this process was stalled),
            # failed the trial and queued its retry; that retry counts, this result is dropped
            pass
    if interrupted is not None:
        retry(study, trial_id)  # the interrupted trial is run again when the study is resumed
        raise interrupted
    return storage.get_trial(trial_id)


def _defaults_params(trial: Any, settings: StudySettings, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """The defaults' trial samples nothing: it reads what it was enqueued with (its family in a multi-family
    study, the config's TF-IDF settings when the space tunes them)."""
    fixed = suggest(trial, {n: space[n] for n in settings.defaults_params if n in space})
    if not settings.families:
        return fixed
    from trainpipe.tuning._multi import FAMILY_PARAM

    return {FAMILY_PARAM: trial.suggest_categorical(FAMILY_PARAM, list(settings.families)), **fixed}


def _family_sampler(study: QueueStudy, settings: StudySettings, sampler: Any, number: int,
                    deadline: float | None) -> Any:
    """The trial's sampler with ``family`` fixed to the family the cost-aware allocation draws."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    from trainpipe.tuning._multi import FAMILY_PARAM, pick_family

    remaining = None if deadline is None else deadline - time.perf_counter()
    by_cost = settings.timeout is not None or settings.max_cost is not None  # else timings must not steer it
    family = pick_family(study.get_trials(deepcopy=False), settings.families, settings.seed, number, remaining,
                         by_cost=by_cost)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.PartialFixedSampler({FAMILY_PARAM: family}, sampler)


def _defaults_done(study: Any) -> bool:
    from optuna.trial import TrialState

    return any(t.user_attrs.get(DEFAULTS_ATTR) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
