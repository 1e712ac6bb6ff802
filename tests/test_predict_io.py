"""Batch prediction input and output: nullable-integer columns in the signature, output paths, column names.

The unit tests need no store; the end-to-end tests (marked slow) register small models in a real embedded
MLflow store (SQLite) and call ``trainpipe predict`` as a user does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_frame, write_pipeline
from trainpipe import ConfigError, DataError

if TYPE_CHECKING:
    from trainpipe.models import ModelSpec

LOGREG = "sklearn.linear_model.LogisticRegression"
MODEL = "models:/plain@staging"


def _frame(n: int = 300) -> pd.DataFrame:
    """make_frame plus ``visits``: a pandas nullable integer (Int64) column, missing in every third row."""
    df = make_frame(n)
    visits = pd.array(np.arange(n) % 7, dtype="Int64")
    visits[::3] = pd.NA
    df["visits"] = visits
    return df


# -- unit: no store ---------------------------------------------------------------------------------------


def _spec(dtypes: dict[str, str]) -> ModelSpec:
    from trainpipe.data import infer_task
    from trainpipe.features import FeatureSpec
    from trainpipe.models import ModelSpec

    task = infer_task(pd.Series(["no", "yes"] * 5), "auto", None, "label")
    return ModelSpec(model_type=LOGREG, family="sklearn", task=task,
                     features=FeatureSpec(tuple(dtypes), ()), input_dtypes=dtypes)


def test_nullable_integer_columns_are_double_in_the_signature_and_the_example() -> None:
    from trainpipe.registry._package import example_frame, input_types

    dtypes = {"visits": "Int64", "small": "UInt8", "arrow": "int64[pyarrow]", "count": "int64", "x1": "float64"}
    spec = _spec(dtypes)
    assert input_types(spec) == {"visits": "double", "small": "double", "arrow": "double",
                                 "count": "long", "x1": "double"}
    rows = pd.DataFrame({"visits": pd.array([None, 2, 3], dtype="Int64"), "small": pd.array([1, None, 3], "UInt8"),
                         "arrow": pd.array([1, 2, None], dtype="Int64"), "count": [1, 2, 3], "x1": [0.5, 1.5, 2.5]})
    example = example_frame(spec, rows)
    assert {c: str(t) for c, t in example.dtypes.items()} == {
        "visits": "float64", "small": "float64", "arrow": "float64", "count": "int64", "x1": "float64"}

    # MLflow's own check of the input example against the signature (what failed registration)
    from mlflow.models.utils import _enforce_schema

    from trainpipe.registry._package import build_signature

    signature = build_signature(spec, pd.DataFrame({"prediction": ["no"] * 3}))
    _enforce_schema(example, signature.inputs)


def test_output_path_that_is_the_input_file_is_refused(tmp_path: Path) -> None:
    from trainpipe.registry._batch import _check_output_path

    data = tmp_path / "in.csv"
    data.write_text("a\n1\n")
    (tmp_path / "sub").mkdir()
    os.link(data, tmp_path / "hard.csv")
    (tmp_path / "link.csv").symlink_to(data)
    for out in (data, tmp_path / "sub" / ".." / "in.csv", tmp_path / "hard.csv", tmp_path / "link.csv"):
        with pytest.raises(ConfigError, match=r"is the input file .*replace your data with the predictions"):
            _check_output_path(out, data)
    with pytest.raises(ConfigError, match="is a folder"):
        _check_output_path(tmp_path / "sub", data)
    _check_output_path(tmp_path / "out.csv", data)
    assert data.read_text() == "a\n1\n"


def test_input_columns_named_like_output_columns_are_refused() -> None:
    from trainpipe.registry._batch import _check_name_clashes

    with pytest.raises(DataError, match=r"has columns \['prediction', 'proba_yes'\], which are also the names"):
        _check_name_clashes(["id", "prediction", "proba_yes"], ["prediction", "proba_no", "proba_yes"], Path("a"))
    _check_name_clashes(["id", "proba"], ["prediction", "proba_no", "proba_yes"], Path("a"))


def test_a_failed_write_leaves_the_previous_output_and_no_temporary_file(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe.registry._batch import _write

    out = tmp_path / "scored.parquet"
    out.write_bytes(b"previous output")

    def half_then_fail(self: pd.DataFrame, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"PAR1 half")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_fail)
    with pytest.raises(ConfigError, match="cannot write the predictions there .*No space left"):
        _write(pd.DataFrame({"prediction": [1.0]}), out)
    assert out.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.parquet"]

    def interrupted(self: pd.DataFrame, path: Path, **kwargs: object) -> None:
        Path(path).write_text("prediction\n1")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _write(pd.DataFrame({"prediction": [1.0]}), tmp_path / "new.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.parquet"]


def test_output_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    from trainpipe.registry._batch import _write

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="cannot write the predictions there"):
        _write(pd.DataFrame({"prediction": [1.0]}), tmp_path / "afile" / "out.csv")


# -- end to end: a real store -----------------------------------------------------------------------------


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "TRAINPIPE_PROFILE")}
    env.update({"COLUMNS": "400", "NO_COLOR": "1", "MLFLOW_DISABLE_TELEMETRY": "true"})
    return subprocess.run([sys.executable, "-m", "trainpipe.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


def _msg(proc: subprocess.CompletedProcess[str]) -> str:
    return " ".join(proc.stderr.split())


def _register(root: Path, name: str, frame: pd.DataFrame, source: str) -> subprocess.CompletedProcess[str]:
    if source.endswith(".parquet"):
        frame.to_parquet(root / source, index=False)
    else:
        frame.to_csv(root / source, index=False)
    write_pipeline(root, textwrap.dedent(f"""\
        name: {name}
        data: {{source: {source}, target: label}}
        model: {{type: {LOGREG}}}
        evaluation: {{plots: false, latency: false}}
    """), f"{name}.yaml")
    return _cli(root, "run", f"{name}.yaml")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose store holds ``plain@staging``, a binary classifier (outputs prediction, proba_no/yes)."""
    root = tmp_path_factory.mktemp("predict_io")
    run = _register(root, "plain", make_frame(300), "train.csv")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return root


