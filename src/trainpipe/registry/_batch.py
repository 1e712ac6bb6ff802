"""``trainpipe predict``: score a CSV/Parquet file with a registered (or logged) pyfunc model."""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError, DataError


@dataclass
class BatchResult:
    rows: int
    output: Path
    model_uri: str
    columns: list[str]


def _local_model(model_uri: str, tracking_uri: str, dst: Path) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if "://" not in model_uri and ":/" not in model_uri:
        path = Path(model_uri)
        if not (path / "MLmodel").exists():
            raise ConfigError(f"MODEL_URI {model_uri!r}: not a models:/NAME@ALIAS or models:/NAME/VERSION URI, "
                              "and not a folder holding an MLmodel file.")
        return path
    try:
        artifact_uri = model_uri
        if model_uri.startswith("models:/"):  # resolved here: MLflow would read a global registry URI
            from trainpipe.registry._registry import client_for
            from trainpipe.registry._views import resolve_version

            client = client_for(tracking_uri)
            mv = resolve_version(client, model_uri[len("models:/"):])
            artifact_uri = client.get_model_version_download_uri(mv.name, str(mv.version))
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(dst),
                                                        tracking_uri=tracking_uri, registry_uri=tracking_uri))
    except ConfigError as exc:
        raise ConfigError(f"MODEL_URI {model_uri!r}: {exc}") from exc
    except MlflowException as exc:
        raise ConfigError(f"MODEL_URI {model_uri!r}: {str(exc).splitlines()[0][:300]} "
                          "(see: trainpipe models list NAME).") from exc


def _write(df: object, out: Path) -> None:
    import pandas as pd

    assert isinstance(df, pd.DataFrame)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"-o {out}: expected a .csv or .parquet file name.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:6]}")
    try:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _trainpipe_model(folder: Path, model_uri: str) -> tuple[Any, list[dict[str, Any]]]:
    """The trainpipe model inside a pyfunc folder and its signature's input columns. Nothing from the
    folder is executed or unpickled: MLmodel is YAML, the model directory loads through skops (restricted
    types) and the model library's own format."""
    from mlflow.models import Model

    from trainpipe.models import TrainedModel
    from trainpipe.registry._registry import pyfunc_artifact

    model_dir = pyfunc_artifact(folder, "model_dir")
    if model_dir is None or not (model_dir / "spec.json").exists():
        raise ConfigError(f"MODEL_URI {model_uri!r} is not a model registered by trainpipe (no model_dir "
                          "artifact); trainpipe predict only loads its own models. Use mlflow.pyfunc for others.")
    schema = Model.load(str(folder / "MLmodel")).get_input_schema()
    if schema is None:
        raise ConfigError(f"MODEL_URI {model_uri!r}: the model has no input signature; "
                          "trainpipe predict needs one to check the columns.")
    return TrainedModel.load(model_dir), schema.to_dict()


def predict_file(model_uri: str, data_file: Path, out: Path, tracking_uri: str) -> BatchResult:
    from trainpipe.data import read_source, resolve_source
    from trainpipe.registry._predict import check_input, predict_frame

    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"-o {out}: expected a .csv or .parquet file name.")
    if data_file.suffix.lower() not in (".csv", ".tsv", ".parquet", ".pq"):
        raise DataError(f"DATA_FILE {data_file}: expected a .csv, .tsv or .parquet file.")
    if not data_file.is_file():
        raise DataError(f"DATA_FILE {data_file}: no such file (relative paths are read from the current folder, "
                        f"{Path.cwd()}).")
    try:
        df = read_source(resolve_source(str(data_file.resolve()), Path.cwd()))
    except DataError as exc:
        raise DataError(str(exc).replace("data.source:", "DATA_FILE:", 1)) from exc
    with tempfile.TemporaryDirectory(prefix="trainpipe-predict-") as tmp:
        folder = _local_model(model_uri, tracking_uri, Path(tmp))
        model, columns = _trainpipe_model(folder, model_uri)
        checked = check_input(df, columns, str(data_file))
        names = [c["name"] for c in columns]
        pred = predict_frame(model, checked[names])
    import pandas as pd

    passthrough = df[[c for c in df.columns if c not in names]].reset_index(drop=True)
    result = pd.concat([passthrough, pred.reset_index(drop=True)], axis=1)
    _write(result, out)
    return BatchResult(len(result), out, model_uri, list(map(str, pred.columns)))
