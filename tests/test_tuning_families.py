"""Issue 17, second half: several model families in one study (``tuning.families``, ``model.type: auto``).

Every family's defaults are trials 0..k-1; the study records each family's trials; the chosen family (not
``model.type``) trains the final model; bad family names and one-family spaces are refused with exit 2;
the timeout includes the refit; one worker with a fixed seed gives the same study and model twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import write_pipeline
from trainpipe._exceptions import ConfigError
from trainpipe.config._loader import validate_config
from trainpipe.data import TaskInfo
from trainpipe.tuning import Fold, tune_folds

BINARY = TaskInfo("binary", (0, 1))
EXTRA = "sklearn.ensemble.ExtraTreesClassifier"
LOGISTIC = "sklearn.linear_model.LogisticRegression"
FAMILIES = ["lightgbm", "xgboost", EXTRA]


def _cfg(model: str = "auto", **tuning: Any) -> Any:
    raw = {"name": "fam", "data": {"source": "x.csv", "target": "y"}, "model": {"type": model},
           "training": {"early_stopping_rounds": 10, "seed": 5}, "tuning": {"n_trials": 6, **tuning}}
    return validate_config(raw, source="test.yaml")


@pytest.fixture(scope="module")
def cancer_fold() -> Fold:
    """breast_cancer (569 rows, 30 numeric columns): one 70/30 split, as preprocessed matrices."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order].astype(np.int64)
    cut = int(len(y) * 0.7)
    return Fold(X[:cut], y[:cut], X[cut:], y[cut:])


def _trials(out: Path) -> list[dict[str, str]]:
    import csv

    with (out / "trials.csv").open() as f:
        return list(csv.DictReader(f))


def test_every_familys_defaults_come_first_and_every_family_has_trials(cancer_fold: Fold, tmp_path: Path) -> None:
    summary = tune_folds(_cfg(families=FAMILIES, n_trials=8), BINARY, [cancer_fold], tmp_path)
    rows = _trials(tmp_path)
    assert [r["family"] for r in rows[:3]] == FAMILIES  # the defaults of each family, in order
    # the defaults' trials sample nothing but their family
    assert all(not v for r in rows[:3] for k, v in r.items() if "/" in k)
    assert all(any(v for k, v in r.items() if "/" in k) for r in rows[3:])
    assert len(rows) == 8
    stats = summary["families"]
    assert set(stats) == set(FAMILIES)
    assert all(stats[f]["trials"] >= 1 and stats[f]["complete"] >= 1 for f in FAMILIES), stats
    assert sum(s["trials"] for s in stats.values()) == 8
    best = json.loads((tmp_path / "best_params.json").read_text())
    assert best["model_type"] in FAMILIES and best["model_type"] == summary["model_type"]
    # the chosen family's parameters, without the family prefix
    assert not any("/" in k for k in best["model_params"])
    assert summary["pruner"] == "none"  # auto: steps are rounds in one family, nothing in another


def test_model_type_auto_searches_the_default_families_for_the_task(cancer_fold: Fold, tmp_path: Path) -> None:
    from trainpipe.tuning._multi import auto_families, family_config

    summary = tune_folds(_cfg("auto", n_trials=5), BINARY, [cancer_fold], tmp_path)
    assert list(summary["families"]) == auto_families("binary") == [*FAMILIES, LOGISTIC]
    # every family's defaults ran (trials 0..3), the logistic regression with its study base (1,000 iterations)
    assert all(summary["families"][f]["complete"] >= 1 for f in auto_families("binary")), summary["families"]
    assert auto_families("regression") == ["lightgbm", "xgboost", "sklearn.ensemble.ExtraTreesRegressor"]
    assert family_config(_cfg("auto"), LOGISTIC).model.params == {"max_iter": 1000}


