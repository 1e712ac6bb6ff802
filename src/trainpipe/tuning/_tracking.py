"""Study summary, the trials table, plots, and one nested tracking run per trial."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from trainpipe.tracking import Tracker

_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


def _state(frozen: FrozenTrial) -> str:
    return str(frozen.state.name).lower()


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of trials that were run again (their retry is another trial of the study)."""
    out: set[int] = set()
    for t in trials:
        out.update(int(n) for n in t.system_attrs.get("retry_history", []))
    return out


def summarize(study: Any, stopped_by: str = "", ran_here: list[int] | None = None) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished()]
    retried = retried_numbers(trials)
    count = {s: sum(1 for t in finished if t.state == s) for s in (TrialState.COMPLETE, TrialState.PRUNED,
                                                                     TrialState.FAIL)}

    def total(key: str) -> float:
        return float(sum(float(t.user_attrs.get(key, 0.0)) for t in trials))

    trained, budget = total("rounds_trained"), total("rounds_budget")
    pruned_saved = float(sum(float(t.user_attrs.get("rounds_budget", 0)) - float(t.user_attrs.get("rounds_trained", 0))
                             for t in finished if t.state == TrialState.PRUNED))
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "direction": study.direction.name.lower(),
        "metric": study.user_attrs.get("trainpipe.metric", ""),
        "n_trials": len(finished) - len(retried & {t.number for t in finished}),
        "n_finished": len(finished),
        "n_complete": count[TrialState.COMPLETE],
        "n_pruned": count[TrialState.PRUNED],
        "n_failed": count[TrialState.FAIL],
        "n_retried": len(retried),
        "n_waiting": sum(1 for t in trials if t.state == TrialState.WAITING),
        "n_running": sum(1 for t in trials if t.state == TrialState.RUNNING),
        "pruned_fraction": count[TrialState.PRUNED] / len(finished) if finished else 0.0,
        "best_value": None if best is None else float(best.value),
        "best_trial": None if best is None else int(best.number),
        "best_params": {} if best is None else dict(best.params),
        "total_cost": total("cost"),
        "cpu_seconds": total("cpu_seconds"),
        "wall_seconds": total("wall_seconds"),
        "rounds_trained": trained,
        "rounds_budget": budget,
        "work_saved_fraction": 1.0 - trained / budget if budget else 0.0,
        "pruning_saved_fraction": pruned_saved / budget if budget else 0.0,
        "stopped_by": stopped_by,
    }
    if ran_here is not None:
        summary["trials_run_by_this_worker"] = list(ran_here)
    return summary


def metrics_of(summary: dict[str, Any]) -> dict[str, float]:
    keys = ("n_trials", "n_complete", "n_pruned", "n_failed", "n_retried", "pruned_fraction", "best_value",
            "best_trial", "total_cost", "rounds_trained", "rounds_budget", "work_saved_fraction",
            "pruning_saved_fraction", "cpu_seconds")
    return {k: float(summary[k]) for k in keys if summary.get(k) is not None}