@pytest.mark.slow
def test_nullable_integer_column_with_missing_values_registers_and_predicts(tmp_path: Path) -> None:
    from mlflow.models import Model

    run = _register(tmp_path, "visits", _frame(), "train.parquet")  # failed in register: long vs float64
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    pyfunc = next((tmp_path / ".trainpipe" / "runs").glob("*/steps/register/registered_model"))
    inputs = {c["name"]: c["type"] for c in Model.load(str(pyfunc / "MLmodel")).get_input_schema().to_dict()}
    assert inputs["visits"] == "double" and inputs["count"] == "long"

    new = _frame(40).drop(columns=["label"])
    new.to_parquet(tmp_path / "new.parquet", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    for name in ("new.parquet", "new.csv"):
        out = _cli(tmp_path, "predict", "models:/visits@staging", name, "-o", f"scored-{name}")
        assert out.returncode == 0, out.stderr
        assert len(pd.read_parquet(tmp_path / f"scored-{name}") if name.endswith("parquet")
                   else pd.read_csv(tmp_path / f"scored-{name}")) == 40
    # MLflow's pyfunc from raw columns read from CSV (the integer column with blanks reads as floats)
    code = textwrap.dedent(f"""
        import mlflow, pandas as pd
        uri = "sqlite:///{tmp_path}/.trainpipe/mlflow.db"
        mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
        out = mlflow.pyfunc.load_model("models:/visits@staging").predict(pd.read_csv("{tmp_path}/new.csv"))
        print(out.shape[0], sorted(out.columns))
    """)
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert "40 ['prediction', 'proba_no', 'proba_yes']" in fresh.stdout


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_refuses_input_columns_named_like_its_outputs(store: Path, suffix: str) -> None:
    scored = make_frame(20).drop(columns=["label"]).assign(prediction="old", proba_yes=-1.0)
    scored.to_csv(store / "scored_before.csv", index=False)
    out = _cli(store, "predict", MODEL, "scored_before.csv", "-o", f"again{suffix}")
    assert out.returncode == 2, out.stderr
    assert "has columns ['prediction', 'proba_yes'], which are also the names of the model's output" in _msg(out)
    assert "Traceback" not in out.stderr and not (store / f"again{suffix}").exists()
    assert not list(store.glob(".again*"))


@pytest.mark.slow
def test_predict_refuses_to_overwrite_its_input(store: Path) -> None:
    make_frame(20).drop(columns=["label"]).to_csv(store / "same.csv", index=False)
    before = (store / "same.csv").read_bytes()
    for target in ("same.csv", "./same.csv", str(store / "same.csv")):
        out = _cli(store, "predict", MODEL, "same.csv", "-o", target)
        assert out.returncode == 2, out.stderr
        assert "is the input file" in _msg(out) and "Traceback" not in out.stderr
    assert (store / "same.csv").read_bytes() == before
