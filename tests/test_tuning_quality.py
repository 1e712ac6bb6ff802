"""Issue 17: a tuned model never loses to its own defaults on the selection estimate; the estimate is robust
(CV or repeated holdout, with its spread); the choice leans to cheaper models; ``tuning.timeout`` includes
the final refit; one worker with a fixed seed gives the same study and the same model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import make_frame, write_pipeline
from trainpipe.config import PipelineConfig
from trainpipe.config._loader import validate_config
from trainpipe.data import TaskInfo
from trainpipe.tuning import Fold, SelectionPlan, auto_plan, choose_best, open_study, settings_for, tune_folds

BINARY = TaskInfo("binary", (0, 1))
ROOT = Path(__file__).resolve().parents[1]


def cfg(model: str = "xgboost", params: dict[str, Any] | None = None, **tuning: Any) -> PipelineConfig:
    raw = {"name": "q", "data": {"source": "x.csv", "target": "y"},
           "model": {"type": model, "params": params if params is not None else {"n_estimators": 40}},
           "training": {"early_stopping_rounds": 10, "seed": 3},
           "tuning": {"n_trials": 6, **tuning}}
    return validate_config(raw, source="test.yaml")


@pytest.fixture(scope="module")
def fold() -> Fold:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + rng.normal(scale=0.8, size=400) > 0).astype(np.int64)
    return Fold(X[:300], y[:300], X[300:], y[300:])


# -- the defaults are trial 0 -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["xgboost", "lightgbm", "sklearn.ensemble.RandomForestClassifier"])
def test_trial_0_is_the_defaults_and_the_choice_is_never_worse(model: str, fold: Fold, tmp_path: Path) -> None:
    params = {"n_estimators": 40} if model in ("xgboost", "lightgbm") else {"n_estimators": 20}
    summary = tune_folds(cfg(model, params, n_trials=5), BINARY, [fold], tmp_path)
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert rows[1].split(",")[0] == "0"
    assert summary["defaults_estimate"]["trial"] == 0
    # the chosen configuration's selection score is at least the defaults' one (roc_auc: higher is better)
    assert summary["best_value"] >= summary["defaults_estimate"]["mean"]


def test_defaults_trial_has_the_empty_override_and_is_never_pruned(fold: Fold, tmp_path: Path) -> None:
    import optuna

    from trainpipe.tuning import StudySettings, parse_storage, run_study

    settings = StudySettings(study_name="d", storage=parse_storage(None), metric="roc_auc", direction="maximize",
                             n_trials=4, defaults_trial=True)
    space = cfg(space={"max_depth": {"type": "int", "low": 2, "high": 4}}).tuning.space  # type: ignore[union-attr]
    seen: list[dict[str, Any]] = []

    def objective(trial: Any, params: dict[str, Any], counter: Any) -> float:
        seen.append(dict(params))
        trial.report(0.1, 1)
        return 0.5 + len(seen) / 100

    study = open_study(settings, space)
    study.pruner = optuna.pruners.ThresholdPruner(lower=1.0)  # would prune every trial that asks
    run = run_study(settings, space, objective, study=study)
    assert seen[0] == {}
    assert run.study.trials[0].params == {} and run.study.trials[0].user_attrs["trainpipe.defaults"] is True
    assert run.study.trials[0].state.name == "COMPLETE"  # asked nothing, so never pruned
    assert all("max_depth" in t.params for t in run.study.trials[1:])


def _defaults_trial_worker(storage: str) -> None:
    from trainpipe.tuning import open_study, run_study, settings_for

    config = cfg(n_trials=4, storage=storage, space={"max_depth": {"type": "int", "low": 2, "high": 4}})
    settings = settings_for(config, "binary")
    run_study(settings, config.tuning.space, lambda t, p, c: float(p.get("max_depth", 0)),  # type: ignore[union-attr]
              study=open_study(settings, config.tuning.space))  # type: ignore[union-attr]


def test_sqlite_study_created_by_one_process_and_joined_by_another_has_one_defaults_trial(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    config = cfg(n_trials=4, storage=storage, space={"max_depth": {"type": "int", "low": 2, "high": 4}})
    settings = settings_for(config, "binary")
    code = ("import sys; from tests.test_tuning_quality import _defaults_trial_worker; "
            "_defaults_trial_worker(sys.argv[1])")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, storage], cwd=ROOT, env=env, check=True, timeout=300)
    # a second process joins the study the first one created and finished: nothing is queued twice
    study = open_study(settings, config.tuning.space)  # type: ignore[union-attr]
    trials = study.trials
    assert len(trials) == 4
    defaults = [t for t in trials if t.user_attrs.get("trainpipe.defaults")]
    assert [t.number for t in defaults] == [0] and defaults[0].params == {}
    subprocess.run([sys.executable, "-c", code, storage], cwd=ROOT, env=env, check=True, timeout=300)
    assert len(open_study(settings, config.tuning.space).trials) == 4  # type: ignore[union-attr]


# -- the choice: best mean, the cheaper of tying trials, never below the defaults ---------------------------


def _trial(number: int, value: float, rounds: int, se: float = 0.0, defaults: bool = False) -> Any:
    import optuna

    attrs = {"rounds_trained": rounds, "score_se": se, **({"trainpipe.defaults": True} if defaults else {})}
    return optuna.trial.create_trial(value=value, user_attrs=attrs, params={}, distributions={})


def test_tie_break_picks_the_cheaper_of_two_equal_trials() -> None:
    trials = [_trial(0, 0.80, 100, defaults=True), _trial(1, 0.90, 400), _trial(2, 0.90, 150)]
    for i, t in enumerate(trials):
        t.number = i
    assert choose_best(trials, "maximize").number == 2  # type: ignore[union-attr]
    # a tie is within a tenth of a standard error of the best: the cheaper one; half a standard error behind
    # is not a tie (a whole SE was: it took marginal few-round trials over a clearly better one): the best
    tie = [_trial(0, 0.80, 100, defaults=True), _trial(1, 0.9009, 400, se=0.01), _trial(2, 0.90, 150)]
    behind = [_trial(0, 0.80, 100, defaults=True), _trial(1, 0.905, 400, se=0.01), _trial(2, 0.90, 150)]
    for group in (tie, behind):
        for i, t in enumerate(group):
            t.number = i
    assert choose_best(tie, "maximize").number == 2  # type: ignore[union-attr]
    assert choose_best(behind, "maximize").number == 1  # type: ignore[union-attr]
    # minimized metric (rmse): lower is better, the same rule
    low = [_trial(0, 1.0, 100, defaults=True), _trial(1, 0.500, 400, se=0.02), _trial(2, 0.5015, 150)]
    low_behind = [_trial(0, 1.0, 100, defaults=True), _trial(1, 0.50, 400, se=0.02), _trial(2, 0.51, 150)]
    for group in (low, low_behind):
        for i, t in enumerate(group):
            t.number = i
    assert choose_best(low, "minimize").number == 2  # type: ignore[union-attr]
    assert choose_best(low_behind, "minimize").number == 1  # type: ignore[union-attr]


def test_the_choice_is_never_below_the_defaults_even_when_tying_with_the_best() -> None:
    # a cheap trial ties with the best (within a tenth of its SE) but is worse than the defaults: not taken
    trials = [_trial(0, 0.8995, 300, defaults=True), _trial(1, 0.90, 400, se=0.02), _trial(2, 0.899, 50)]
    for i, t in enumerate(trials):
        t.number = i
    chosen = choose_best(trials, "maximize")
    assert chosen is not None and chosen.number == 0 and chosen.value >= 0.8995
    # the best trial far above the defaults, with a cheap marginal trial a whole SE below it: the best, not
    # the marginal one (which would then have lost to the defaults on the paired test and shipped them)
    spread = [_trial(0, 0.833, 500, defaults=True), _trial(1, 0.847, 550, se=0.011), _trial(2, 0.837, 90)]
    for i, t in enumerate(spread):
        t.number = i
    assert choose_best(spread, "maximize").number == 1  # type: ignore[union-attr]


def _folds(number: int, scores: list[float], defaults: bool = False) -> Any:
    import statistics

    import optuna

    attrs = {"rounds_trained": 100, "fold_scores": scores, "score_se": statistics.stdev(scores) / len(scores) ** 0.5,
             **({"trainpipe.defaults": True} if defaults else {})}
    t = optuna.trial.create_trial(value=statistics.fmean(scores), user_attrs=attrs, params={}, distributions={})
    t.number = number
    return t


def test_the_defaults_are_kept_unless_beaten_by_more_than_the_paired_noise() -> None:
    defaults = [4.3, 4.0, 4.6, 4.1, 4.4]  # rmse per fold
    noisy = [4.0, 4.3, 4.2, 4.4, 4.1]  # better on average by 0.08, fold to fold it swings by +-0.3
    steady = [4.0, 3.7, 4.3, 3.8, 4.1]  # better by 0.3 on every fold
    assert choose_best([_folds(0, defaults, True), _folds(1, noisy)], "minimize").number == 0  # type: ignore[union-attr]
    assert choose_best([_folds(0, defaults, True), _folds(1, steady)], "minimize").number == 1  # type: ignore[union-attr]
    auc_defaults, auc_better = [0.80, 0.82, 0.81], [0.83, 0.85, 0.84]
    assert choose_best([_folds(0, auc_defaults, True), _folds(1, auc_better)], "maximize").number == 1  # type: ignore[union-attr]


def test_the_best_of_the_trials_that_beat_the_defaults_is_chosen_not_the_defaults() -> None:
    """A best-mean trial whose advantage swings from fold to fold does not send the study back to the
    defaults when a steadier trial beats them on every fold: that one is chosen."""
    defaults = [0.50, 0.48, 0.52, 0.49, 0.51]  # log loss per fold
    swinging = [0.30, 0.62, 0.33, 0.60, 0.32]  # mean 0.434: best, but worse than the defaults on two folds
    steady = [0.45, 0.43, 0.47, 0.44, 0.46]  # mean 0.45: better by 0.05 on every fold
    trials = [_folds(0, defaults, True), _folds(1, swinging), _folds(2, steady)]
    assert choose_best(trials, "minimize").number == 2  # type: ignore[union-attr]
    assert choose_best(trials[:2], "minimize").number == 0  # type: ignore[union-attr]


# -- the estimate -------------------------------------------------------------------------------------------


def test_auto_plan_rule() -> None:
    assert auto_plan(5_000) == SelectionPlan("cv", 5, auto_plan(5_000).reason)
    assert auto_plan(500_000).kind == "repeated_holdout"
    assert (auto_plan(5_000, timeout=60, probe_seconds=0.1, available=55, n_trials=30).kind,
            auto_plan(5_000, timeout=60, probe_seconds=0.1, available=55, n_trials=30).k) == ("cv", 5)
    assert auto_plan(5_000, timeout=60, probe_seconds=0.8, available=55, n_trials=30).k == 3
    assert auto_plan(5_000, timeout=60, probe_seconds=1.2, available=55, n_trials=30).kind == "repeated_holdout"
    assert auto_plan(5_000, timeout=60, probe_seconds=9.0, available=55, n_trials=30).k == 1


def test_auto_repeats_the_cv_on_a_small_table_when_the_budget_allows() -> None:
    # a small table, a budget of minutes: 100 trials of 3 x 5-fold CV fit, so the estimate is repeated
    plan = auto_plan(455, timeout=300, probe_seconds=0.05, available=290, n_trials=100_000)
    assert (plan.kind, plan.k, plan.repeats, plan.n_folds) == ("cv", 5, 3, 15)
    assert "3 x 5-fold cross-validation" in plan.shown and "100 trials" in plan.reason
    # the same table at 60 s (15 x 0.05 x 100 = 75 s does not fit), or too many rows: one 5-fold CV
    assert auto_plan(455, timeout=60, probe_seconds=0.05, available=50, n_trials=100_000).repeats == 1
    assert auto_plan(30_000, timeout=3600, probe_seconds=0.05, available=3500, n_trials=100).repeats == 1
    # n_trials below 100 counts as it is
    assert auto_plan(455, timeout=60, probe_seconds=0.05, available=50, n_trials=30).repeats == 3
    # without a timeout: unchanged
    assert auto_plan(455).repeats == 1
    # a stored plan from before repeats existed reads as one repeat, and the key tells the two apart
    assert SelectionPlan.from_dict({"kind": "cv", "k": 5}).repeats == 1
    assert SelectionPlan("cv", 5, "", 3).key != SelectionPlan("cv", 5).key


def test_the_repeat_rule_prices_a_multi_family_trial_at_every_familys_defaults(
        fold: Fold, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lead family (LightGBM) is cheap, ExtraTrees is 40x dearer: priced at LightGBM's fit the rule would
    repeat the CV; priced at the mean of every family's defaults it does not, and every family was timed on the
    probe split once (fit times made up: the rule, not the machine, is under test)."""
    import time as time_mod

    from trainpipe.tuning import _run

    made_up = {"lightgbm": 0.05, "xgboost": 0.1, "sklearn.ensemble.ExtraTreesClassifier": 2.0,
               "sklearn.linear_model.LogisticRegression": 0.01}
    timed: list[str] = []
    failing: set[str] = set()
    caps: list[float] = []

    def fake_fit(config: Any, task: Any, params: Any, folds: Any, metric: str, direction: str, trial: Any,
                 counter: Any, categorical_indices: Any = (), first_fold: int = 0) -> float:
        timed.append(config.model.type)
        if counter.deadline is not None:
            caps.append(counter.deadline - time_mod.perf_counter())
        if config.model.type in failing:
            raise ValueError("this family cannot fit these rows")
        counter.fit_seconds.append(made_up[config.model.type])
        counter.fit_rows.append(len(folds[0].y))
        return 0.5

    class Source:
        n_rows, refit_rows = 455, 569

        def __call__(self, plan: SelectionPlan) -> list[Fold]:
            return [fold] * (plan.k * plan.repeats)

    monkeypatch.setattr(_run, "fit_and_score", fake_fit)
    config = cfg("auto", params={}, n_trials=100_000, timeout=300)
    settings = settings_for(config, "binary")
    plan, _, probe = _run._plan_and_folds(config, BINARY, Source(), settings, time_mod.perf_counter(), ())
    assert timed == list(made_up)  # the lead first (the probe), then each other family once
    # 15 x 0.05 x 100 = 75 s fits in ~290 s, but 15 x mean(0.54) x 100 = 810 s does not: one 5-fold CV
    assert auto_plan(455, timeout=300, probe_seconds=0.05, available=280, n_trials=100_000).repeats == 3
    assert (plan.kind, plan.k, plan.repeats) == ("cv", 5, 1), plan
    assert probe is not None and probe.counter.fit_seconds == [0.05]  # trial 0 still reuses the lead's probe
    # each further family's timing fit stops after 5 % of the study's time (~ 300 s here)
    assert len(caps) == 3 and all(0 < c <= 0.05 * 300 for c in caps), caps
    # a family whose defaults fail on their own is left out of the mean: (0.05 + 0.1 + 0.01) / 3 -> repeats
    failing.add("sklearn.ensemble.ExtraTreesClassifier")
    plan, _, _ = _run._plan_and_folds(config, BINARY, Source(), settings, time_mod.perf_counter(), ())
    assert plan.repeats == 3, plan
    # one family (the lead alone): no other fit, and the repeats stay
    timed.clear()
    single = cfg("lightgbm", params={}, n_trials=100_000, timeout=300)
    plan, _, _ = _run._plan_and_folds(single, BINARY, Source(), settings_for(single, "binary"),
                                      time_mod.perf_counter(), ())
    assert timed == ["lightgbm"] and plan.repeats == 3


