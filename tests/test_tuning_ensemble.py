"""Issue 17: ``tuning.ensemble`` — Caruana greedy selection on the trials' out-of-fold predictions, one
weighted model saved as data (each member in its library's format), registered through the same gate and
registry, loading with plain ``mlflow.pyfunc.load_model`` and predicting from raw columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_pipeline
from trainpipe.data import TaskInfo

BINARY = TaskInfo("binary", (0, 1))
EXTRA = "sklearn.ensemble.ExtraTreesClassifier"


def test_greedy_selection_combines_complementary_models() -> None:
    from trainpipe.tuning._ensemble import caruana

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=400)
    signal = y + rng.normal(scale=1.0, size=(2, 400))  # two models with independent errors
    to_proba = lambda s: np.column_stack([1 - 1 / (1 + np.exp(-s)), 1 / (1 + np.exp(-s))])  # noqa: E731
    preds = {0: to_proba(signal[0] - 0.5), 1: to_proba(signal[1] - 0.5), 2: to_proba(rng.normal(size=400))}
    counts, score = caruana(preds, y, "roc_auc", BINARY, "maximize", size=6)
    from sklearn.metrics import roc_auc_score

    singles = [roc_auc_score(y, p[:, 1]) for p in preds.values()]
    assert set(counts) == {0, 1}  # the noise model is never picked
    assert score > max(singles)
    assert score == pytest.approx(roc_auc_score(y, sum(c * preds[n] for n, c in counts.items())[:, 1]))


def test_the_pool_adds_the_best_trial_of_every_family_missing_from_the_top() -> None:
    import optuna

    from trainpipe.tuning._ensemble import ensemble_pool

    families = optuna.distributions.CategoricalDistribution(["lightgbm", "xgboost", EXTRA])

    def trial(number: int, family: str, value: float, failed: bool = False) -> optuna.trial.FrozenTrial:
        made = (optuna.trial.create_trial(params={"family": family}, distributions={"family": families},
                                          state=optuna.trial.TrialState.FAIL) if failed else
                optuna.trial.create_trial(params={"family": family}, distributions={"family": families}, value=value))
        made.number = number
        return made

    trials = [trial(i, "lightgbm", 0.90 - i / 100) for i in range(5)]
    trials += [trial(5, "xgboost", 0.80), trial(6, "xgboost", 0.81), trial(7, EXTRA, 0.70),
               trial(8, EXTRA, 0.5, failed=True)]
    pool = ensemble_pool(trials, "maximize", candidates=3)
    # the 3 best (all LightGBM), then xgboost's best (0.81, trial 6) and ExtraTrees' best complete trial (7)
    assert [t.number for t in pool] == [0, 1, 2, 6, 7]
    assert [t.number for t in ensemble_pool(trials, "minimize", candidates=2)] == [7, 5, 4]
    assert [t.number for t in ensemble_pool(trials, "maximize", 3, lambda t: t.number != 6)] == [0, 1, 2, 5, 7]


def test_ensemble_adapter_saves_members_as_data_and_refuses_tampered_folders(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    from trainpipe._exceptions import DataError
    from trainpipe.config import ModelConfig, TrainingConfig
    from trainpipe.models import create_adapter
    from trainpipe.models._ensemble import FAMILY, EnsembleAdapter

    X, y = load_breast_cancer(return_X_y=True)
    members = []
    for model_type, params in (("lightgbm", {"n_estimators": 20}), (EXTRA, {"n_estimators": 10})):
        adapter = create_adapter(BINARY, ModelConfig(type=model_type, params=params), TrainingConfig())
        adapter.fit(X[:400], y[:400], None, None, None)
        members.append((model_type, adapter))
    ensemble = EnsembleAdapter(BINARY, members, [3, 1])
    expected = 0.75 * members[0][1].predict_proba(X[400:]) + 0.25 * members[1][1].predict_proba(X[400:])
    np.testing.assert_allclose(ensemble.predict_proba(X[400:]), expected)
    ensemble.save(tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["ensemble.json", "members/0/model.txt", "members/1/estimator.skops"], files
    assert not [p for p in tmp_path.rglob("*.pkl")]
    loaded = FAMILY.load(tmp_path, BINARY, "ensemble")
    np.testing.assert_allclose(loaded.predict_proba(X[400:]), expected, rtol=1e-6)
    described = json.loads((tmp_path / "ensemble.json").read_text())
    described["members"][1]["folder"] = "../../elsewhere"
    (tmp_path / "ensemble.json").write_text(json.dumps(described))
    with pytest.raises(DataError, match=r"member folder '../../elsewhere' is not members/<number>"):
        FAMILY.load(tmp_path, BINARY, "ensemble")


def test_every_auto_family_round_trips_as_an_ensemble_member(tmp_path: Path) -> None:
    """model.type auto's classification families (the logistic regression included) save as data and load
    back through the ensemble folder with the same probabilities (nothing outside skops' allow-list)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    from trainpipe.config import ModelConfig, TrainingConfig
    from trainpipe.models import create_adapter
    from trainpipe.models._ensemble import FAMILY, EnsembleAdapter
    from trainpipe.tuning._multi import STUDY_BASE_PARAMS, auto_families

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)  # as the study's preprocessor gives them (features.scale: standard)
    families = auto_families("binary")
    assert "sklearn.linear_model.LogisticRegression" in families
    members = []
    for model_type in families:
        params = dict(STUDY_BASE_PARAMS.get(model_type, {}))
        if "LogisticRegression" not in model_type:
            params["n_estimators"] = 10  # trees: a small forest is enough to round-trip
        adapter = create_adapter(BINARY, ModelConfig(type=model_type, params=params), TrainingConfig())
        adapter.fit(X[:400], y[:400], None, None, None)
        members.append((model_type, adapter))
    ensemble = EnsembleAdapter(BINARY, members, [1] * len(members))
    expected = ensemble.predict_proba(X[400:])
    ensemble.save(tmp_path)
    assert not [p for p in tmp_path.rglob("*.pkl")]
    loaded = FAMILY.load(tmp_path, BINARY, "ensemble")
    np.testing.assert_allclose(loaded.predict_proba(X[400:]), expected, rtol=1e-6)


