"""How trials are scored (the selection estimate), which trial is chosen, and how the final model is refitted.

**The estimate.** ``tuning.selection``:

* ``cv``: k-fold cross-validation on the training rows (k = ``tuning.cv_folds``, default 5), repeated with
  other shuffles ``tuning.cv_repeats`` times (default 1): every row is held out once per repeat;
* ``repeated_holdout``: r shuffled 80/20 splits of the training rows (r = ``tuning.cv_folds``, default 3);
* ``holdout``: the validation split, once (the pre-0.x behaviour; the cheapest and the noisiest);
* ``auto`` (default): without ``tuning.timeout``, 5-fold CV up to 100,000 training rows and 2 repeated
  holdouts above. With a timeout, one fit of the defaults on one 80/20 split is timed (``t``) and the most
  thorough plan is taken whose cost for ``min(n_trials, 20)`` full trials fits in what is left of the
  budget after the refit reserve: 5-fold CV if ``5 t P`` fits, then 3-fold CV, then 2 repeated holdouts,
  else one 80/20 holdout of the training rows. When the budget is that large against one fit that
  ``REPEATED_TRIALS`` (100) trials of 3 x 5-fold CV fit (``15 t min(n_trials, 100)``; small tables with a
  minutes-long budget), on at most ``AUTO_REPEAT_MAX_ROWS`` rows, the 5-fold CV is repeated 3 times with
  other shuffles: on a few hundred rows one 5-fold estimate swings with the shuffle (penguins' 275 rows:
  fold log losses 0.0006 .. 0.10), and hundreds of trials compared on it pick noise; 100 trials is past
  where the search gains much, so the budget buys a steadier estimate instead of more trials (AutoGluon's
  best-quality presets repeat their k-fold bagging for the same reason). In a multi-family study ``t`` is
  then the mean of every family's defaults fitted on that split (``_run._mean_family_seconds``): the lead
  family's fit alone priced a trial at a tenth of an ExtraTrees one, and a study planned for 100 trials ran 12.

Every trial records the estimate's mean (the study's objective value), its spread (``score_std``, the
standard deviation over folds) and the per-fold scores, fit seconds and best rounds.

**The choice.** The candidates are the defaults' trial (trial 0; in a multi-family study the best of the
families' defaults trials) and every complete trial that beats it by more than one standard error of the
paired per-fold difference (:func:`beats_defaults`): an advantage inside the noise is not worth a model that
may be worse on new data. Among the candidates take the best mean ``m*`` and its standard error
``se = std / sqrt(k)``; those whose mean ties with it (within ``TIE_SE * se``, a tenth of a standard error) in
its family tie, and the cheapest of them wins: fewest boosting rounds trained (a deterministic cost, so the
choice is reproducible), then the better mean, then the lower trial number.

The tie band was a whole standard error until the 300 s FLAML comparison (``benchmarks/automl.py``): with
5-fold CV on a few thousand rows the SE of a ROC AUC is ~0.01, so "the cheapest within one SE" took a
marginal, few-round configuration, which then did not beat the defaults beyond the paired noise, and the
defaults shipped while the best trial was 0.014 better on CV (credit_data: 139 trials, 56 complete). And the
paired test used to be applied to the chosen trial only, after the choice: a best-mean trial whose advantage
swung from fold to fold sent the study back to the defaults although steadier trials beat them (hpc_data at
60 s: the untuned model shipped); it now filters the candidates before the choice.

**The final model** is refitted on train + validation rows with the chosen trial's parameters; for
boosters, the round count is the folds' mean best round scaled by ``(n_train + n_val) / n_fit``, with no
early stopping. ``tuning.final_model: fold_average`` averages k fold models of train + validation instead
(``_run.fold_members``); measured in ``benchmarks/tuning_quality.py`` (RESULTS.md): each won on some tables,
all inside the paired noise band, so the refit (one model, one fit) stays the default.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from trainpipe.tuning._objective import Fold

DEFAULTS_ATTR = "trainpipe.defaults"  # user attr of the trial that runs the family's defaults
PLAN_ATTR = "trainpipe.selection"  # study user attr: the plan every worker scores with
AUTO_CV_MAX_ROWS = 100_000
PLANNED_TRIALS = 20
REPEATED_TRIALS = 100  # auto repeats the 5-fold CV when this many trials of it fit the budget
REPEATS = 3
AUTO_REPEAT_MAX_ROWS = 20_000  # above, the 15 preprocessed fold copies cost more memory than the noise they save
REFIT_SAFETY = 1.25  # the refit reserve is the estimated refit time times this
POST_STUDY_SECONDS = 1.5  # writing trials.csv, plots and artifacts after the last trial


@dataclass(frozen=True)
class SelectionPlan:
    kind: str  # cv | repeated_holdout | holdout | given
    k: int
    reason: str = ""
    repeats: int = 1  # cv: the k-fold cut repeated with other shuffles (k * repeats folds)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelectionPlan:
        return cls(str(data["kind"]), int(data["k"]), str(data.get("reason", "")), int(data.get("repeats", 1)))

    @property
    def key(self) -> tuple[str, int, int]:
        """What makes two plans score on the same folds."""
        return self.kind, self.k, self.repeats

    @property
    def n_folds(self) -> int:
        return self.k * self.repeats if self.kind == "cv" else self.k

    @property
    def shown(self) -> str:
        if self.kind == "cv" and self.repeats > 1:
            return f"{self.repeats} x {self.k}-fold cross-validation on the training rows (other shuffles)"
        if self.kind == "cv":
            return f"{self.k}-fold cross-validation on the training rows"
        if self.kind == "repeated_holdout":
            return f"{self.k} repeated 80/20 holdout{'s' if self.k > 1 else ''} of the training rows"
        if self.kind == "holdout":
            return "the validation split"
        return f"{self.k} given fold{'s' if self.k > 1 else ''}"


class FoldSource(Protocol):
    """Makes the folds of a plan from the training rows (the tune step re-fits the preprocessor per fold)."""

    n_rows: int  # training rows the folds are cut from
    refit_rows: int  # rows of the final refit (train + validation)

    def __call__(self, plan: SelectionPlan) -> list[Fold]: ...


def configured_plan(selection: str, cv_folds: int | None, cv_repeats: int | None = None) -> SelectionPlan | None:
    """The plan the config fixes, or None for ``auto`` (decided from the data and the budget)."""
    if selection == "auto" and (cv_folds or cv_repeats):
        keys = " and ".join(k for k, v in (("tuning.cv_folds", cv_folds), ("tuning.cv_repeats", cv_repeats)) if v)
        return SelectionPlan("cv", cv_folds or 5, keys, cv_repeats or 1)
    if selection == "cv":
        return SelectionPlan("cv", cv_folds or 5, "tuning.selection: cv", cv_repeats or 1)
    if selection == "repeated_holdout":
        return SelectionPlan("repeated_holdout", cv_folds or 3, "tuning.selection: repeated_holdout")
    if selection == "holdout":
        return SelectionPlan("holdout", 1, "tuning.selection: holdout")
    return None


def auto_plan(n_rows: int, *, timeout: float | None = None, probe_seconds: float | None = None,
              available: float | None = None, n_trials: int = 30) -> SelectionPlan:
    """The ``auto`` rule (module docstring). ``available``: seconds of the budget left for the study."""
    if timeout is None or probe_seconds is None or available is None:
        if n_rows <= AUTO_CV_MAX_ROWS:
            return SelectionPlan("cv", 5, f"auto: {n_rows} training rows <= {AUTO_CV_MAX_ROWS}, no timeout")
        return SelectionPlan("repeated_holdout", 2, f"auto: {n_rows} training rows > {AUTO_CV_MAX_ROWS}")
    repeated = REPEATS * 5 * probe_seconds * min(n_trials, REPEATED_TRIALS)
    if n_rows <= AUTO_REPEAT_MAX_ROWS and repeated <= available:
        return SelectionPlan("cv", 5, f"auto: {REPEATS} x 5 x {probe_seconds:.2f} s x {min(n_trials, REPEATED_TRIALS)}"
                                      f" trials = {repeated:.0f} s fits in {available:.0f} s", REPEATS)
    planned = min(n_trials, PLANNED_TRIALS)
    for kind, k in (("cv", 5), ("cv", 3), ("repeated_holdout", 2)):
        need = k * probe_seconds * planned
        if need <= available:
            return SelectionPlan(kind, k, f"auto: {k} x {probe_seconds:.2f} s x {planned} trials = {need:.0f} s "
                                          f"fits in {available:.0f} s")
    return SelectionPlan("repeated_holdout", 1, f"auto: one fit takes {probe_seconds:.2f} s; 2 x {planned} trials "
                                                f"would not fit in {available:.0f} s")


def fold_stats(scores: Sequence[float], repeats: int = 1) -> tuple[float, float, float]:
    """(mean, std over folds (n-1), standard error of the mean).

    With a repeated k-fold CV (``repeats`` > 1) the n = k * repeats fold scores are not independent: every
    repeat holds out the same rows again. The standard error then divides by sqrt(k), the folds of one repeat,
    not sqrt(n): conservative (the repeats do average some noise away), never optimistic."""
    mean = float(statistics.fmean(scores))
    std = float(statistics.stdev(scores)) if len(scores) > 1 else 0.0
    return mean, std, std / math.sqrt(independent_folds(len(scores), repeats))


def independent_folds(n_scores: int, repeats: int) -> float:
    """The fold count a standard error divides by (:func:`fold_stats`)."""
    return max(1.0, n_scores / max(1, repeats))


def trial_rounds(t: FrozenTrial) -> float:
    """The deterministic cost of a trial's model: boosting rounds (or epochs) trained over all folds."""
    return float(t.user_attrs.get("rounds_trained", 0) or 0)


