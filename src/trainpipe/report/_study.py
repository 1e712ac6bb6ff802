"""The study page: an Optuna study (from its storage, or rebuilt from a run's ``trials.csv`` when it lived in
memory) with Optuna's own plotly figures, pruned vs completed trials and the cost of each trial."""

from __future__ import annotations

import contextlib
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError

STUDY_NAME_CHARS = 200


@dataclass
class StudyRecord:
    name: str
    storage: str  # as shown (passwords masked), or where it was rebuilt from
    direction: str
    metric: str
    trials: list[dict[str, Any]]  # number, state, value, seconds, cost, rounds, params
    counts: dict[str, int]
    total_cost: float
    total_cpu_seconds: float
    best: dict[str, Any] | None
    params: list[str]
    rebuilt_from: str = ""  # the trials.csv a study that lived in memory was rebuilt from
    summary: dict[str, Any] = field(default_factory=dict)  # the newest run's study_summary.json, if any
    study: Any = None  # the optuna.Study the figures are drawn from


def _summaries(state_dir: Path, name: str) -> list[tuple[Path, dict[str, Any]]]:
    """``(tune step folder, study_summary.json)`` of this project's runs of study ``name``, newest first."""
    found = []
    runs = state_dir / "runs"
    if runs.is_dir():
        for path in runs.glob("*/steps/*/study_summary.json"):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text())
                if data.get("study_name") == name:
                    found.append((path.stat().st_mtime, path.parent, data))
    return [(folder, data) for _, folder, data in sorted(found, key=lambda t: -t[0])]


def load_study(name: str, storage: str | None, state_dir: Path) -> StudyRecord:
    """Study ``name`` from ``storage`` (a ``tuning.storage`` URL); without one, from the storage this project's
    newest run of that study recorded, or, for a study that lived in memory, rebuilt from that run's
    ``trials.csv``. ConfigError (exit 2) when there is no such study."""
    if not name or len(name) > STUDY_NAME_CHARS or any(ord(ch) < 32 for ch in name):
        raise ConfigError(f"--study {name!r}: expected a study name (as tuning runs print it: `study NAME: ...`).")
    from trainpipe.tuning._storage import open_storage, parse_storage

    summaries = _summaries(state_dir, name)
    summary = summaries[0][1] if summaries else {}
    rebuilt_from = ""
    if storage is None and summary:
        recorded = str(summary.get("storage") or "")
        if recorded and recorded != "in-memory" and "***" not in recorded:
            storage = recorded
        elif recorded and recorded != "in-memory":
            raise ConfigError(f"--study {name}: its storage {recorded} has a password trainpipe does not keep; pass "
                              "--storage URL (the tuning.storage of the pipeline).")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is not None:
        spec = parse_storage(storage)
        if spec.kind == "memory":
            raise ConfigError("--storage: expected sqlite:///path.db, postgresql://..., or journal:///path.log.")
        try:
            study = optuna.load_study(study_name=name, storage=open_storage(spec))
        except KeyError as exc:
            raise ConfigError(f"--study {name}: no such study in {spec.shown}. Studies there: "
                              f"{', '.join(_names(spec)) or 'none'}.") from exc
        shown = spec.shown
    elif summaries:
        csv_path = summaries[0][0] / "trials.csv"
        if not csv_path.is_file():
            raise ConfigError(f"--study {name}: it lived in memory and {csv_path} is missing; nothing to show.")
        study = rebuild_study(name, csv_path, str(summary.get("direction", "minimize")))
        rebuilt_from, shown = str(csv_path), "in-memory (rebuilt from the run's trials.csv)"
    else:
        raise ConfigError(f"--study {name}: no run of this project tuned a study of that name (looked in "
                          f"{state_dir / 'runs'}), and no --storage was given. Pass --storage URL (the pipeline's "
                          "tuning.storage), or run from the project directory.")
    return _record(study, shown, rebuilt_from, summary)