def test_model_type_auto_builds_an_ensemble_unless_turned_off(cancer_fold: Fold, tmp_path: Path) -> None:
    from trainpipe.tuning._ensemble import AUTO_ENSEMBLE, ensemble_settings

    summary = tune_folds(_cfg("auto", n_trials=4), BINARY, [cancer_fold], tmp_path / "auto")
    decision = summary["ensemble"]  # decided on, whether or not it beat the single best trial
    assert decision["method"] == "greedy" and decision["size"] == AUTO_ENSEMBLE.size == 10
    assert 2 <= len(decision["candidates"]) <= AUTO_ENSEMBLE.candidates
    assert decision["used"] == (len(decision.get("members", {})) >= 2), decision
    off = tune_folds(_cfg("auto", n_trials=3, ensemble=False), BINARY, [cancer_fold], tmp_path / "off")
    assert "ensemble" not in off
    one_family = tune_folds(_cfg("xgboost", n_trials=2), BINARY, [cancer_fold], tmp_path / "one")
    assert "ensemble" not in one_family  # only model.type: auto builds one unasked
    assert ensemble_settings(_cfg(families=FAMILIES, ensemble=True)).size == 5  # true: the explicit defaults
    assert ensemble_settings(_cfg("xgboost", families=FAMILIES)) is None
    # when the study tunes TF-IDF settings (every trial its own preprocessor) auto's ensemble yields to them; an
    # explicit one is kept (and the text keys are refused: test_text_tuning)
    assert ensemble_settings(_cfg("auto"), tunes_text=True) is None
    assert ensemble_settings(_cfg("auto", ensemble={"size": 3}), tunes_text=True).size == 3


def test_bagged_trees_start_from_300_trees_in_a_study_unless_they_are_model_type() -> None:
    from trainpipe.tuning._multi import family_config

    assert family_config(_cfg("auto"), EXTRA).model.params == {"n_estimators": 300}
    assert family_config(_cfg("auto"), "lightgbm").model.params == {}
    raw = {"name": "fam", "data": {"source": "x.csv", "target": "y"},
           "model": {"type": EXTRA, "params": {"max_depth": 4}}, "tuning": {"families": [EXTRA, "xgboost"]}}
    mine = validate_config(raw, source="test.yaml")
    assert family_config(mine, EXTRA).model.params == {"max_depth": 4}  # model.params are the user's whole say


def test_a_boosters_round_cap_follows_a_sampled_learning_rate() -> None:
    from trainpipe.config import ModelConfig, TrainingConfig
    from trainpipe.models import create_adapter
    from trainpipe.tuning._objective import BOOSTER_DEFAULT_ROUNDS, rounds_for_learning_rate, trial_configs

    for model_type, (rounds, rate) in BOOSTER_DEFAULT_ROUNDS.items():  # the adapters' own defaults
        params = create_adapter(BINARY, ModelConfig(type=model_type), TrainingConfig()).params
        assert (params["n_estimators"], params["learning_rate"]) == (rounds, rate), model_type
    assert rounds_for_learning_rate("xgboost", {}, {"learning_rate": 0.025}) == {"n_estimators": 2000}
    assert rounds_for_learning_rate("xgboost", {}, {"learning_rate": 0.001}) == {"n_estimators": 5000}  # at most x10
    assert rounds_for_learning_rate("xgboost", {}, {"learning_rate": 0.2}) == {}  # above the default: the cap stays
    assert rounds_for_learning_rate("xgboost", {"n_estimators": 80}, {"learning_rate": 0.01}) == {}  # the user's
    assert rounds_for_learning_rate("xgboost", {}, {"learning_rate": 0.01, "n_estimators": 90}) == {}  # tuned
    assert rounds_for_learning_rate(EXTRA, {}, {"learning_rate": 0.01}) == {}
    model, _ = trial_configs(_cfg("lightgbm"), {"learning_rate": 0.01, "num_leaves": 8})
    assert model.params == {"n_estimators": 2500, "learning_rate": 0.01, "num_leaves": 8}


def test_cost_aware_allocation_favours_quality_per_second() -> None:
    from types import SimpleNamespace

    from trainpipe.tuning._multi import pick_family

    def trial(family: str, value: float, seconds: float) -> Any:
        return SimpleNamespace(params={"family": family}, state=SimpleNamespace(name="COMPLETE"), value=value,
                               user_attrs={"wall_seconds": seconds, "oriented_value": value, "score_se": 0.01})

    # equal quality, "slow" costs 100x: drawn about sqrt(1/100) = 1/10 as often as "fast"
    trials = [trial("fast", 0.90, 0.1), trial("slow", 0.90, 10.0)]
    drawn = [pick_family(trials, ["fast", "slow"], 3, n) for n in range(2, 602)]
    assert 0.04 < drawn.count("slow") / len(drawn) < 0.16
    # a family 5 standard errors behind at equal cost keeps only the 2 % floor
    trials = [trial("good", 0.90, 1.0), trial("bad", 0.85, 1.0)]
    drawn = [pick_family(trials, ["good", "bad"], 3, n) for n in range(2, 602)]
    assert drawn.count("bad") / len(drawn) < 0.05
    # a family whose mean trial no longer fits in the time left is not drawn (unless it leads)
    trials = [trial("fast", 0.90, 0.1), trial("slow", 0.895, 30.0)]
    assert {pick_family(trials, ["fast", "slow"], 3, n, remaining=5.0) for n in range(2, 50)} == {"fast"}
    # before every family has a finished trial, the untried one goes first
    assert pick_family(trials[:1], ["fast", "slow"], 3, 2) == "slow"