def test_the_standard_error_of_a_repeated_cv_counts_one_repeat_of_folds() -> None:
    from trainpipe.tuning._selection import fold_stats

    scores = [0.80, 0.82, 0.78, 0.81, 0.79, 0.83]
    mean, std, se = fold_stats(scores)
    assert se == pytest.approx(std / np.sqrt(6))
    mean2, std2, se2 = fold_stats(scores, repeats=2)  # 2 x 3-fold: the same rows held out twice
    assert (mean2, std2) == (mean, std) and se2 == pytest.approx(std / np.sqrt(3))


def test_cv_repeats_with_a_holdout_selection_is_refused() -> None:
    from trainpipe._exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"cv_repeats: repeats the k-fold cross-validation, but selection is "
                                          r"'repeated_holdout'.*the repeats of repeated_holdout are cv_folds"):
        cfg(selection="repeated_holdout", cv_repeats=2)
    with pytest.raises(ConfigError, match=r"cv_repeats: .* selection is 'holdout'"):
        cfg(selection="holdout", cv_repeats=2)


def _run_pipeline(workdir: Path, text: str, frame: Any, until: str = "train") -> Path:
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner, steps_for
    from trainpipe.registry import InMemoryRegistry

    frame.to_csv(workdir / "d.csv", index=False)
    loaded = load_config(write_pipeline(workdir, text))
    steps = steps_for(loaded.config)
    steps = steps[: [s.name for s in steps].index(until) + 1]
    return PipelineRunner(loaded, workdir=workdir, steps=steps, registry=InMemoryRegistry()).run().run_dir / "steps"


