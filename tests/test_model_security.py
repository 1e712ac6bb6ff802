"""Issue 18, findings 1 and 5: nothing loaded from a model file or named in ``model.type`` may run code.

A model file loads only when every type in it is on the fixed allow-list in the code (never one read from the
model folder); ``model.type`` resolves only through a fixed table of scikit-learn classifiers and regressors
and the built-in families, and nothing named in a config is imported.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_frame, write_pipeline
from trainpipe import ConfigError, DataError
from trainpipe.config import config_from_dict
from trainpipe.models import TrainedModel, _skops_io, check_model_config

SRC = Path(__file__).resolve().parents[1] / "src" / "trainpipe"
LOGREG = "sklearn.linear_model.LogisticRegression"


def _train(model_type: str, task: str = "binary", params: dict[str, Any] | None = None,
           n: int = 240) -> tuple[TrainedModel, pd.DataFrame]:
    from trainpipe.data import infer_task
    from trainpipe.features import build_preprocessor, infer_feature_spec, prepare_frame
    from trainpipe.models import ModelSpec, create_adapter, family_of

    df = make_frame(n, seed=5, task=task)
    cfg = config_from_dict({"name": "t", "task": task, "data": {"source": "a.csv", "target": "label"},
                            "model": {"type": model_type, "params": params or {}}}).config
    info = infer_task(df["label"], task, None, "label")
    train, test = df.iloc[: n * 3 // 4], df.iloc[n * 3 // 4:]
    spec = infer_feature_spec(train, cfg)
    pre = build_preprocessor(spec, cfg.features).fit(prepare_frame(train, spec))
    adapter = create_adapter(info, cfg.model, cfg.training)
    adapter.fit(pre.transform(prepare_frame(train, spec)), info.encode(train["label"]), None, None)
    return TrainedModel(ModelSpec(model_type, family_of(model_type), info, spec), pre, adapter), test


def _poisoned_chain(marker: Path) -> Any:
    """The finding's exploit: np.full_like(X, CODE, dtype=object) -> ravel -> max -> exec(CODE) at transform."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return Pipeline([
        ("fill", FunctionTransformer(np.full_like, kw_args={"fill_value": code, "dtype": "O"})),
        ("flat", FunctionTransformer(np.ravel)),
        ("pick", FunctionTransformer(builtins.max)),
        ("run", FunctionTransformer(builtins.exec)),
    ])


def _write_raw(obj: Any, path: Path) -> None:
    """What an attacker with write access to the registry does: skops.io.dumps straight into the folder."""
    import skops.io as sio

    path.write_bytes(sio.dumps(obj))


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    model, test = _train(LOGREG)
    folder = tmp_path_factory.mktemp("honest") / "model"
    model.save(folder)
    return folder, test


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "model"))


# -- finding 1: the model file ------------------------------------------------------------------------------


def test_the_exploit_chain_really_runs_code_when_trusted(tmp_path: Path) -> None:
    """The chain used below is a working exploit: fitted and run directly, it writes the marker."""
    marker = tmp_path / "ran"
    _poisoned_chain(marker).fit_transform(np.zeros((2, 2)))
    assert marker.read_text() == "pwned"


def test_poisoned_preprocessor_is_refused_by_trained_model_load(honest: tuple[Path, pd.DataFrame],
                                                                tmp_path: Path) -> None:
    folder = _copy(honest[0], tmp_path)
    marker = tmp_path / "marker"
    _write_raw(_poisoned_chain(marker), folder / "preprocessor.skops")
    with pytest.raises(DataError, match=r"preprocessor\.skops: refusing to load types .*builtins\.exec") as caught:
        TrainedModel.load(folder)
    message = str(caught.value)
    for name in ("builtins.max", "numpy.full_like", "numpy.ravel", "FunctionTransformer",
                 "TRAINPIPE_UNSAFE_TRUST_TYPES"):
        assert name in message
    assert not marker.exists()