def test_a_family_past_its_saturation_gives_way_to_the_others() -> None:
    """A cheap leader with one parameter (a logistic regression's C) does not take nearly every trial: past 25
    trials per searched parameter its weight falls as 25 d / n."""
    from types import SimpleNamespace

    from trainpipe.tuning._multi import SATURATION_TRIALS_PER_PARAM, pick_family

    def trial(family: str, value: float, seconds: float, params: dict[str, float]) -> Any:
        return SimpleNamespace(params={"family": family, **{f"{family}/{k}": v for k, v in params.items()}},
                               state=SimpleNamespace(name="COMPLETE"), value=value,
                               user_attrs={"wall_seconds": seconds, "oriented_value": value, "score_se": 0.01})

    booster = [trial("lgbm", 0.899, 1.0, {"a": 0.1, "b": 2, "c": 3})]  # within the noise, 10x the cost
    few = [trial("linear", 0.90, 0.1, {"C": 1.0})] * 10
    many = [trial("linear", 0.90, 0.1, {"C": 1.0})] * (SATURATION_TRIALS_PER_PARAM * 8)
    share_few = [pick_family(booster + few, ["lgbm", "linear"], 3, n) for n in range(2, 602)].count("lgbm") / 600
    share_many = [pick_family(booster + many, ["lgbm", "linear"], 3, n) for n in range(2, 602)].count("lgbm") / 600
    # unsaturated: sqrt(0.1 / 1) ~ 0.3 of the leader's weight -> ~ 24 % of draws; saturated at 8x: the linear
    # family's weight is 1/8 -> the booster gets ~ 70 %
    assert 0.12 < share_few < 0.36, share_few
    assert share_many > 0.55, share_many
    # saturation counts a family's own parameters: 3 of them saturate at 75 trials; at 200 its weight is 0.375
    many_boost = [trial("lgbm", 0.90, 0.1, {"a": 0.1, "b": 2, "c": 3})] * 200
    other = [trial("et", 0.899, 0.1, {"d": 1.0, "e": 2, "f": 3})]
    share = [pick_family(many_boost + other, ["lgbm", "et"], 3, n) for n in range(2, 602)].count("et") / 600
    assert share > 0.55, share  # et's weight exp(-0.1) = 0.9 against 0.375: about 70 % of the draws
    # a saturated leader far ahead of the rest: the others' 2 % floors are shares of its unsaturated weight, so
    # past 8x its saturation they take 3 x 2 / (3 x 2 + 100 / 8) ~ 1/3 of the draws (without it, 6 %)
    behind = [trial(f, 0.70, 1.0, {"a": 1.0, "b": 2.0}) for f in ("x", "y", "z")]
    drawn = [pick_family(behind + many, ["x", "y", "z", "linear"], 3, n) for n in range(2, 602)]
    assert 0.2 < 1 - drawn.count("linear") / 600 < 0.5, drawn.count("linear")