def test_model_type_ensemble_is_refused_with_what_to_set() -> None:
    from trainpipe._exceptions import ConfigError
    from trainpipe.config._loader import validate_config
    from trainpipe.pipeline._preflight import preflight

    raw = {"name": "e", "data": {"source": "x.csv", "target": "y"}, "model": {"type": "ensemble"}}
    with pytest.raises(ConfigError, match=r"model.type: 'ensemble' is assembled by tuning.ensemble"):
        preflight(validate_config(raw, source="t.yaml"))


@pytest.mark.slow
def test_ensemble_registers_and_predicts_from_raw_columns(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from sklearn.datasets import load_breast_cancer

    import trainpipe

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = np.where(frame["target"] == 1, "benign", "malignant")
    frame.to_csv(workdir / "d.csv", index=False)
    path = write_pipeline(workdir, f"""\
name: ens
data: {{source: d.csv, target: target}}
model: {{type: auto}}
training: {{seed: 1}}
tuning: {{n_trials: 6, metric: log_loss, selection: cv, cv_folds: 3, families: [lightgbm, {EXTRA}],
         ensemble: {{size: 4}}}}
evaluation: {{latency: false, plots: false}}
""")
    result = trainpipe.run(path)
    steps = result.run_dir / "steps"
    summary = json.loads((steps / "tune" / "study_summary.json").read_text())
    decision = summary["ensemble"]
    assert decision["used"], decision
    assert decision["score"] < decision["single_score"]  # log_loss: lower is better
    assert decision["source"] == "out-of-fold predictions of the cross-validation"
    weights = decision["members"]
    assert len(weights) >= 2 and sum(weights.values()) == pytest.approx(1.0)
    spec = json.loads((steps / "train" / "model" / "spec.json").read_text())
    assert spec["model_type"] == "ensemble"
    assert (steps / "train" / "model" / "ensemble.json").is_file()
    assert result.registered_version == "1" and result.gate_verdict == "passed"

    uri = f"sqlite:///{workdir / '.trainpipe' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model("models:/ens/1")
    raw = frame.drop(columns=["target"]).head(25)
    out = model.predict(raw)
    assert list(out.columns) == ["prediction", "proba_benign", "proba_malignant"]
    assert set(out["prediction"]) <= {"benign", "malignant"}
    assert (out["prediction"] == frame["target"].head(25)).mean() > 0.8
    np.testing.assert_allclose(out[["proba_benign", "proba_malignant"]].sum(axis=1), 1.0, rtol=1e-6)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    card = client.get_model_version("ens", "1").description
    assert "## Ensemble members" in card
    assert card.count("(trial ") == len(weights)
    # the served model needs every member family's library
    requirements = Path(mlflow.pyfunc.get_model_dependencies("models:/ens/1")).read_text()
    assert "lightgbm==" in requirements and "scikit-learn==" in requirements