def write_trials_csv(study: Any, path: Path) -> None:
    trials = study.get_trials(deepcopy=False)
    names = sorted({p for t in trials for p in t.params})
    cols = ["number", "state", "value", "score_std", "n_folds", *names, "rounds_trained", "rounds_budget",
            "wall_seconds", "cpu_seconds", "cost", "retry_of", "error"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        for t in trials:
            history = t.system_attrs.get("retry_history", [])
            value = t.value if t.state.name == "COMPLETE" and t.value is not None else ""
            row = [t.number, _state(t), value, t.user_attrs.get("score_std", ""), t.user_attrs.get("n_folds", ""),
                   *(t.params.get(n, "") for n in names),
                   t.user_attrs.get("rounds_trained", ""), t.user_attrs.get("rounds_budget", ""),
                   t.user_attrs.get("wall_seconds", ""), t.user_attrs.get("cpu_seconds", ""),
                   t.user_attrs.get("cost", ""), history[-1] if history else "", t.user_attrs.get("error", "")]
            writer.writerow(row)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def log_trial(tracker: Tracker, parent_run_id: str | None, frozen: FrozenTrial, study_name: str) -> str:
    """One nested run: params, the intermediate curve, state, value, resources and cost."""
    tags = {"trainpipe.kind": "trial", "optuna.study": study_name, "optuna.trial": str(frozen.number),
            "optuna.state": _state(frozen)}
    if frozen.user_attrs.get("trainpipe.defaults"):
        tags["optuna.defaults"] = "true"  # the family's defaults, the reference every trial must beat
    if frozen.user_attrs.get("error"):
        tags["optuna.error"] = str(frozen.user_attrs["error"])[:5000]
    history = frozen.system_attrs.get("retry_history", [])
    if history:
        tags["optuna.retry_of"] = str(history[-1])
    run_id = tracker.start_run(f"trial-{frozen.number}", parent_id=parent_run_id, tags=tags)
    if frozen.params:
        tracker.log_params(run_id, frozen.params)
    keys = ("wall_seconds", "cpu_seconds", "cost", "rounds_trained", "rounds_budget", "score_mean", "score_std",
            "n_folds")
    metrics: dict[str, float] = {k: float(frozen.user_attrs[k]) for k in keys if k in frozen.user_attrs}
    if frozen.state.name == "COMPLETE" and frozen.value is not None and math.isfinite(frozen.value):
        metrics["value"] = float(frozen.value)  # a pruned trial's value is only its last intermediate value
    tracker.log_metrics(run_id, metrics)
    curve = [v for _, v in sorted(frozen.intermediate_values.items())]
    if curve:
        tracker.log_metric_history(run_id, "intermediate_value", curve)
    tracker.end_run(run_id, _STATUS.get(frozen.state.name, "KILLED"))
    return run_id


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def plot_history(study: Any, path: Path) -> bool:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not done:
        return False
    maximize = study.direction.name == "MAXIMIZE"
    xs = [t.number for t in done]
    ys = [float(t.value) for t in done]
    best, running = [], None
    for y in ys:
        running = y if running is None else (max(running, y) if maximize else min(running, y))
        best.append(running)
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    fig, ax = _figure((7, 4))
    ax.scatter(xs, ys, s=14, label="complete trial")
    ax.step(xs, best, where="post", color="tab:red", label="best so far")
    if pruned:
        ax.scatter([t.number for t in pruned], [min(ys)] * len(pruned), marker="x", color="grey", s=12,
                   label="pruned (at the bottom)")
    ax.set(xlabel="trial", ylabel=str(study.user_attrs.get("trainpipe.metric", "objective")),
           title="Optimization history")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def param_importances(study: Any) -> tuple[dict[str, float], str]:
    """Importances, or an empty dict and why they could not be computed."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}, f"needs at least 3 complete trials, got {len(complete)}"
    try:
        with warnings.catch_warnings():  # "some regimes have less than 2 trials": expected in small studies
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(study)
            tuned = [t for t in complete if t.params]
            if not importances and len(tuned) >= 2:
                # Optuna before 5.0 ranks only the parameters every trial has, and the defaults' trial has none
                from trainpipe.tuning._study import _quiet_optuna

                with _quiet_optuna():
                    without_defaults = optuna.create_study(directions=study.directions)
                without_defaults.add_trials(tuned)
                importances = optuna.importance.get_param_importances(without_defaults)
    except (ValueError, RuntimeError) as exc:
        return {}, f"{type(exc).__name__}: {exc}"
    return {k: float(v) for k, v in importances.items()}, ""


def plot_importances(importances: dict[str, float], path: Path) -> bool:
    if not importances:
        return False
    names = list(importances)[::-1]
    fig, ax = _figure((6, 0.35 * len(names) + 1.5))
    ax.barh(names, [importances[n] for n in names])
    ax.set(xlabel="importance", title="Hyperparameter importances")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True
