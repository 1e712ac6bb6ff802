"""Turn a trainpipe model directory into an MLflow pyfunc model folder (signature, input example, card)."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import threading
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._version import __version__

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models.signature import ModelSignature

    from trainpipe.config import ColumnCheck
    from trainpipe.models import ModelSpec, TrainedModel

_FAMILY_LIBS = {"xgboost": ("xgboost-cpu", "xgboost"), "lightgbm": ("lightgbm",), "torch": ("torch",),
                "sklearn": ()}


def input_types(spec: ModelSpec) -> dict[str, str]:
    """MLflow column types for the raw input columns, as in training: NumPy integer columns (which cannot
    hold missing values) ``long``, other numbers ``double``, booleans ``boolean``, the rest ``string``.

    pandas' nullable integers (``Int64``, ``UInt8``, ``int64[pyarrow]``...; a Parquet integer column with
    missing values reads as one) are ``double``: with a missing value they become floats, and MLflow
    refuses a float for a ``long`` column, in the input example and at serving time alike.
    """
    out: dict[str, str] = {}
    for col in spec.features.columns:
        raw = spec.input_dtypes.get(col, "object")
        dtype = raw.lower()
        if col in spec.features.text:
            out[col] = "string"
        elif dtype.startswith("bool"):
            out[col] = "boolean"
        elif raw.startswith(("Int", "UInt")) or (dtype.startswith(("int", "uint")) and "[pyarrow]" in dtype):
            # nullable: may hold <NA>
            out[col] = "double"
        elif dtype.startswith(("int", "uint")):
            out[col] = "long"
        elif dtype.startswith("float"):
            out[col] = "double"
        elif dtype.startswith("datetime"):
            out[col] = "datetime"
        else:
            out[col] = "string"
    return out


def build_signature(spec: ModelSpec, output: pd.DataFrame) -> ModelSignature:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema([ColSpec(kind, name) for name, kind in input_types(spec).items()])
    outputs = Schema([ColSpec("double" if str(output[c].dtype).startswith(("float", "int")) else "string", c)
                      for c in output.columns])
    return ModelSignature(inputs=inputs, outputs=outputs)


def example_frame(spec: ModelSpec, rows: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    from trainpipe.registry._predict import check_input

    types = input_types(spec)
    schema = [{"name": k, "type": v, "required": True} for k, v in types.items()]
    return check_input(rows.head(n)[list(types)].reset_index(drop=True), schema, "input example")


def pip_requirements(family: str) -> list[str]:
    from importlib import metadata

    reqs = [f"trainpipe=={__version__}"]
    for dist in ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "pyarrow", *_FAMILY_LIBS.get(family, ())):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    # a CPU build of torch reports "2.13.0+cpu"; pinning that would pull a CUDA build on re-create
    return [r.split("+")[0] for r in reqs]


_pins_lock = threading.Lock()
_pins_depth = 0
_pins_saved: Any = None


@contextlib.contextmanager
def _pins_taken_from_this_environment() -> Iterator[None]:
    """Skip MLflow's check that the model's pip requirements match the installed packages.

    ``pip_requirements`` pins exactly the versions installed here, so the check cannot find a mismatch,
    and it costs 0.4 s: it maps every installed distribution to its modules. The hook is swapped for a
    no-op while any save is in progress (counted, so overlapping saves in threads restore it once, last);
    without the hook (another MLflow version) the check simply runs.
    """
    global _pins_depth, _pins_saved
    import mlflow.utils.environment as env

    with _pins_lock:
        if _pins_depth == 0:
            _pins_saved = getattr(env, "warn_dependency_requirement_mismatches", None)
            if _pins_saved is not None:
                env.warn_dependency_requirement_mismatches = _no_check
        _pins_depth += 1
    try:
        yield
    finally:
        with _pins_lock:
            _pins_depth -= 1
            if _pins_depth == 0 and _pins_saved is not None:
                env.warn_dependency_requirement_mismatches = _pins_saved
                _pins_saved = None


def _no_check(*args: Any, **kwargs: Any) -> None:
    return None


def save_pyfunc(model: TrainedModel, model_dir: Path, target: Path, *, example_rows: pd.DataFrame,
                extra_artifacts: Mapping[str, Path], checks: Mapping[str, ColumnCheck] | None = None,
                label: str | None = None) -> dict[str, Any]:
    """Write the pyfunc folder to ``target`` atomically; return the signature's input schema (as dicts).

    ``checks`` (``validation.columns``; ``label`` is the target column, left out) travel with the model as the
    ``input_checks`` artifact, which ``trainpipe predict`` applies (see :mod:`trainpipe.registry._input_checks`).
    """
    import tempfile

    from trainpipe.registry._input_checks import ARTIFACT, checks_payload, write_checks

    with tempfile.TemporaryDirectory(prefix="trainpipe-checks-") as folder:
        stored = write_checks(checks_payload(checks or {}, label), Path(folder))
        return _save_pyfunc(model, model_dir, target, example_rows=example_rows,
                            extra_artifacts={**extra_artifacts, ARTIFACT: stored})


def _save_pyfunc(model: TrainedModel, model_dir: Path, target: Path, *, example_rows: pd.DataFrame,
                 extra_artifacts: Mapping[str, Path]) -> dict[str, Any]:
    import mlflow.pyfunc

    from trainpipe.registry._predict import predict_frame

    # the file's path only: importing it would run its mlflow.models.set_model() in this process
    spec = importlib.util.find_spec("trainpipe.registry._pyfunc_model")
    assert spec is not None and spec.origin is not None
    code_file = spec.origin

    example = example_frame(model.spec, example_rows)
    signature = build_signature(model.spec, predict_frame(model, example))
    tmp = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:6]}")
    try:
        with warnings.catch_warnings(), _pins_taken_from_this_environment():
            warnings.simplefilter("ignore", UserWarning)  # MLflow's advice about type hints on predict
            mlflow.pyfunc.save_model(
                path=str(tmp), python_model=code_file,
                artifacts={"model_dir": str(model_dir), **{k: str(v) for k, v in extra_artifacts.items()}},
                signature=signature, input_example=example, pip_requirements=pip_requirements(model.spec.family),
            )
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"inputs": signature.inputs.to_dict()}
