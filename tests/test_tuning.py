"""trainpipe.tuning on real Optuna (in-memory and SQLite storages), small matrices, few trials."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import make_frame, write_pipeline
from trainpipe._exceptions import ConfigError
from trainpipe.config import CostConfig, PipelineConfig
from trainpipe.config._loader import validate_config
from trainpipe.data import TaskInfo
from trainpipe.tracking import InMemoryTracker
from trainpipe.tuning import (
    Budget,
    Fold,
    PruningReporter,
    RoundCounter,
    StudySettings,
    check_space,
    default_space,
    infer_direction,
    objective_metric,
    parse_storage,
    run_study,
    summarize,
    trial_cost,
    tune_folds,
)

BINARY = TaskInfo("binary", (0, 1))


def cfg(model: str = "xgboost", params: dict[str, Any] | None = None, **tuning: Any) -> PipelineConfig:
    raw = {"name": "t", "data": {"source": "x.csv", "target": "y"},
           "model": {"type": model, "params": params if params is not None else {"n_estimators": 40}},
           "training": {"early_stopping_rounds": None, "seed": 3},
           "tuning": {"n_trials": 6, **tuning}}
    return validate_config(raw, source="test.yaml")


@pytest.fixture(scope="module")
def fold() -> Fold:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + rng.normal(scale=0.8, size=400) > 0).astype(np.int64)
    return Fold(X[:300], y[:300], X[300:], y[300:])


# -- search space validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("param", "message"), [
    ({"type": "int", "low": 10, "high": 3}, "tuning.space.p: low (10) is greater than high (3)"),
    ({"type": "categorical", "choices": []}, "tuning.space.p: type 'categorical' needs a non-empty 'choices' list"),
    ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "tuning.space.p: log: true needs low > 0, got low=0"),
    ({"type": "int", "low": 1.5, "high": 4}, "tuning.space.p: type 'int' needs integer bounds"),
    ({"type": "float", "low": 1.0}, "tuning.space.p: type 'float' needs both 'low' and 'high'"),
    ({"type": "int", "low": 1, "high": 3, "choices": [1]}, "takes low/high, not 'choices'"),
])
def test_invalid_param_is_a_config_error(param: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg(space={"p": param})


def test_condition_must_name_a_categorical_choice() -> None:
    with pytest.raises(ConfigError, match=r"space.leaves.when: 'nope' must be another categorical parameter"):
        cfg(space={"leaves": {"type": "int", "low": 2, "high": 8, "when": {"nope": "x"}}})
    with pytest.raises(ConfigError, match=r"space.leaves.when: 'hist' is not one of policy's choices"):
        cfg(space={"policy": {"type": "categorical", "choices": ["depthwise", "lossguide"]},
                   "leaves": {"type": "int", "low": 2, "high": 8, "when": {"policy": "hist"}}})


def test_unknown_parameter_for_the_model_names_the_key_and_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"tuning.space.max_dept: unknown parameter for xgboost. "
                                          r"Did you mean 'max_depth'\?"):
        check_space(cfg(space={"max_dept": {"type": "int", "low": 2, "high": 5}}))


def test_bound_outside_the_parameter_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"tuning.space.subsample: expected a number > 0 and <= 1, got 1.5"):
        check_space(cfg(space={"subsample": {"type": "float", "low": 0.5, "high": 1.5}}))


def test_training_keys_are_checked_against_the_training_section() -> None:
    with pytest.raises(ConfigError, match=r"tuning.space.training.learning_rat: unknown training setting. "
                                          r"Did you mean 'training.learning_rate'\?"):
        check_space(cfg(space={"training.learning_rat": {"type": "float", "low": 0.001, "high": 0.1}}))
    with pytest.raises(ConfigError, match=r"tuning.space.training.batch_size: the value 0 is not a valid"):
        check_space(cfg("torch_mlp", {}, space={"training.batch_size": {"type": "categorical", "choices": [0, 64]}}))


def test_grid_needs_steps_for_floats() -> None:
    with pytest.raises(ConfigError, match=r"tuning.space.learning_rate: sampler 'grid' needs a 'step'"):
        check_space(cfg(sampler="grid", space={"learning_rate": {"type": "float", "low": 0.01, "high": 0.3}}))


def test_storage_urls() -> None:
    assert parse_storage(None).kind == "memory"
    assert parse_storage("sqlite:///x.db").kind == "rdb"
    assert parse_storage("postgresql://u:secret@h/db").shown == "postgresql://u:***@h/db"
    assert parse_storage("journal:///tmp/a.log").url == "/tmp/a.log"
    with pytest.raises(ConfigError, match=r"tuning.storage: unsupported storage 'redis://h'"):
        parse_storage("redis://h")


# -- defaults, metric and direction -----------------------------------------------------------------------


@pytest.mark.parametrize(("model", "expected"), [
    ("xgboost", {"max_depth", "learning_rate", "subsample"}),
    ("lightgbm", {"num_leaves", "learning_rate", "min_child_samples"}),
    ("torch_mlp", {"training.learning_rate", "training.batch_size"}),
    ("sklearn.linear_model.LogisticRegression", {"C"}),
    ("sklearn.ensemble.RandomForestClassifier", {"max_depth", "min_samples_leaf"}),
])
def test_default_space_per_family_passes_the_model_checks(model: str, expected: set[str]) -> None:
    assert expected <= set(default_space(model))
    params = {"n_estimators": 20} if model in ("xgboost", "lightgbm") else {}
    assert set(check_space(cfg(model, params))) == set(default_space(model))


def test_no_default_space_for_an_estimator_without_known_knobs() -> None:
    with pytest.raises(ConfigError, match=r"no default search space for sklearn.naive_bayes.GaussianNB"):
        default_space("sklearn.naive_bayes.GaussianNB")


@pytest.mark.parametrize(("metric", "direction"), [("roc_auc", "maximize"), ("log_loss", "minimize"),
                                                   ("rmse", "minimize"), ("r2", "maximize"), ("f1", "maximize")])
def test_direction_is_inferred_from_the_metric(metric: str, direction: str) -> None:
    assert infer_direction(metric) == direction
    assert infer_direction(metric, direction) == direction
    opposite = "minimize" if direction == "maximize" else "maximize"
    with pytest.raises(ConfigError, match=rf"tuning.direction: {opposite} contradicts tuning.metric '{metric}'"):
        infer_direction(metric, opposite)


def test_objective_metric_defaults_and_task_check() -> None:
    tuning = cfg().tuning
    assert tuning is not None
    assert objective_metric(tuning, "binary") == "roc_auc"
    assert objective_metric(tuning, "regression") == "rmse"
    with pytest.raises(ConfigError, match=r"tuning.metric: 'rmse' does not apply to a binary task"):
        objective_metric(cfg(metric="rmse").tuning, "binary")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"tuning.metric: unknown metric 'roc'"):
        objective_metric(cfg(metric="roc").tuning, "binary")  # type: ignore[arg-type]


# -- budgets and cost ----------------------------------------------------------------------------------


def test_trial_cost_from_the_price_table() -> None:
    prices = CostConfig(cpu_hour=0.36, gpu_hour=3.6)
    assert trial_cost(100.0, 50.0, prices) == pytest.approx(0.01)
    assert trial_cost(100.0, 50.0, prices, on_gpu=True) == pytest.approx(0.01 + 0.05)
    assert Budget(max_cost=1.0).exhausted(0.5) is None
    assert Budget(max_cost=1.0).exhausted(1.0) == "max_cost"


def _settings(n: int = 6, **kw: Any) -> StudySettings:
    base: dict[str, Any] = {"study_name": "s", "storage": parse_storage(None), "metric": "roc_auc",
                            "direction": "maximize", "n_trials": n, "seed": 11}
    return StudySettings(**{**base, **kw})


SPACE = cfg(space={"x": {"type": "float", "low": -3, "high": 3},
                   "k": {"type": "categorical", "choices": ["a", "b"]}}).tuning.space  # type: ignore[union-attr]


def _toy(trial: Any, params: dict[str, Any], counter: RoundCounter) -> float:
    counter.trained += 1
    counter.budget += 1
    return -(params["x"] - 1.0) ** 2 + (0.5 if params["k"] == "b" else 0.0)


def test_cost_budget_stops_the_study_cleanly() -> None:
    prices = CostConfig(cpu_hour=1e9)  # any CPU time at all spends the budget
    run = run_study(_settings(20, max_cost=1e-9, prices=prices),
                    SPACE, lambda t, p, c: sum(i * i for i in range(20_000)) + _toy(t, p, c))
    assert run.stopped_by == "max_cost"
    assert len(run.ran) == 1
    summary = summarize(run.study, run.stopped_by)
    assert summary["n_trials"] == 1 and summary["n_waiting"] == 19 and summary["total_cost"] > 0


def test_timeout_budget_is_checked_before_each_trial() -> None:
    run = run_study(_settings(5, timeout=1e-9), SPACE, _toy)
    assert run.stopped_by == "timeout"
    assert run.ran == []


def test_every_trial_records_cpu_wall_and_cost() -> None:
    run = run_study(_settings(3), SPACE, _toy)
    for t in run.study.trials:
        assert {"cpu_seconds", "wall_seconds", "cost", "rounds_trained", "rounds_budget"} <= set(t.user_attrs)
        assert t.user_attrs["cost"] == pytest.approx(t.user_attrs["cpu_seconds"] / 3600 * 0.05)


# -- study behaviour ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes"])
def test_one_worker_with_a_seed_is_reproducible_trial_by_trial(sampler: str) -> None:
    def trials(storage: str | None) -> list[tuple[Any, ...]]:
        settings = _settings(12, sampler=sampler, storage=parse_storage(storage))
        run = run_study(settings, SPACE, _toy)
        return [(t.number, t.state.name, t.params, t.value) for t in run.study.trials]

    first = trials(None)
    assert first == trials(None)
    assert len({str(p) for _, _, p, _ in first}) == 12  # not the same point every time


def test_sqlite_study_is_the_same_as_in_memory(tmp_path: Path) -> None:
    mem = run_study(_settings(8), SPACE, _toy).study.trials
    sql = run_study(_settings(8, storage=parse_storage(f"sqlite:///{tmp_path}/s.db")), SPACE, _toy).study.trials
    assert [(t.params, t.value) for t in mem] == [(t.params, t.value) for t in sql]


def test_failing_trials_are_recorded_and_the_study_goes_on() -> None:
    def flaky(trial: Any, params: dict[str, Any], counter: RoundCounter) -> float:
        if trial.number == 1:
            raise RuntimeError("boom")
        if trial.number == 2:
            return float("nan")
        return _toy(trial, params, counter)

    run = run_study(_settings(5), SPACE, flaky)
    states = [t.state.name for t in run.study.trials]
    assert states == ["COMPLETE", "FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    errors = [t.user_attrs.get("error", "") for t in run.study.trials]
    assert errors[1] == "RuntimeError: boom" and errors[2] == "objective value is nan"
    assert summarize(run.study)["n_failed"] == 2


def test_a_trial_failed_by_another_worker_meanwhile_does_not_stop_this_one(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    def stalled(trial: Any, params: dict[str, Any], counter: RoundCounter) -> float:
        if trial.number == 0:  # as if another worker had found this trial's heartbeat stale
            trial.study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        return _toy(trial, params, counter)

    run = run_study(_settings(3, storage=parse_storage(f"sqlite:///{tmp_path}/s.db")), SPACE, stalled)
    assert [t.state.name for t in run.study.trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert run.ran == [0, 1, 2]


def test_grid_sampler_runs_each_point_once() -> None:
    space = cfg(sampler="grid", space={"max_depth": {"type": "int", "low": 2, "high": 4},
                                       "k": {"type": "categorical", "choices": ["a", "b"]}}).tuning.space  # type: ignore[union-attr]
    run = run_study(_settings(50, sampler="grid"), space, lambda t, p, c: float(p["max_depth"]))
    points = [tuple(sorted(t.params.items())) for t in run.study.trials]
    assert len(points) == 6 and len(set(points)) == 6


def test_grid_with_a_conditional_parameter_runs_each_distinct_point_once() -> None:
    space = cfg(sampler="grid", space={
        "policy": {"type": "categorical", "choices": ["depthwise", "lossguide"]},
        "leaves": {"type": "int", "low": 1, "high": 4, "when": {"policy": "lossguide"}}}).tuning.space  # type: ignore[union-attr]
    run = run_study(_settings(50, sampler="grid"), space, lambda t, p, c: float(p.get("leaves", 0)))
    points = [tuple(sorted(t.params.items())) for t in run.study.trials]
    assert len(points) == 5 and len(set(points)) == 5  # depthwise once, lossguide x 4 leaves
    assert ("depthwise", None) not in points and (("policy", "depthwise"),) in points


def test_conditional_parameter_is_sampled_only_under_its_condition() -> None:
    space = cfg(space={"policy": {"type": "categorical", "choices": ["depthwise", "lossguide"]},
                       "leaves": {"type": "int", "low": 2, "high": 8, "when": {"policy": "lossguide"}}}
                ).tuning.space  # type: ignore[union-attr]
    run = run_study(_settings(16, sampler="random"), space, lambda t, p, c: float(len(p)))
    for t in run.study.trials:
        assert ("leaves" in t.params) == (t.params["policy"] == "lossguide")
    assert {t.params["policy"] for t in run.study.trials} == {"depthwise", "lossguide"}


# -- pruning stops the boosters -----------------------------------------------------------------------------


class _PruneAfter:
    """A stand-in for optuna.Trial whose pruner says 'prune' from a given step on."""

    def __init__(self, step: int) -> None:
        self.step, self.reported = step, []

    def report(self, value: float, step: int) -> None:
        self.reported.append((step, value))

    def should_prune(self) -> bool:
        return len(self.reported) >= self.step


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_raising_in_on_round_stops_boosting(model: str, fold: Fold) -> None:
    import optuna

    from trainpipe.models import create_adapter

    config = cfg(model, {"n_estimators": 200})
    adapter = create_adapter(BINARY, config.model, config.training)
    fake, counter = _PruneAfter(5), RoundCounter()
    reporter = PruningReporter(fake, "maximize", counter)  # type: ignore[arg-type]
    with pytest.raises(optuna.TrialPruned, match="after 5 of 200 rounds"):
        adapter.fit(fold.X, fold.y, fold.X_val, fold.y_val, reporter)
    assert [s for s, _ in fake.reported] == [1, 2, 3, 4, 5]  # no round after the prune decision
    assert (counter.trained, counter.budget) == (5, 200)
    assert all(v < 0 for _, v in fake.reported)  # the loss is negated for a maximized study


def test_raising_in_on_round_stops_torch_epochs(fold: Fold) -> None:
    import optuna

    from trainpipe.models import create_adapter

    config = validate_config({"name": "t", "data": {"source": "x", "target": "y"},
                              "model": {"type": "torch_mlp", "params": {"hidden_dims": [16]}},
                              "training": {"epochs": 20, "batch_size": 64, "device": "cpu"}}, source="t")
    adapter = create_adapter(BINARY, config.model, config.training)
    fake, counter = _PruneAfter(3), RoundCounter()
    with pytest.raises(optuna.TrialPruned, match="pruned at val_loss=.* after 3 of 20 rounds"):
        adapter.fit(fold.X.astype("float32"), fold.y, fold.X_val.astype("float32"), fold.y_val,
                    PruningReporter(fake, "maximize", counter))  # type: ignore[arg-type]
    assert [s for s, _ in fake.reported] == [1, 2, 3]
    assert (counter.trained, counter.budget) == (3, 20)


def test_pruning_saves_rounds_in_a_real_study(fold: Fold, tmp_path: Path) -> None:
    config = cfg("xgboost", {"n_estimators": 80}, n_trials=12, pruner="median")
    summary = tune_folds(config, BINARY, [fold], tmp_path)
    assert summary["n_trials"] == 12 and summary["n_pruned"] > 0
    assert summary["rounds_budget"] == 12 * 80
    assert summary["rounds_trained"] < summary["rounds_budget"]
    assert summary["work_saved_fraction"] == pytest.approx(1 - summary["rounds_trained"] / (12 * 80))
    assert summary["pruned_fraction"] == pytest.approx(summary["n_pruned"] / 12)


@pytest.mark.parametrize("pruner", ["hyperband", "none"])
def test_other_pruners(pruner: str, fold: Fold, tmp_path: Path) -> None:
    summary = tune_folds(cfg("lightgbm", {"n_estimators": 30}, n_trials=6, pruner=pruner), BINARY, [fold], tmp_path)
    assert summary["n_trials"] == 6
    if pruner == "none":
        assert summary["n_pruned"] == 0 and summary["work_saved_fraction"] == 0


# -- tracking -----------------------------------------------------------------------------------------------


def test_nested_trial_runs_and_study_artifacts(fold: Fold, tmp_path: Path) -> None:
    tracker = InMemoryTracker()
    parent = tracker.start_run("tune")
    config = cfg("xgboost", {"n_estimators": 40}, n_trials=8,
                 space={"max_depth": {"type": "int", "low": 2, "high": 6},
                        "learning_rate": {"type": "float", "low": 0.02, "high": 0.3, "log": True}})
    summary = tune_folds(config, BINARY, [fold], tmp_path, tracker=tracker, parent_run_id=parent)
    children = tracker.children(parent)
    assert len(children) == 8
    assert {c.tags["optuna.state"] for c in children} <= {"complete", "pruned", "fail"}
    for child in children:  # trial 0 runs the family's defaults: an empty override
        assert set(child.params) == (set() if child.tags.get("optuna.defaults") else {"max_depth", "learning_rate"})
        assert {"cost", "cpu_seconds", "wall_seconds", "rounds_trained"} <= set(child.metrics)
        assert len(child.metrics["intermediate_value"]) == int(child.metrics["rounds_trained"][0][1])
    best = children[summary["best_trial"]]
    assert best.metrics["value"][0][1] == pytest.approx(summary["best_value"])
    assert tracker.runs[parent].tags["optuna.role"] == "study"
    artifacts = set(tracker.runs[parent].artifacts)
    assert {"tuning/study_summary.json", "tuning/trials.csv", "tuning/best_params.json",
            "tuning/optimization_history.png", "tuning/param_importances.png"} <= artifacts
    best_json = (tmp_path / "best_params.json").read_text()
    assert '"model_params"' in best_json and str(summary["best_trial"]) in best_json


def test_training_keys_go_to_the_training_section(fold: Fold, tmp_path: Path) -> None:
    config = cfg("xgboost", {"n_estimators": 20}, n_trials=3, pruner="none",
                 space={"max_depth": {"type": "int", "low": 2, "high": 4},
                        "training.early_stopping_rounds": {"type": "categorical", "choices": [3, 5]}})
    tune_folds(config, BINARY, [fold], tmp_path)
    import json

    best = json.loads((tmp_path / "best_params.json").read_text())
    assert set(best["model_params"]) <= {"max_depth", "eval_metric"}  # {} params: the defaults' trial won
    assert best["model_params"]["eval_metric"] == "auc"  # XGBoost scores rounds on the study's metric
    assert set(best["training"]) == {"early_stopping_rounds"}


def test_import_trainpipe_tuning_does_not_import_optuna() -> None:
    code = "import sys, trainpipe.tuning, trainpipe.pipeline._steps_tuning; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


# -- through the CLI: invalid spaces are exit 2 before any trial --------------------------------------------


@pytest.mark.parametrize(("space", "message"), [
    ("{max_depth: {type: int, low: 10, high: 3}}", "tuning.space.max_depth: low (10) is greater than high (3)"),
    ("{colour: {type: categorical, choices: []}}", "tuning.space.colour: type 'categorical' needs a non-empty"),
    ("{max_dept: {type: int, low: 2, high: 5}}", "tuning.space.max_dept: unknown parameter for xgboost"),
])
def test_cli_invalid_space_exits_2_before_any_trial(workdir: Path, space: str, message: str) -> None:
    make_frame(200).to_csv(workdir / "d.csv", index=False)
    write_pipeline(workdir, f"name: t\ndata: {{source: d.csv, target: label}}\nmodel: {{type: xgboost}}\n"
                            f"tuning: {{n_trials: 3, storage: 'sqlite:///{workdir}/study.db', space: {space}}}\n")
    from tests.test_bad_input import run_cli  # in-process (typer's runner); TP_BAD_INPUT_SUBPROCESS=1: a subprocess

    out = run_cli(workdir, "tune", "pipeline.yaml")
    assert out.returncode == 2, out.stderr
    assert message in out.message
    assert "Traceback" not in out.stderr
    assert not (workdir / "study.db").exists()  # no study was opened, so no trial ran


# -- the tune step inside the pipeline -------------------------------------------------------------------


def _run_until_tune(workdir: Path, text: str) -> Path:
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner, steps_for
    from trainpipe.registry import InMemoryRegistry

    make_frame(300).to_csv(workdir / "d.csv", index=False)
    loaded = load_config(write_pipeline(workdir, text))
    steps = steps_for(loaded.config)
    steps = steps[: [s.name for s in steps].index("tune") + 1]
    result = PipelineRunner(loaded, workdir=workdir, steps=steps, registry=InMemoryRegistry()).run()
    return result.run_dir / "steps" / "tune"


def test_tune_step_with_cv_folds(workdir: Path) -> None:
    import json

    out = _run_until_tune(workdir, """\