def _names(spec: Any) -> list[str]:
    from trainpipe.tuning._storage import open_storage

    with contextlib.suppress(Exception):
        return [s.study_name for s in open_storage(spec).get_all_studies()][:20]
    return []


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def rebuild_study(name: str, csv_path: Path, direction: str) -> Any:
    """An in-memory Optuna study with the finished trials of ``trials.csv`` (params, value, state, cost): what
    a study that lived in the tuning process left behind. Distributions are inferred from the values seen."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fixed = {"number", "state", "value", "score_std", "n_folds", "rounds_trained", "rounds_budget", "wall_seconds",
             "cpu_seconds", "cost", "retry_of", "error", "last_intermediate"}
    params = [c for c in (rows[0].keys() if rows else []) if c not in fixed]
    dists: dict[str, Any] = {}
    for p in params:
        values = [r[p] for r in rows if r.get(p) not in (None, "")]
        numbers = [_float(v) for v in values]
        if values and all(n is not None for n in numbers):
            nums = [float(n) for n in numbers if n is not None]
            lo, hi = min(nums), max(nums)
            if all(float(v).is_integer() and "." not in v and "e" not in v.lower() for v in values):
                dists[p] = IntDistribution(int(lo), int(hi) if hi > lo else int(lo) + 1)
            else:
                dists[p] = FloatDistribution(lo, hi if hi > lo else lo + abs(lo or 1.0) * 1e-9,
                                             log=lo > 0 and hi / lo > 100)
        elif values:
            dists[p] = CategoricalDistribution(sorted(set(values)))
    study = optuna.create_study(study_name=name, direction="maximize" if direction.startswith("max") else "minimize")
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}
    for r in rows:
        state = states.get(str(r.get("state", "")).lower())
        if state is None:
            continue
        chosen = {p: _param(dists[p], r[p]) for p in dists if r.get(p) not in (None, "")}
        value = _float(r.get("value", ""))
        if state == TrialState.COMPLETE and value is None:
            continue
        attrs = {k: v for k in ("cost", "cpu_seconds", "wall_seconds", "rounds_trained", "rounds_budget")
                 if (v := _float(r.get(k, ""))) is not None}
        intermediate = {0: value} if state == TrialState.PRUNED and value is not None else None
        study.add_trial(create_trial(params=chosen, distributions={p: dists[p] for p in chosen},
                                     value=value if state == TrialState.COMPLETE else None, state=state,
                                     user_attrs=attrs, intermediate_values=intermediate))
    return study


def _param(dist: Any, text: str) -> Any:
    from optuna.distributions import FloatDistribution, IntDistribution

    if isinstance(dist, IntDistribution):
        return int(float(text))
    return float(text) if isinstance(dist, FloatDistribution) else text


def _record(study: Any, shown: str, rebuilt_from: str, summary: dict[str, Any]) -> StudyRecord:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    rows, params = [], []
    for t in trials:
        seconds = t.user_attrs.get("wall_seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": t.value,
                     "seconds": seconds, "cost": t.user_attrs.get("cost"),
                     "rounds": t.user_attrs.get("rounds_trained"), "params": dict(t.params)})
        params += [p for p in t.params if p not in params]
    counts = {s.name.lower(): sum(1 for t in trials if t.state == s) for s in
              (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)}
    best = None
    if counts["complete"]:
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": dict(b.params)}
    direction = study.direction.name.lower()
    metric = str(study.user_attrs.get("trainpipe.metric") or summary.get("metric") or "objective")
    return StudyRecord(name=study.study_name, storage=shown, direction=direction, metric=metric, trials=rows,
                       counts=counts, total_cost=float(sum(float(r["cost"] or 0.0) for r in rows)),
                       total_cpu_seconds=float(sum(float(t.user_attrs.get("cpu_seconds") or 0.0) for t in trials)),
                       best=best, params=params, rebuilt_from=rebuilt_from, summary=summary, study=study)


def study_figures(rec: StudyRecord) -> list[tuple[str, str, Any]]:
    """``(anchor, title, plotly figure)``: Optuna's own figures; one that cannot be drawn (too few trials for
    importances) is left out with its reason as the title."""
    import warnings

    from trainpipe._imports import optional_import

    optional_import("plotly", "the study report's figures (optuna.visualization)", "tuning")
    import optuna.visualization as vis

    out: list[tuple[str, str, Any]] = []
    complete = rec.counts.get("complete", 0)
    makers: list[tuple[str, str, Any, int]] = [("history", "Optimisation history", vis.plot_optimization_history, 1),
              ("importances", "Parameter importances", vis.plot_param_importances, 2),
              ("parallel", "Parallel coordinates", vis.plot_parallel_coordinate, 1),
              ("slices", "Slices", vis.plot_slice, 1)]
    for anchor, title, make, needed in makers:
        if complete < needed or (anchor != "history" and not rec.params):
            out.append((anchor, f"{title}: needs {needed} complete trial(s) with parameters", None))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = make(rec.study)
            fig.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 40, "b": 50}, height=420,
                              width=None, autosize=True, font={"family": "system-ui, sans-serif"})
            out.append((anchor, title, fig))
        except Exception as exc:  # e.g. importances of a parameter with a single value
            out.append((anchor, f"{title}: not drawn ({type(exc).__name__}: {str(exc)[:150]})", None))
    return out


__all__ = ["StudyRecord", "load_study", "rebuild_study", "study_figures"]