def test_small_table_is_scored_by_cross_validation_with_its_spread(workdir: Path) -> None:
    steps = _run_pipeline(workdir, """\
name: cvauto
data: {source: d.csv, target: label}
model: {type: xgboost, params: {n_estimators: 30}}
training: {early_stopping_rounds: 5}
tuning: {n_trials: 4, space: {max_depth: {type: int, low: 2, high: 4}}}
""", make_frame(300), until="tune")
    summary = json.loads((steps / "tune" / "study_summary.json").read_text())
    assert summary["selection"]["kind"] == "cv" and summary["selection"]["k"] == 5
    assert len(summary["best_estimate"]["fold_scores"]) == 5
    scores = summary["best_estimate"]["fold_scores"]
    assert summary["best_estimate"]["std"] == pytest.approx(float(np.std(scores, ddof=1)))
    assert summary["best_estimate"]["mean"] == pytest.approx(float(np.mean(scores)))
    header = (steps / "tune" / "trials.csv").read_text().splitlines()[0].split(",")
    assert "score_std" in header and "n_folds" in header


def test_a_repeated_cv_holds_every_row_out_once_per_repeat(workdir: Path) -> None:
    steps = _run_pipeline(workdir, """\
name: cvrep
data: {source: d.csv, target: label}
model: {type: xgboost, params: {n_estimators: 30}}
training: {early_stopping_rounds: 5}
tuning: {n_trials: 3, cv_folds: 3, cv_repeats: 2, space: {max_depth: {type: int, low: 2, high: 4}}}
""", make_frame(300), until="tune")
    summary = json.loads((steps / "tune" / "study_summary.json").read_text())
    selection = summary["selection"]
    assert (selection["kind"], selection["k"], selection["repeats"]) == ("cv", 3, 2)
    assert selection["shown"] == "2 x 3-fold cross-validation on the training rows (other shuffles)"
    best = summary["best_estimate"]
    assert len(best["fold_scores"]) == 6
    # the standard error divides by the 3 folds of one repeat, not by all 6 scores
    assert best["std"] == pytest.approx(float(np.std(best["fold_scores"], ddof=1)))
    import csv

    rows = list(csv.DictReader((steps / "tune" / "trials.csv").open()))
    assert {r["n_folds"] for r in rows if r["state"] == "complete"} == {"6"}
    # the folds themselves: each repeat's held-out parts cover the training rows once, and the repeats differ
    from trainpipe._hooks import Hooks
    from trainpipe.config import load_config
    from trainpipe.pipeline._step import StepContext
    from trainpipe.pipeline._steps_tuning import TUNE_STEP, TrainingRowFolds

    inputs = {name: steps / name for name in ("preprocess", "split", "validate")}
    ctx = StepContext(step="tune", loaded=load_config(workdir / "pipeline.yaml"), inputs=inputs,
                      out_dir=workdir / "out", run_dir=workdir / "out", hooks=Hooks(), declared=dict(TUNE_STEP.inputs))
    source = TrainingRowFolds(ctx, TaskInfo.from_dict(json.loads((steps / "validate" / "task.json").read_text())))
    folds = source(SelectionPlan("cv", 3, "", 2))
    assert len(folds) == 6 and source(SelectionPlan("cv", 3)) is not folds
    n = source.n_rows
    for repeat in (folds[:3], folds[3:]):
        assert sum(len(f.y_val) for f in repeat) == n
        assert all(len(f.y) + len(f.y_val) == n for f in repeat)
    assert not all(np.array_equal(a.y_val, b.y_val) for a, b in zip(folds[:3], folds[3:], strict=True))