name: cv
data: {source: d.csv, target: label}
model: {type: xgboost, params: {n_estimators: 20}}
training: {early_stopping_rounds: null}
tuning: {n_trials: 3, cv_folds: 3, pruner: none, space: {max_depth: {type: int, low: 2, high: 4}}}
""")
    summary = json.loads((out / "study_summary.json").read_text())
    assert summary["n_complete"] == 3
    assert summary["rounds_budget"] == summary["rounds_trained"] == 3 * 3 * 20  # trials x folds x rounds
    assert {"best_params.json", "trials.csv", "optimization_history.png"} <= {p.name for p in out.iterdir()}


def test_tune_step_study_name_from_the_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("TRAINPIPE_STUDY", "named")
    out = _run_until_tune(workdir, """\
name: env
data: {source: d.csv, target: label}
model: {type: sklearn.linear_model.LogisticRegression}
tuning: {n_trials: 3}
""")
    summary = json.loads((out / "study_summary.json").read_text())
    assert summary["study_name"] == "named" and summary["n_trials"] == 3
    assert set(summary["best_params"]) <= {"C"}  # scikit-learn default space (none: the defaults' trial won)


def test_round_metric_direction_uses_whole_words_and_lightgbm_follows_the_study_metric() -> None:
    from trainpipe.tuning._objective import metric_params, pick_round_metric

    assert pick_round_metric({"valid_0 mape": 0.3}) == ("valid_0 mape", False)  # not "map"
    assert pick_round_metric({"auc": 0.8}) == ("auc", True)
    assert pick_round_metric({"average_precision": 0.4}) == ("average_precision", True)
    assert pick_round_metric({"binary_error": 0.2}) == ("binary_error", False)
    assert metric_params("lightgbm", "roc_auc", "binary", {}) == {"metric": "auc"}
    assert metric_params("lightgbm", "roc_auc", "binary", {"metric": "binary_logloss"}) == {}
    assert metric_params("xgboost", "roc_auc", "binary", {}) == {"eval_metric": "auc"}


def test_joining_a_study_made_by_another_config_is_refused(tmp_path: Path) -> None:
    from trainpipe.tuning import open_study

    storage = parse_storage(f"sqlite:///{tmp_path}/optuna.db")
    open_study(_settings(3, fingerprint="aaaa", storage=storage), SPACE)
    with pytest.raises(ConfigError, match="was created by another config or other data"):
        open_study(_settings(3, fingerprint="bbbb", storage=storage), SPACE)
    open_study(_settings(3, fingerprint="aaaa", storage=storage), SPACE)  # same question: joins


def test_joining_a_study_without_a_complete_trial_queue_says_why(tmp_path: Path) -> None:
    import optuna

    from trainpipe.tuning import open_study

    storage = parse_storage(f"sqlite:///{tmp_path}/optuna.db")
    optuna.create_study(storage=storage.url, study_name="foreign", direction="maximize")
    with pytest.raises(ConfigError, match="was not created by trainpipe"):
        open_study(_settings(3, study_name="foreign", storage=storage, wait_ready_s=0.3), SPACE)
    # A creator killed after naming its metric but before its last queued slot: 1 of 3 queued.
    half = optuna.create_study(storage=storage.url, study_name="half", direction="maximize")
    half.set_user_attr("trainpipe.metric", "roc_auc")
    half.enqueue_trial({"x": 0.0, "k": "a"})
    with pytest.raises(ConfigError, match=r"stopped before its trial queue was complete \(1 of 3 trials queued\)"):
        open_study(_settings(3, study_name="half", storage=storage, wait_ready_s=0.3), SPACE)


def test_cache_components_never_hold_a_storage_password(tmp_path: Path) -> None:
    import json

    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner, steps_for

    path = write_pipeline(tmp_path, """\
name: s
data: {source: d.csv, target: label}
model: {type: xgboost}
tuning: {n_trials: 2, storage: "postgresql+psycopg://optuna:hunter2@db:5432/optuna"}
""")
    loaded = load_config(path)
    from trainpipe.registry import InMemoryRegistry

    runner = PipelineRunner(loaded, workdir=tmp_path, registry=InMemoryRegistry())  # no tracker: a registry given
    tune = next(s for s in steps_for(loaded.config) if s.name == "tune")
    text = json.dumps(runner._components(tune, {}))
    assert "hunter2" not in text and "optuna:***@db" in text