TIE_SE = 0.1  # trials within this many standard errors of the best mean tie with it (the cheapest is taken)


def choose_best(trials: Sequence[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The chosen trial (module docstring): among the defaults' trial and the trials that beat it beyond the
    paired noise, the best mean, then the cheapest of those tying with it (within ``TIE_SE`` standard errors)."""
    done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    defaults = [t for t in done if t.user_attrs.get(DEFAULTS_ATTR)]
    if defaults:  # several in a multi-family study (one per family): the best of them is the reference
        reference = max(defaults, key=lambda t: (sign * float(t.value), -t.number))  # type: ignore[arg-type]
        # a trial counts only when it beats the defaults beyond the paired noise: the best of those, not the
        # best of all (whose advantage may be noise while a slightly lower trial's is steady on every fold)
        done = [t for t in done if t is reference or beats_defaults(t, reference, sign)]
    best = max(done, key=lambda t: (sign * float(t.value), -t.number))  # type: ignore[arg-type]
    se = float(best.user_attrs.get("score_se", 0.0) or 0.0)
    floor = sign * float(best.value) - TIE_SE * se  # type: ignore[arg-type]
    # rounds are a cost within one family only (an ExtraTrees fit reports one): the tie-break stays in the
    # best trial's family
    family = best.params.get("family")
    near = [t for t in done if sign * float(t.value) >= floor - 1e-12  # type: ignore[arg-type]
            and t.params.get("family") == family]
    return min(near, key=lambda t: (trial_rounds(t), -sign * float(t.value), t.number))  # type: ignore[arg-type]


def beats_defaults(trial: FrozenTrial, defaults: FrozenTrial, sign: float) -> bool:
    """Whether ``trial`` beats the defaults by more than one standard error of the paired difference.

    Both were scored on the same folds, so the per-fold differences ``d_i`` are paired: the advantage counts
    when ``mean(d) > std(d) / sqrt(k)``. An advantage inside that band is noise the search happened to find
    (on a 400-row regression table, a tuned model 0.13 better on CV with a 0.36 standard error was 0.85
    worse on test); the defaults are kept then. Without per-fold scores on both (a single holdout), any
    advantage counts, as before.
    """
    mine = trial.user_attrs.get("fold_scores") or []
    base = defaults.user_attrs.get("fold_scores") or []
    if len(mine) < 2 or len(mine) != len(base):
        return sign * float(trial.value) > sign * float(defaults.value)  # type: ignore[arg-type]
    diffs = [sign * (float(a) - float(b)) for a, b in zip(mine, base, strict=True)]
    mean = statistics.fmean(diffs)
    repeats = int(trial.user_attrs.get("cv_repeats", 1) or 1)  # repeated CV: see fold_stats
    se = statistics.stdev(diffs) / math.sqrt(independent_folds(len(diffs), repeats))
    return mean > se


def final_fit(trial: FrozenTrial, n_all: int) -> dict[str, Any]:
    """How the train step refits the chosen configuration on ``n_all`` rows (train + validation)."""
    if trial.user_attrs.get(DEFAULTS_ATTR):
        # nothing beat the defaults beyond noise: the final model is exactly the untuned one (train rows, early
        # stopping on the validation split), so a tuned run can never ship a worse model than an untuned run
        return {"mode": "untuned_defaults", "rows": int(n_all)}
    best_rounds = trial.user_attrs.get("best_rounds") or []
    fit_rows = trial.user_attrs.get("fit_rows") or []
    out: dict[str, Any] = {"mode": "refit_train_val", "rows": int(n_all)}
    if best_rounds and fit_rows and all(r is not None for r in best_rounds):
        mean_rounds = float(statistics.fmean(best_rounds))
        scale = n_all / float(statistics.fmean(fit_rows))
        out.update({"n_estimators": max(1, round(mean_rounds * scale)), "fold_best_rounds": list(best_rounds),
                    "scale": scale})
    return out


def refit_estimate(trial: FrozenTrial | None, n_all: int, fallback: float = 0.0) -> float:
    """Seconds the refit of ``trial`` should take: its mean fold fit time, scaled by rows and rounds."""
    if trial is None:
        return fallback
    seconds = trial.user_attrs.get("fit_seconds") or []
    rows = trial.user_attrs.get("fit_rows") or []
    if not seconds or not rows:
        return fallback
    per_fold = float(statistics.fmean(seconds))
    scale = n_all / float(statistics.fmean(rows))
    trained = trial.user_attrs.get("fold_rounds") or []
    best = trial.user_attrs.get("best_rounds") or []
    rounds_ratio = 1.0
    if trained and best and all(b is not None for b in best) and statistics.fmean(trained) > 0:
        rounds_ratio = max(1.0, statistics.fmean(best) * scale / statistics.fmean(trained))
    return per_fold * scale * rounds_ratio