def test_holdout_with_cv_folds_is_refused() -> None:
    from trainpipe._exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"tuning: cv_folds: selection 'holdout' scores on the validation split"):
        cfg(selection="holdout", cv_folds=3)


# -- the final fit --------------------------------------------------------------------------------------------


def test_train_refits_on_train_and_validation_with_scaled_rounds(workdir: Path) -> None:
    steps = _run_pipeline(workdir, """\
name: refit
data: {source: d.csv, target: label}
model: {type: xgboost, params: {n_estimators: 200}}
training: {early_stopping_rounds: 10}
tuning: {n_trials: 3, space: {max_depth: {type: int, low: 2, high: 4}}}
""", make_frame(400))
    best = json.loads((steps / "tune" / "best_params.json").read_text())
    refit = json.loads((steps / "train" / "refit.json").read_text())
    fit = best["final_fit"]
    trained = json.loads((steps / "train" / "train.json").read_text())
    assert refit["rows"] == fit["rows"]
    if fit["mode"] == "untuned_defaults":  # nothing beat trial 0 beyond noise: exactly the untuned fit
        assert trained["best_iteration"] is not None  # early stopping on the validation split, as untuned
        return
    assert fit["mode"] == "refit_train_val"
    assert fit["n_estimators"] == max(1, round(np.mean(fit["fold_best_rounds"]) * fit["scale"]))
    assert trained["n_iterations"] == fit["n_estimators"] and trained["best_iteration"] is None  # no early stop