def test_same_seed_same_multi_family_study(cancer_fold: Fold, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        summary = tune_folds(_cfg(families=FAMILIES, n_trials=7), BINARY, [cancer_fold], tmp_path / name)
        rows = _trials(tmp_path / name)
        runs.append(([(r["family"], r["value"], r["state"], {k: v for k, v in r.items() if "/" in k})
                      for r in rows],
                     json.loads((tmp_path / name / "best_params.json").read_text())["model_params"],
                     summary["model_type"]))
    assert runs[0] == runs[1]


# -- config checks: exit 2 with the key and what to do -------------------------------------------------------


def test_unknown_family_is_refused_with_a_did_you_mean() -> None:
    from trainpipe.tuning import check_space

    with pytest.raises(ConfigError, match=r"tuning.families: unknown model type 'lightgbn'\. Did you mean "
                                          r"'lightgbm'\?"):
        check_space(_cfg("lightgbm", families=["lightgbn", "xgboost"]), "binary")


def test_a_space_of_one_familys_params_is_refused() -> None:
    from trainpipe.tuning import check_space

    with pytest.raises(ConfigError, match=r"tuning.space.max_depth: with tuning.families \(lightgbm, xgboost\) "
                                          r"every key of tuning.space names its family, e.g. 'lightgbm/max_depth'"):
        check_space(_cfg("xgboost", families=["lightgbm", "xgboost"],
                         space={"max_depth": {"type": "int", "low": 2, "high": 6}}), "binary")
    # prefixed keys are checked against their own family
    with pytest.raises(ConfigError, match=r"tuning.families: xgboost: tuning.space.xgboost/num_leaves"):
        check_space(_cfg("xgboost", families=["lightgbm", "xgboost"],
                         space={"xgboost/num_leaves": {"type": "int", "low": 2, "high": 6}}), "binary")


def test_family_that_cannot_learn_the_task_and_model_type_outside_the_list() -> None:
    from trainpipe.tuning import check_space

    with pytest.raises(ConfigError, match=r"tuning.families: 'sklearn.ensemble.ExtraTreesClassifier' cannot "
                                          r"learn a regression task"):
        check_space(_cfg(families=["lightgbm", EXTRA]), "regression")
    with pytest.raises(ConfigError, match=r"tuning.families: model.type 'torch_mlp' is not in the list"):
        check_space(_cfg("torch_mlp", families=["lightgbm", "xgboost"]), "binary")


def test_model_type_auto_needs_a_tuning_section() -> None:
    raw = {"name": "x", "data": {"source": "x.csv", "target": "y"}, "model": {"type": "auto"}}
    with pytest.raises(ConfigError, match=r"model.type: 'auto' picks the model family with a tuning study"):
        validate_config(raw, source="test.yaml")


def test_cli_exit_2_for_an_unknown_family(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_breast_cancer
    from typer.testing import CliRunner

    import trainpipe.cli as cli

    load_breast_cancer(as_frame=True).frame.to_csv(workdir / "d.csv", index=False)
    write_pipeline(workdir, "name: f\ndata: {source: d.csv, target: target}\nmodel: {type: auto}\n"
                            "tuning: {n_trials: 3, families: [lightgbm, xgbost]}\n")
    monkeypatch.setenv("COLUMNS", "400")
    result = CliRunner().invoke(cli.app, ["run", "pipeline.yaml"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert "tuning.families: unknown model type 'xgbost'. Did you mean 'xgboost'?" in text
    assert "Traceback" not in text


# -- through the pipeline: the chosen family trains the final model --------------------------------------------


def _run_pipeline(workdir: Path, text: str, frame: Any, until: str = "train") -> Path:
    from trainpipe.config import load_config
    from trainpipe.pipeline import PipelineRunner, steps_for
    from trainpipe.registry import InMemoryRegistry

    frame.to_csv(workdir / "d.csv", index=False)
    loaded = load_config(write_pipeline(workdir, text))
    steps = steps_for(loaded.config)
    steps = steps[: [s.name for s in steps].index(until) + 1]
    return PipelineRunner(loaded, workdir=workdir, steps=steps, registry=InMemoryRegistry()).run().run_dir / "steps"


@pytest.mark.slow  # a whole pipeline run with tuning (20-30 s): out of make test-fast
def test_the_chosen_family_trains_the_final_model(workdir: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    from trainpipe.models import TrainedModel

    frame = load_breast_cancer(as_frame=True).frame
    # xgboost is model.type, but the study may choose another family: train must build the chosen one
    steps = _run_pipeline(workdir, f"""\
name: chosen
data: {{source: d.csv, target: target}}
model: {{type: xgboost, params: {{n_estimators: 60}}}}
training: {{early_stopping_rounds: 10}}
tuning: {{n_trials: 6, selection: cv, cv_folds: 3, families: [xgboost, lightgbm, {EXTRA}]}}
""", frame)
    best = json.loads((steps / "tune" / "best_params.json").read_text())
    spec = json.loads((steps / "train" / "model" / "spec.json").read_text())
    assert spec["model_type"] == best["model_type"]
    summary = json.loads((steps / "tune" / "study_summary.json").read_text())
    assert all(summary["families"][f]["trials"] >= 1 for f in ("xgboost", "lightgbm", EXTRA))
    model = TrainedModel.load(steps / "train" / "model")
    pred = model.predict(frame.drop(columns=["target"]).head(20))
    assert len(pred) == 20


@pytest.mark.slow
def test_timeout_includes_the_refit_in_a_multi_family_study(workdir: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    steps = _run_pipeline(workdir, """\
name: budgetfam
data: {source: d.csv, target: target}
model: {type: auto}
tuning: {n_trials: 500, timeout: 15}
""", load_breast_cancer(as_frame=True).frame)
    refit = json.loads((steps / "train" / "refit.json").read_text())
    summary = json.loads((steps / "tune" / "study_summary.json").read_text())
    assert summary["stopped_by"] == "timeout" and summary["n_trials"] < 500
    # the first family's defaults trial is the fallback and always completes; how many of the others fit in
    # 15 s depends on the machine
    assert list(summary["families"]) == [*FAMILIES, LOGISTIC] and summary["families"]["lightgbm"]["complete"] >= 1
    budget = summary["budget"]
    assert budget["study_seconds"] + budget["refit_estimate_seconds"] <= 15 + 1.0, budget
    assert refit["timeout"] == 15
    assert refit["study_and_refit_seconds"] <= 15 * 1.5 + 5, refit


@pytest.mark.slow
def test_same_seed_same_study_and_same_final_model_through_the_pipeline(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_breast_cancer

    from trainpipe.models import TrainedModel

    frame = load_breast_cancer(as_frame=True).frame
    runs = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        monkeypatch.chdir(workdir)
        steps = _run_pipeline(workdir, f"""\
name: repro
data: {{source: d.csv, target: target}}
model: {{type: auto}}
training: {{seed: 11}}
tuning: {{n_trials: 5, selection: cv, cv_folds: 3, families: [lightgbm, {EXTRA}]}}
""", frame)
        trials = [(r["family"], r["value"], {k: v for k, v in r.items() if "/" in k})
                  for r in _trials(steps / "tune")]
        model = TrainedModel.load(steps / "train" / "model")
        runs.append((trials, json.loads((steps / "tune" / "best_params.json").read_text())["model_params"],
                     model.spec.model_type, model.predict_proba(frame.drop(columns=["target"]))))
    assert runs[0][:3] == runs[1][:3]
    np.testing.assert_array_equal(runs[0][3], runs[1][3])


@pytest.mark.slow  # a whole pipeline run with tuning (20-30 s): out of make test-fast
def test_final_model_fold_average_averages_k_fold_models(workdir: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    from trainpipe.models import TrainedModel

    frame = load_breast_cancer(as_frame=True).frame
    # weak defaults (3 stumps), so that a tuned trial beats them beyond the noise and the fold average is used
    steps = _run_pipeline(workdir, """\
name: foldavg
data: {source: d.csv, target: target}
model: {type: xgboost, params: {n_estimators: 3, max_depth: 1}}
training: {early_stopping_rounds: 5}
tuning: {n_trials: 4, selection: cv, cv_folds: 3, final_model: fold_average,
         space: {n_estimators: {type: int, low: 40, high: 60}, max_depth: {type: int, low: 2, high: 4}}}
""", frame)
    best = json.loads((steps / "tune" / "best_params.json").read_text())
    assert best["final_fit"] == {"mode": "fold_average", "k": 3, "rows": best["final_fit"]["rows"]}
    described = json.loads((steps / "train" / "model" / "ensemble.json").read_text())
    assert [m["model_type"] for m in described["members"]] == ["xgboost"] * 3
    assert [m["weight"] for m in described["members"]] == pytest.approx([1 / 3] * 3)
    refit = json.loads((steps / "train" / "refit.json").read_text())
    assert refit["mode"] == "fold_average" and refit["members"] == 3
    model = TrainedModel.load(steps / "train" / "model")
    raw = frame.drop(columns=["target"]).head(50)
    proba = model.predict_proba(raw)
    members = [m for _, m in model.adapter.members]
    X = model.transform(raw)
    np.testing.assert_allclose(proba, np.mean([m.predict_proba(X) for m in members], axis=0), rtol=1e-6)
