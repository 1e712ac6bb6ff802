"""``tuning.ensemble``: Caruana's greedy ensemble selection on the trials' out-of-fold predictions.

Every completed trial of this worker keeps its validation predictions on each fold of the selection plan
(class probabilities, or values for regression); concatenated over the folds they are its out-of-fold
predictions (with ``cv`` every training row once; with ``repeated_holdout`` the held-out rows of each
repeat; with ``holdout`` the validation split, which the ensemble is then chosen on, and the summary says
so). The ``candidates`` best trials are the pool, plus the best trial of every family of a multi-family
study that is not among them: the top trials of a study are mostly near-copies from one family (penguins at
60 s: the 10 best were 9 LightGBM configurations), while the gain of an ensemble comes from members that err
differently. Starting from nothing, ``size`` times, the trial whose
addition makes the running average score best is added (with replacement, so a trial picked twice weighs
twice; ties go to the lower trial number), and the best ensemble along that path is kept (Caruana et al.,
"Ensemble selection from libraries of models", ICML 2004). Weights are its pick counts over their sum.

The ensemble replaces the chosen trial only when its out-of-fold score beats that trial's; otherwise the
single model is kept (and the summary says why). Trials of other workers (a shared study) have no
predictions here and are not candidates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trainpipe.config import PipelineConfig
from trainpipe.config._schema import EnsembleConfig

if TYPE_CHECKING:
    import numpy as np
    from optuna.trial import FrozenTrial

    from trainpipe.data import TaskInfo

# the ensemble model.type: auto builds when tuning.ensemble is not set: more rounds than the explicit default (5) so
# that weights are finer, from the 10 best trials (whose refits the budget reserves)
AUTO_ENSEMBLE = EnsembleConfig(size=10, candidates=10)


def explicit_ensemble(config: PipelineConfig) -> EnsembleConfig | None:
    """``tuning.ensemble`` as written: a mapping, or ``true`` (the defaults); None when unset or ``false``."""
    value = None if config.tuning is None else config.tuning.ensemble
    if value is True:
        return EnsembleConfig()
    return value if isinstance(value, EnsembleConfig) else None


def ensemble_settings(config: PipelineConfig, tunes_text: bool = False) -> EnsembleConfig | None:
    """The ensemble the study builds: the explicit one; with ``model.type: auto`` and ``tuning.ensemble`` unset,
    :data:`AUTO_ENSEMBLE` (AutoML libraries return an ensemble by default: AutoGluon, auto-sklearn, H2O) unless
    the study tunes TF-IDF settings (``tunes_text``: every trial fits its own preprocessor, an ensemble shares
    one); ``tuning.ensemble: false`` turns it off."""
    explicit = explicit_ensemble(config)
    if explicit is not None or config.tuning is None or config.tuning.ensemble is False:
        return explicit
    from trainpipe.tuning._multi import AUTO

    return AUTO_ENSEMBLE if config.model.type == AUTO and not tunes_text else None


def _score(metric: str, task: TaskInfo, y: np.ndarray, pred: np.ndarray) -> float:
    import numpy as np

    from trainpipe.evaluation._metrics import compute_metrics

    if task.is_classification:
        labels = pred.argmax(axis=1)
        value = compute_metrics([metric], task.task, y, labels, pred, len(task.classes))[metric]
    else:
        value = compute_metrics([metric], task.task, y, np.asarray(pred), None, 0)[metric]
    return -math.inf if value is None or not math.isfinite(value) else float(value)


def caruana(preds: Mapping[int, np.ndarray], y: np.ndarray, metric: str, task: TaskInfo, direction: str,
            size: int) -> tuple[dict[int, int], float]:
    """(picks per trial number, the ensemble's score): greedy forward selection with replacement."""
    sign = 1.0 if direction == "maximize" else -1.0
    counts: dict[int, int] = {}
    total: np.ndarray | None = None
    best_counts: dict[int, int] = {}
    best_score = -math.inf
    for step in range(1, size + 1):
        pick, pick_score = None, -math.inf
        for number in sorted(preds):
            candidate = preds[number] if total is None else total + preds[number]
            score = sign * _score(metric, task, y, candidate / step)
            if score > pick_score + 1e-12:
                pick, pick_score = number, score
        if pick is None:
            break
        total = preds[pick] if total is None else total + preds[pick]
        counts[pick] = counts.get(pick, 0) + 1
        if pick_score > best_score + 1e-12:  # the best ensemble along the path (Caruana's selection)
            best_counts, best_score = dict(counts), pick_score
    return best_counts, sign * best_score


def ensemble_pool(trials: Sequence[FrozenTrial], direction: str, candidates: int,
                  has_predictions: Callable[[FrozenTrial], bool] = lambda t: True) -> list[FrozenTrial]:
    """The trials the members are picked from (module docstring), best first: the ``candidates`` best, then the
    best of each family not among them."""
    sign = 1.0 if direction == "maximize" else -1.0
    done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)
            and has_predictions(t)]
    done.sort(key=lambda t: (-sign * float(t.value), t.number))  # type: ignore[arg-type]
    pool = done[:candidates]
    families = {t.params.get("family") for t in pool}
    for t in done[candidates:]:
        family = t.params.get("family")
        if family is not None and family not in families:
            pool.append(t)
            families.add(family)
    return pool


def select_ensemble(trials: Sequence[FrozenTrial], oof: Mapping[int, list[Any]], y_oof: np.ndarray, *,
                    metric: str, task: TaskInfo, direction: str, size: int, candidates: int,
                    chosen: FrozenTrial, plan_kind: str) -> dict[str, Any]:
    """The ensemble decision for study_summary.json: ``{"used": bool, "why": ..., "members": {trial: weight},
    "score": ..., "single_score": ...}``."""
    import numpy as np

    sign = 1.0 if direction == "maximize" else -1.0
    pool = ensemble_pool(trials, direction, candidates,
                         lambda t: t.number in oof and all(p is not None for p in oof[t.number]))
    source = {"cv": "out-of-fold predictions of the cross-validation",
              "repeated_holdout": "held-out predictions of the repeated holdouts",
              "holdout": "predictions on the validation split (selection: holdout), which it is then chosen on: "
                         "its score there is optimistic"}.get(plan_kind, "predictions on the given folds")
    out: dict[str, Any] = {"method": "greedy", "size": size, "candidates": [t.number for t in pool],
                           "source": source, "used": False}
    if len(pool) < 2:
        out["why"] = (f"only {len(pool)} completed trial(s) with predictions here: an ensemble needs two; the "
                      "single best model is used")
        return out
    preds = {t.number: np.concatenate([np.asarray(p, dtype=np.float64) for p in oof[t.number]]) for t in pool}
    counts, score = caruana(preds, y_oof, metric, task, direction, size)
    single = preds.get(chosen.number)
    single_score = _score(metric, task, y_oof, single) if single is not None else float(chosen.value)  # type: ignore[arg-type]
    out.update({"members": {int(n): c / sum(counts.values()) for n, c in sorted(counts.items())},
                "score": score, "single_score": single_score, "single_trial": chosen.number})
    if len(counts) < 2:
        out["why"] = "the greedy selection picked one trial only: the single best model is used"
    elif sign * score <= sign * single_score:
        out["why"] = (f"the ensemble's {metric} {score:.6g} does not beat the chosen trial's {single_score:.6g} on "
                      "the same predictions: the single model is used")
    else:
        out["used"] = True
    return out
