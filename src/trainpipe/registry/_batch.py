"""``trainpipe predict``: score a CSV/Parquet file with a registered (or logged) pyfunc model."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class BatchResult:
    rows: int
    output: Path
    model_uri: str
    columns: list[str]
    invalid: str = ""  # the input-check report when rows failed and were skipped or kept, else ""
    skipped: int = 0


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
            from trainpipe.registry._registry import reader_for
            from trainpipe.registry._views import resolve_version

            client = reader_for(tracking_uri)  # reading only: no lock, works on a read-only store
            mv = resolve_version(client, model_uri[len("models:/"):])
            artifact_uri = client.get_model_version_download_uri(mv.name, str(mv.version))
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(dst),
                                                        tracking_uri=tracking_uri, registry_uri=tracking_uri))
    except ConfigError as exc:
        raise ConfigError(f"MODEL_URI {model_uri!r}: {exc}") from exc
    except MlflowException as exc:
        raise ConfigError(f"MODEL_URI {model_uri!r}: {str(exc).splitlines()[0][:300]} "
                          "(see: trainpipe models list NAME).") from exc


def _write(df: pd.DataFrame, out: Path) -> None:
    """Write ``df`` to a temporary name beside ``out``, then rename it over ``out``: a failed or interrupted
    write leaves ``out`` as it was (absent, or the previous file), never half-written."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"-o {out}: expected a .csv or .parquet file name.")
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:6]}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except OSError as exc:
        why = f"{exc.strerror or type(exc).__name__}" + (f": {exc.filename}" if exc.filename else "")
        raise ConfigError(f"-o {out}: cannot write the predictions there ({why}). "
                          "Pick a writable path; nothing was written.") from exc
    finally:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # nothing was created
            tmp.unlink()


def _check_output_path(out: Path, data_file: Path) -> None:
    """Refuse an output path that is the input file (it would be replaced by the predictions) or a folder."""
    same = out.resolve() == data_file.resolve()
    if not same and out.exists():
        try:
            same = os.path.samefile(out, data_file)  # hard links, case-insensitive file systems
        except OSError:
            same = False
    if same:
        raise ConfigError(
            f"-o {out} is the input file (DATA_FILE {data_file}); writing there would replace your data with "
            "the predictions. Write them to another file, e.g. -o "
            f"{out.with_name(f'{out.stem}.predictions{out.suffix}')}."
        )
    if out.is_dir():
        raise ConfigError(f"-o {out} is a folder; expected a .csv or .parquet file name.")


def _check_name_clashes(passthrough: list[str], outputs: list[str], data_file: Path) -> None:
    """Refuse input columns that would be copied to the output under the name of an output column."""
    names = set(outputs)
    clash = [c for c in passthrough if c in names]
    if clash:
        raise DataError(
            f"DATA_FILE {data_file}: has columns {clash}, which are also the names of the model's output "
            f"columns {outputs}; the output would hold two columns of each name. Rename or drop those input "
            "columns (a file scored before: drop its prediction and proba_* columns) and run again. "
            "Nothing was written."
        )


def _trainpipe_model(folder: Path, model_uri: str) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """The trainpipe model inside a pyfunc folder and its signature's input columns. Nothing from the
    folder is executed or unpickled: MLmodel is YAML, the model directory loads through skops (restricted
    types) and the model library's own format. The third item: the stored input checks ({} for a model
    registered before they were stored)."""
    from mlflow.models import Model

    from trainpipe.models import TrainedModel
    from trainpipe.registry._input_checks import ARTIFACT, read_checks
    from trainpipe.registry._registry import pyfunc_artifact

    model_dir = pyfunc_artifact(folder, "model_dir")
    if model_dir is None or not (model_dir / "spec.json").exists():
        raise ConfigError(f"MODEL_URI {model_uri!r} is not a model registered by trainpipe (no model_dir "
                          "artifact); trainpipe predict only loads its own models. Use mlflow.pyfunc for others.")
    schema = Model.load(str(folder / "MLmodel")).get_input_schema()
    if schema is None:
        raise ConfigError(f"MODEL_URI {model_uri!r}: the model has no input signature; "
                          "trainpipe predict needs one to check the columns.")
    return TrainedModel.load(model_dir), schema.to_dict(), read_checks(pyfunc_artifact(folder, ARTIFACT))


def predict_file(model_uri: str, data_file: Path, out: Path, tracking_uri: str,
                 on_invalid: str = "fail", top_k: int | None = None) -> BatchResult:
    """Score ``data_file``. Rows failing the model's stored input checks (``validation.columns``: nullable,
    allowed) are, by ``on_invalid``: ``fail`` exit 3 with nothing written, ``skip`` left out, ``keep`` scored."""
    from trainpipe.data import read_source, resolve_source
    from trainpipe.registry._input_checks import ON_INVALID, apply_checks
    from trainpipe.registry._predict import check_input, predict_frame

    if on_invalid not in ON_INVALID:
        raise ConfigError(f"--on-invalid: expected one of {', '.join(ON_INVALID)}, got {on_invalid!r}.")

    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"-o {out}: expected a .csv or .parquet file name.")
    if data_file.suffix.lower() not in (".csv", ".tsv", ".parquet", ".pq"):
        raise DataError(f"DATA_FILE {data_file}: expected a .csv, .tsv or .parquet file.")
    if not data_file.is_file():
        raise DataError(f"DATA_FILE {data_file}: no such file (relative paths are read from the current folder, "
                        f"{Path.cwd()}).")
    _check_output_path(out, data_file)
    try:
        df = read_source(resolve_source(str(data_file.resolve()), Path.cwd()))
    except DataError as exc:
        raise DataError(str(exc).replace("data.source:", "DATA_FILE:", 1)) from exc
    with tempfile.TemporaryDirectory(prefix="trainpipe-predict-") as tmp:
        folder = _local_model(model_uri, tracking_uri, Path(tmp))
        model, columns, checks = _trainpipe_model(folder, model_uri)
        checked = check_input(df, columns, str(data_file))
        df, report = apply_checks(df, checks, on_invalid, f"DATA_FILE {data_file}")
        checked = checked.loc[df.index]
        names = [c["name"] for c in columns if c["name"] in checked.columns]  # optional ones may be absent
        if top_k is not None and "top_k" not in model.task.kind.serving_params(model):
            raise ConfigError(f"--top-k: a {model.task.task} model returns one prediction per row; --top-k "
                              "applies to ranking models only.")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"--top-k: expected a number >= 1, got {top_k}.")
        pred = predict_frame(model, checked[names], None if top_k is None else {"top_k": top_k})
    import pandas as pd

    kept = [c for c in df.columns if c not in names]
    if len(pred) == len(df):
        _check_name_clashes(kept, list(map(str, pred.columns)), data_file)
        passthrough = df[kept].reset_index(drop=True)
        result = pd.concat([passthrough, pred.reset_index(drop=True)], axis=1)
    else:  # several rows per input row (a ranking model's top-k items): the predictions alone
        result = pred.reset_index(drop=True)
    _write(result, out)
    return BatchResult(len(result), out, model_uri, list(map(str, pred.columns)),
                       "" if report.passed else report.summary(f"DATA_FILE {data_file}"),
                       report.n_rows - len(result))
