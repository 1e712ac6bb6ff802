"""Objective metric and direction, per-trial resource use and cost, and the study's budgets.

A trial's cost is ``cpu_seconds / 3600 * cost.cpu_hour``, plus ``wall_seconds / 3600 * cost.gpu_hour``
when it trained on a GPU. Budgets (``n_trials``, ``timeout``, ``max_cost``) are checked between trials: a
running trial is never cut, the study stops cleanly before the next one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from trainpipe._exceptions import ConfigError
from trainpipe.config import CostConfig, TuningConfig


def objective_metric(tuning: TuningConfig, task: str) -> str:
    """``tuning.metric``, or the task's default (roc_auc, log_loss, rmse; roc_auc while the task is ``auto``)."""
    from trainpipe.evaluation._metrics import METRICS, check_metric_names, task_hint
    from trainpipe.tasks import registered_tasks, task_for

    name = tuning.metric or (task_for(task).tuning_metric if task in registered_tasks() else "roc_auc")
    check_metric_names([name], key="tuning.metric")
    if task != "auto" and task not in METRICS[name].tasks:
        raise ConfigError(f"tuning.metric: {name!r} does not apply to a {task} task. {task_hint(name, task)}"
                          f"Use one of {[m for m, v in METRICS.items() if task in v.tasks]}.")
    return name


def infer_direction(metric: str, direction: str = "auto") -> str:
    """``maximize`` or ``minimize``: the configured one, else from the metric registry."""
    from trainpipe.evaluation._metrics import METRICS

    known = METRICS.get(metric)
    if known is None:
        raise ConfigError(f"tuning.metric: unknown metric {metric!r}. Known metrics: {', '.join(METRICS)}.")
    inferred = "maximize" if known.greater_is_better else "minimize"
    if direction == "auto":
        return inferred
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"tuning.direction: expected auto, maximize or minimize, got {direction!r}.")
    if direction != inferred:
        # Every built-in metric has one sensible direction. The opposite would search for the worst model,
        # and the per-round pruning signal (oriented by the metric) would disagree with the study.
        better = "higher" if known.greater_is_better else "lower"
        raise ConfigError(f"tuning.direction: {direction} contradicts tuning.metric {metric!r}, where {better} is "
                          f"better: the study would look for the worst model. Remove tuning.direction (auto "
                          f"follows the metric) or set it to {inferred}.")
    return direction


def _cpu_seconds() -> float:
    """CPU seconds of this process and its children (getrusage: microseconds, where os.times has ticks)."""
    try:
        import resource
    except ImportError:  # not POSIX
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Usage:
    """Resources one trial used."""

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    cost: float = 0.0


@dataclass
class Meter:
    """Measures CPU and wall time between ``start`` and ``stop`` and prices them."""

    prices: CostConfig
    on_gpu: bool = False
    _wall: float = 0.0
    _cpu: float = 0.0

    def start(self) -> Meter:
        self._wall, self._cpu = time.perf_counter(), _cpu_seconds()
        return self

    def stop(self) -> Usage:
        wall = max(0.0, time.perf_counter() - self._wall)
        cpu = max(0.0, _cpu_seconds() - self._cpu)
        return Usage(wall, cpu, trial_cost(cpu, wall, self.prices, self.on_gpu))


def trial_cost(cpu_seconds: float, wall_seconds: float, prices: CostConfig, on_gpu: bool = False) -> float:
    cost = cpu_seconds / 3600.0 * prices.cpu_hour
    if on_gpu:
        cost += wall_seconds / 3600.0 * prices.gpu_hour
    return cost


@dataclass
class Budget:
    """What may still be spent. ``spent_cost`` counts every trial of the study (all workers)."""

    timeout: float | None = None
    max_cost: float | None = None
    started: float = field(default_factory=time.perf_counter)

    def exhausted(self, spent_cost: float) -> str | None:
        """The name of the spent budget, or None while the study may go on."""
        if self.timeout is not None and time.perf_counter() - self.started >= self.timeout:
            return "timeout"
        if self.max_cost is not None and spent_cost >= self.max_cost:
            return "max_cost"
        return None