def test_final_fit_of_the_defaults_is_the_untuned_model_and_of_a_tuned_trial_a_scaled_refit() -> None:
    from trainpipe.tuning._selection import final_fit

    defaults = _folds(0, [0.8, 0.81, 0.82], defaults=True)
    assert final_fit(defaults, 1000) == {"mode": "untuned_defaults", "rows": 1000}
    tuned = _folds(1, [0.85, 0.86, 0.87])
    tuned.user_attrs.update({"best_rounds": [40, 60, 50], "fit_rows": [500, 500, 500]})
    fit = final_fit(tuned, 1000)
    assert fit["mode"] == "refit_train_val" and fit["n_estimators"] == 100 and fit["scale"] == 2.0


# -- the timeout includes the refit ----------------------------------------------------------------------------


@pytest.mark.slow
def test_timeout_includes_the_refit_on_a_real_table(workdir: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    steps = _run_pipeline(workdir, """\
name: budget
data: {source: d.csv, target: target}
model: {type: xgboost}
tuning: {n_trials: 500, timeout: 20}
""", load_breast_cancer(as_frame=True).frame)
    refit = json.loads((steps / "train" / "refit.json").read_text())
    summary = json.loads((steps / "tune" / "study_summary.json").read_text())
    assert summary["stopped_by"] == "timeout" and summary["n_trials"] < 500
    assert refit["timeout"] == 20
    assert refit["study_and_refit_seconds"] == pytest.approx(refit["study_seconds"] + refit["refit_seconds"])
    budget = summary["budget"]
    # the study stopped while its own seconds plus the refit it reserved still fitted the budget (trainpipe's
    # accounting, not the machine's speed); the real refit may run longer than reserved on a loaded machine,
    # so the measured total gets only a gross bound here
    assert budget["study_seconds"] + budget["refit_estimate_seconds"] <= 20 + 1.0, budget
    assert budget["margin_estimate_seconds"] is not None
    assert refit["study_and_refit_seconds"] <= 20 * 1.5 + 5, refit
    assert refit["margin_seconds"] == pytest.approx(20 - refit["study_and_refit_seconds"])


# -- reproducibility --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_same_study_and_same_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe.models import TrainedModel

    runs = []
    for name in ("a", "b"):
        wd = tmp_path / name
        wd.mkdir()
        monkeypatch.chdir(wd)
        steps = _run_pipeline(wd, """\
name: repro
data: {source: d.csv, target: label}
model: {type: lightgbm, params: {n_estimators: 60}}
training: {early_stopping_rounds: 10, seed: 7}
tuning: {n_trials: 8}
""", make_frame(500, seed=1))
        runs.append(steps)
    a, b = (json.loads((s / "tune" / "best_params.json").read_text()) for s in runs)
    assert a["model_params"] == b["model_params"] and a["best_trial"] == b["best_trial"]
    assert a["best_value"] == b["best_value"] and a["final_fit"] == b["final_fit"]
    ta, tb = ((s / "tune" / "trials.csv").read_text().splitlines() for s in runs)
    assert [r.split(",")[:3] for r in ta] == [r.split(",")[:3] for r in tb]  # number, state, value
    frame = make_frame(200, seed=9).drop(columns=["label"])
    pa, pb = (TrainedModel.load(s / "train" / "model").predict_proba(frame) for s in runs)
    assert pa is not None and pb is not None
    np.testing.assert_array_equal(pa, pb)
