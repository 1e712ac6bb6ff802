"""The one-file promise: a model family defined outside trainpipe (a k-nearest-neighbours classifier in a tiny
distribution written by this test) is found through the ``trainpipe.model_families`` entry point, passes
``check_family``, trains and tunes with the default space it declares through ``trainpipe run``, and registers a
pyfunc model that loads with plain ``mlflow.pyfunc``. No file of trainpipe changes for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import make_frame, write_pipeline

KNNFAM = '''
"""A k-nearest-neighbours family for trainpipe, in one module."""
from pathlib import Path

import numpy as np

from trainpipe import ConfigError
from trainpipe.models import FitReport, ModelFamily

_FILE = "knn.skops"
TRUSTED = ("sklearn.neighbors._classification.KNeighborsClassifier", "sklearn.neighbors._kd_tree.KDTree",
           "sklearn.neighbors._ball_tree.BallTree", "sklearn.metrics._dist_metrics.EuclideanDistance64")
PARAMS = ("n_neighbors", "weights", "p")


def check(task, params, model_type):
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ConfigError(f"model.params.{unknown[0]}: unknown parameter for {model_type}; known: {PARAMS}")
    k = params.get("n_neighbors", 5)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"model.params.n_neighbors: expected an integer >= 1, got {k!r}")


class KNNAdapter:
    family = "knn"

    def __init__(self, task, model_type, params, training):
        check(task.task, params, model_type)
        from sklearn.neighbors import KNeighborsClassifier

        self.task = task
        self.model = KNeighborsClassifier(**{"n_neighbors": 5, **params})

    def fit(self, X, y, X_val, y_val, on_round=None):
        self.model.fit(X, y)
        if on_round is not None:
            on_round(1, 1, {})
        return FitReport(params=dict(self.model.get_params()))

    def predict(self, X):
        return np.asarray(self.model.predict(X), dtype=np.int64)

    def predict_proba(self, X):
        return self.model.predict_proba(X)

    def feature_importances(self):
        return None

    def save(self, directory):
        import skops.io as sio

        sio.dump(self.model, Path(directory) / _FILE)

    @classmethod
    def load(cls, directory, task, model_type):
        import skops.io as sio

        path = Path(directory) / _FILE
        found = set(sio.get_untrusted_types(file=path))
        if not found <= set(TRUSTED):
            raise ValueError(f"{path} holds types this family never writes: {sorted(found - set(TRUSTED))}")
        self = cls.__new__(cls)
        self.task = task
        self.model = sio.load(path, trusted=sorted(found))
        return self


FAMILY = ModelFamily(
    name="knn", names=("knn",), adapter=lambda: KNNAdapter, libraries=("scikit-learn",),
    tasks=("binary", "multiclass"), check_config=check, training_settings=frozenset({"seed"}),
    default_space={"n_neighbors": {"type": "int", "low": 1, "high": 25}}, trusted_types=TRUSTED,
)
'''


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder holding the ``knnfam`` package and its ``.dist-info`` with the entry point, as pip leaves them."""
    root = tmp_path / "site"
    (root / "knnfam").mkdir(parents=True)
    (root / "knnfam" / "__init__.py").write_text(KNNFAM)
    info = root / "knnfam-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: knnfam\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[trainpipe.model_families]\nknn = knnfam:FAMILY\n")
    return root


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTHONPATH")}
    return {**env, "PYTHONPATH": str(site), "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "250"}


def _python(site: Path, code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=_env(site),
                          capture_output=True, text=True, timeout=600)


def test_the_entry_point_family_is_found_and_passes_check_family(site: Path) -> None:
    out = _python(site, """
        import json
        from trainpipe.models import family_for
        from trainpipe.models._allowlist import trusted_types
        from trainpipe.testing import check_family
        import knnfam

        family = family_for("knn")
        assert family is knnfam.FAMILY, family
        assert set(knnfam.TRUSTED) <= trusted_types()
        print(json.dumps(check_family(family)))
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    done = json.loads(out.stdout.strip().splitlines()[-1])
    for task in ("binary", "multiclass"):
        assert f"{task}: registered pyfunc round trip" in done and f"{task}: same seed, same predictions" in done
    assert not any(d.startswith("regression") for d in done)  # it declares the tasks it learns


def test_without_the_entry_point_the_type_is_unknown_with_the_installed_names(tmp_path: Path) -> None:
    from trainpipe import ConfigError
    from trainpipe.models import family_for

    with pytest.raises(ConfigError, match=r"unknown model type 'knn'\. .*Expected xgboost, lightgbm, torch_mlp"):
        family_for("knn")


def test_a_family_registered_in_process_widens_the_skops_allow_list_only_while_registered() -> None:
    import dataclasses

    from trainpipe.models import family_for, register_family
    from trainpipe.models._allowlist import trusted_types
    from trainpipe.models._families import unregister_family

    extra = "knnfam_test.SomeDataType"
    family = dataclasses.replace(family_for("xgboost"), name="extra", names=("extra_type",), trusted_types=(extra,))
    assert extra not in trusted_types()
    register_family(family)
    try:
        assert family_for("extra_type") is family and extra in trusted_types()
    finally:
        unregister_family(family)
    assert extra not in trusted_types()


@pytest.mark.slow
def test_the_plugin_family_trains_tunes_and_registers_through_trainpipe_run(site: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    make_frame(300, seed=4).to_csv(work / "d.csv", index=False)
    write_pipeline(work, textwrap.dedent("""\
        name: knn-churn
        task: binary
        data: {source: d.csv, target: label}
        model: {type: knn}
        evaluation: {latency: false}
        tuning: {n_trials: 4, sampler: random}
        registry: {model_name: knnmodel, promote: staging}
        """))
    run = subprocess.run([sys.executable, "-m", "trainpipe.cli", "run", "pipeline.yaml"], cwd=work,
                         env=_env(site), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    best = json.loads(next((work / ".trainpipe").rglob("best_params.json")).read_text())
    tuned = {**best.get("model_params", {}), **best.get("params", {})}
    assert set(tuned) <= {"n_neighbors"}, best  # the family's declared default space
    assert "n_neighbors" in (work / ".trainpipe").rglob("trials.csv").__next__().read_text()
    make_frame(20, seed=9).drop(columns=["label"]).to_csv(work / "raw.csv", index=False)
    load = _python(site, f"""
        import mlflow, pandas as pd
        uri = "sqlite:///{work}/.trainpipe/mlflow.db"
        mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
        model = mlflow.pyfunc.load_model("models:/knnmodel@staging")
        out = model.predict(pd.read_csv("{work}/raw.csv"))
        print(out.shape[0], sorted(out.columns))
    """)
    assert load.returncode == 0, load.stderr[-3000:]
    assert load.stdout.strip().splitlines()[-1] == "20 ['prediction', 'proba_no', 'proba_yes']"
    reqs = next((work / ".trainpipe").rglob("requirements.txt")).read_text()
    assert "scikit-learn==" in reqs and "trainpipe" not in reqs


@pytest.mark.parametrize("name", ["builtins.exec", "operator.methodcaller", "functools.partial", "os.system",
                                  "numpy.lib.npyio.load", "builtins", "mypkg.*"])
def test_a_family_cannot_trust_a_type_that_runs_code(name: str) -> None:
    """The allow-list is shared by every model file: one plugin trusting ``builtins.exec`` would let any poisoned
    file run code, so such a family is refused when it is declared."""
    import dataclasses

    from trainpipe.models import family_for

    with pytest.raises(ValueError, match=r"model family 'extra': trusted_types .* (runs? code|can run code|exact)"):
        dataclasses.replace(family_for("xgboost"), name="extra", names=("extra_type",), trusted_types=(name,))