def test_poisoned_estimator_file_is_refused(honest: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    folder = _copy(honest[0], tmp_path)
    marker = tmp_path / "marker"
    _write_raw(_poisoned_chain(marker), folder / "estimator.skops")
    with pytest.raises(DataError, match=r"estimator\.skops: refusing to load types .*builtins\.exec"):
        TrainedModel.load(folder)
    assert not marker.exists()


def test_trainpipe_predict_refuses_a_poisoned_model_with_exit_2(honest: tuple[Path, pd.DataFrame], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from trainpipe.cli import app
    from trainpipe.registry._package import save_pyfunc
    from trainpipe.registry._registry import pyfunc_artifact

    folder, test = honest
    raw = test.drop(columns=["label"])
    package = tmp_path / "pyfunc"
    save_pyfunc(TrainedModel.load(folder), folder, package, example_rows=raw, extra_artifacts={})
    raw.to_csv(tmp_path / "rows.csv", index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    runner = CliRunner()
    ok = runner.invoke(app, ["predict", str(package), "rows.csv", "-o", "ok.csv"])
    assert ok.exit_code == 0, ok.output  # the honest package predicts
    marker = tmp_path / "marker"
    model_dir = pyfunc_artifact(package, "model_dir")
    assert model_dir is not None
    _write_raw(_poisoned_chain(marker), model_dir / "preprocessor.skops")
    result = runner.invoke(app, ["predict", str(package), "rows.csv", "-o", "out.csv"])
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "refusing to load types" in flat and "builtins.exec" in flat and "Traceback" not in result.output
    assert not marker.exists() and not (tmp_path / "out.csv").exists()


def test_spec_json_naming_another_module_does_not_widen_trust(honest: tuple[Path, pd.DataFrame],
                                                              tmp_path: Path) -> None:
    """The old loader trusted ``model_type.split('.')[0]``: ``pathlib.Model`` made pathlib types loadable."""
    folder = _copy(honest[0], tmp_path)
    _write_raw({"x": Path("/etc")}, folder / "estimator.skops")
    spec = json.loads((folder / "spec.json").read_text())
    spec["model_type"] = "pathlib.Model"
    (folder / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=r"spec\.json: the model type it names cannot be loaded .*'pathlib\.Model'"):
        TrainedModel.load(folder)
    spec["model_type"] = LOGREG  # a valid type does not make the foreign file loadable either
    (folder / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=r"estimator\.skops: refusing to load types .*pathlib\.PosixPath"):
        TrainedModel.load(folder)


@pytest.mark.parametrize("value", [builtins.eval, builtins.exec, builtins.open, builtins.__import__, np.add,
                                   os.system], ids=lambda f: f.__name__)
def test_functions_in_a_model_file_are_refused(value: Any, tmp_path: Path) -> None:
    """builtins.* functions were trusted by prefix; numpy ufuncs are trusted by skops' own defaults."""
    _write_raw({"f": value}, tmp_path / "f.skops")
    with pytest.raises(DataError, match=re.escape(f".{value.__name__}")):
        _skops_io.load(tmp_path / "f.skops")


def test_trainpipe_never_writes_a_file_it_would_refuse(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    target = tmp_path / "pre.skops"
    with pytest.raises(DataError, match=r"refusing to write FunctionTransformer: .*numpy\.log1p"):
        _skops_io.dump(FunctionTransformer(np.log1p).fit(np.ones((3, 1))), target)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_unsafe_opt_in_names_each_type_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "ft.skops"
    path.write_bytes(sio.dumps(FunctionTransformer(np.log1p).fit(np.ones((3, 1)))))
    ft = "sklearn.preprocessing._function_transformer.FunctionTransformer"
    monkeypatch.setenv(_skops_io.UNSAFE_TRUST_ENV, ft)  # one of the two: still refused, naming the other
    with pytest.raises(DataError, match=r"refusing to load types .*: numpy\.log1p\."):
        _skops_io.load(path)
    monkeypatch.setenv(_skops_io.UNSAFE_TRUST_ENV, f"{ft}, numpy.log1p")
    assert _skops_io.load(path).transform(np.array([[0.0]]))[0, 0] == 0.0
    monkeypatch.delenv(_skops_io.UNSAFE_TRUST_ENV)
    assert _skops_io.load(path, unsafe_trust_types=(ft, "numpy.log1p")) is not None
    with pytest.raises(DataError):
        _skops_io.load(path, unsafe_trust_types=("sklearn.", "numpy."))  # prefixes are not names


def test_a_damaged_skops_file_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "x.skops").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"x\.skops: not a readable skops model file"):
        _skops_io.load(tmp_path / "x.skops")


def test_honest_model_still_loads_and_predicts_the_same(honest: tuple[Path, pd.DataFrame]) -> None:
    folder, test = honest
    raw = test.drop(columns=["label"])
    loaded = TrainedModel.load(folder)
    again = TrainedModel.load(folder)
    np.testing.assert_array_equal(loaded.predict(raw), again.predict(raw))
    assert set(loaded.predict(raw)) <= {"yes", "no"}


ROUND_TRIP = [
    (LOGREG, "multiclass", {}),
    ("sklearn.ensemble.RandomForestClassifier", "binary", {"n_estimators": 10}),
    ("sklearn.ensemble.ExtraTreesClassifier", "multiclass", {"n_estimators": 10}),
    ("sklearn.ensemble.HistGradientBoostingClassifier", "multiclass", {"max_iter": 15}),
    ("sklearn.ensemble.GradientBoostingClassifier", "binary", {"n_estimators": 10}),
    ("sklearn.ensemble.AdaBoostClassifier", "binary", {"n_estimators": 10}),
    ("sklearn.tree.DecisionTreeClassifier", "multiclass", {"max_depth": 4}),
    ("sklearn.neighbors.KNeighborsClassifier", "binary", {"metric": "manhattan"}),
    ("sklearn.naive_bayes.GaussianNB", "binary", {}),
    ("sklearn.svm.SVC", "multiclass", {}),
    ("sklearn.svm.LinearSVC", "binary", {}),
    ("sklearn.linear_model.SGDClassifier", "binary", {"loss": "log_loss"}),
    ("sklearn.calibration.CalibratedClassifierCV", "binary", {}),
    ("sklearn.neural_network.MLPClassifier", "binary", {"max_iter": 300}),
    ("sklearn.gaussian_process.GaussianProcessClassifier", "multiclass", {}),
    ("sklearn.dummy.DummyClassifier", "binary", {}),
    ("sklearn.linear_model.Ridge", "regression", {}),
    ("sklearn.linear_model.LinearRegression", "regression", {}),
    ("sklearn.linear_model.ElasticNet", "regression", {}),
    ("sklearn.linear_model._ridge.RidgeCV", "regression", {}),  # the defining path form is accepted too
    ("sklearn.ensemble.RandomForestRegressor", "regression", {"n_estimators": 10}),
    ("sklearn.ensemble.HistGradientBoostingRegressor", "regression", {"max_iter": 15}),
    ("sklearn.ensemble.GradientBoostingRegressor", "regression", {"n_estimators": 10, "loss": "huber"}),
    ("sklearn.neighbors.KNeighborsRegressor", "regression", {}),
    ("sklearn.svm.SVR", "regression", {}),
    ("sklearn.neural_network.MLPRegressor", "regression", {"max_iter": 300}),
    ("sklearn.gaussian_process.GaussianProcessRegressor", "regression", {}),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("model_type", "task", "params"), ROUND_TRIP,
                         ids=[r[0].rpartition(".")[2] for r in ROUND_TRIP])
def test_estimators_trainpipe_trains_save_and_load(model_type: str, task: str, params: dict[str, Any],
                                                   tmp_path: Path) -> None:
    model, test = _train(model_type, task, params)
    raw = test.drop(columns=["label"])
    model.save(tmp_path / "model")
    loaded = TrainedModel.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(raw), model.predict(raw))


def test_the_estimator_table_matches_all_estimators() -> None:
    """The fixed table stands in for ``all_estimators`` (1.6 s and a torch import per call): keep them equal."""
    from sklearn.utils import all_estimators

    from trainpipe.models import _allowlist

    def public(cls: type) -> str:
        return f"sklearn.{cls.__module__.split('.')[1]}.{cls.__name__}"

    for kind, table in (("classifier", _allowlist.SKLEARN_CLASSIFIERS), ("regressor", _allowlist.SKLEARN_REGRESSORS)):
        found = {public(cls) for _, cls in all_estimators(type_filter=kind)}
        assert set(table) <= found, f"not {kind}s in this scikit-learn: {set(table) - found}"
        assert found - set(table) <= set(_allowlist.NOT_TRAINABLE), \
            f"new scikit-learn {kind}s missing from the table: {found - set(table) - set(_allowlist.NOT_TRAINABLE)}"


def test_no_loader_unpickles() -> None:
    """Model files load through skops (checked types) or the libraries' own formats: no pickle anywhere."""
    offenders: list[str] = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        # an import or a call of the pickling libraries (their names alone may appear: a deny-list names them)
        for pattern in (r"pickle\.loads?\(", r"\b(?:import|from)\s+(?:joblib|cloudpickle|dill)\b",
                        r"\b(?:joblib|cloudpickle|dill)\.\w+\(", r"__import__\(", r"allow_pickle\s*=\s*True",
                        r"weights_only\s*=\s*False", r"\bmarshal\.loads?\("):
            offenders += [f"{path.relative_to(SRC)}: {m.group(0)}" for m in re.finditer(pattern, text)]
        for call in re.finditer(r"torch\.load\(", text):
            depth, end = 1, call.end()
            while depth and end < len(text):  # the call's arguments, nested parentheses included
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            if "weights_only=True" not in text[call.end():end]:
                offenders.append(f"{path.relative_to(SRC)}: {text[call.start():end]}")
    assert not offenders


# -- finding 5: model.type ----------------------------------------------------------------------------------


def _model_cfg(model_type: str) -> Any:
    return config_from_dict({"name": "t", "data": {"source": "a.csv", "target": "y"},
                             "model": {"type": model_type}}).config.model


@pytest.mark.parametrize(("model_type", "pattern"), [
    ("this.X", r"'this\.X' cannot be trained: only scikit-learn .*nothing else is imported"),
    ("os.system", r"'os\.system' cannot be trained"),
    ("evilmod.Model", r"'evilmod\.Model' cannot be trained"),
    ("sklearn.cluster.KMeans", r"'sklearn\.cluster\.KMeans' cannot be trained: it is not a scikit-learn classifier"),
    ("sklearn.preprocessing.FunctionTransformer", r"FunctionTransformer' cannot be trained: it is not a scikit-learn "
                                                  r"classifier"),
    ("sklearn.pipeline.Pipeline", r"'sklearn\.pipeline\.Pipeline' cannot be trained: it is not"),
    ("sklearn.compose.TransformedTargetRegressor", r"holds functions"),
    ("sklearn.ensemble.StackingClassifier", r"needs other estimator objects"),
    ("sklearn.linear_model.MultiTaskLasso", r"needs a 2-D target"),
    ("sklearn.linear_models.LogisticRegression", r"Did you mean 'sklearn\.linear_model\.LogisticRegression'\?"),
    ("sklearn.linear_model._ridge.LogisticRegression", r"is not where this scikit-learn defines LogisticRegression"),
])
def test_model_type_outside_the_table_is_a_config_error(model_type: str, pattern: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = set(sys.modules)
    with pytest.raises(ConfigError, match=rf"^model\.type: .*{pattern}"):
        check_model_config(_model_cfg(model_type), "binary")
    assert "this" not in set(sys.modules) - before and "Beautiful is better" not in capsys.readouterr().out


def test_classifier_for_regression_and_regressor_for_classification() -> None:
    with pytest.raises(ConfigError, match="is a classifier but the task is regression"):
        check_model_config(_model_cfg("sklearn.ensemble.RandomForestClassifier"), "regression")
    with pytest.raises(ConfigError, match="is a regressor but the task is binary"):
        check_model_config(_model_cfg("sklearn.linear_model.Ridge"), "binary")
    check_model_config(_model_cfg(LOGREG), "binary")


def _validate_in_subprocess(tmp_path: Path, model_type: str) -> subprocess.CompletedProcess[str]:
    make_frame(150).to_csv(tmp_path / "d.csv", index=False)
    write_pipeline(tmp_path, textwrap.dedent(f"""\
        name: sec
        task: binary
        data: {{source: d.csv, target: label}}
        model: {{type: {model_type}}}
        tracking: {{uri: sqlite:///{tmp_path / 'mlflow.db'}}}
        """))
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", "validate", "pipeline.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)


def test_a_module_beside_the_config_is_never_imported(tmp_path: Path) -> None:
    """Under ``python -m trainpipe.cli`` the cwd is on sys.path: ``evilmod.Model`` ran evilmod.py."""
    marker = tmp_path / "marker"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\nclass Model: pass\n")
    proc = _validate_in_subprocess(tmp_path, "evilmod.Model")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model.type" in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    assert not marker.exists()


def test_a_scikit_learn_classifier_still_validates(tmp_path: Path) -> None:
    proc = _validate_in_subprocess(tmp_path, LOGREG)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("package", ["os", "evil", "trainpipe_inference_../x", "trainpipe.x", "subprocess"])
def test_the_pyfunc_loader_imports_only_trainpipes_bundled_package(package: str) -> None:
    """The registered model's MLmodel names the bundled code package; an edited name must not pick any other
    module to import."""
    from types import SimpleNamespace

    from trainpipe.registry._pyfunc_model import CODE_CONFIG_KEY, TrainpipeModel

    context = SimpleNamespace(model_config={CODE_CONFIG_KEY: package}, artifacts={"model_dir": "/nonexistent"})
    with pytest.raises(ValueError, match=r"expected trainpipe's bundled inference package"):
        TrainpipeModel().load_context(context)
