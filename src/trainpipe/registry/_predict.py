"""Batch prediction from raw columns, with the input checked against the model's signature first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd

    from trainpipe.models import TrainedModel


def predict_frame(model: TrainedModel, raw: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """``prediction`` plus ``proba_<label>`` columns for classifiers, index kept: the model's task makes them
    (:meth:`trainpipe.tasks.Task.predict_frame`, the same columns evaluation and the gate score). ``params``:
    the signature's parameters (a ranking model's ``top_k``)."""
    return model.task.kind.predict_frame(model, raw, params)


def check_input(df: pd.DataFrame, schema: list[dict[str, Any]], source: str) -> pd.DataFrame:
    """Check ``df`` against the signature's input columns; return it with numeric columns as float.

    ``schema`` is MLflow's ``signature.inputs.to_dict()``: [{"name", "type", "required"}...].
    """
    import pandas as pd

    missing = [c["name"] for c in schema if c.get("required", True) and c["name"] not in df.columns]
    if missing:
        raise DataError(
            f"{source}: the model needs the columns {missing}, which are not in the file. "
            f"The file has {list(map(str, df.columns))[:30]}; the model's input columns are "
            f"{[c['name'] for c in schema]}."
        )
    out = df.copy()
    problems = []
    for col in schema:
        name, kind = col["name"], col["type"]
        if name not in out.columns:
            continue
        s = out[name]
        if kind in ("double", "float", "long", "integer"):
            if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
                converted = pd.to_numeric(s, errors="coerce")
                bad = s[converted.isna() & s.notna()]
                if len(bad):
                    problems.append(f"{name!r} must be numeric ({kind}); {len(bad)} row(s) are not, e.g. "
                                    f"{[str(v) for v in bad.head(3)]} (first at row {bad.index[0]})")
                    continue
                s = converted
            if kind in ("long", "integer") and s.notna().all() and (s == s.round()).all():
                out[name] = s.astype("int64")
            else:  # missing values, or fractions: the model takes floats (MLflow's own check would refuse)
                out[name] = s.astype("float64")
        elif kind == "string":
            out[name] = s.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
        elif kind == "boolean" and not pd.api.types.is_bool_dtype(s):
            problems.append(f"{name!r} must be boolean, got dtype {s.dtype}")
    if problems:
        raise DataError(f"{source}: columns do not match the model's signature: " + "; ".join(problems) + ".")
    return out
