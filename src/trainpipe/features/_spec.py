"""Which raw columns are features, and of which kind: declared in ``features`` or inferred from dtypes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from trainpipe.config import PipelineConfig


@dataclass(frozen=True)
class FeatureSpec:
    """Feature columns by kind, and the columns left out with the reason."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    text: tuple[str, ...] = ()
    dropped: dict[str, str] = field(default_factory=dict)
    # data.na_values of the training run: the same cell texts are missing values at serving time
    na_values: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical, *self.text)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical),
                "text": list(self.text), "dropped": dict(self.dropped), "na_values": list(self.na_values)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(tuple(data["numeric"]), tuple(data["categorical"]), tuple(data.get("text", ())),
                   dict(data.get("dropped", {})), tuple(str(v) for v in data.get("na_values", ())))


def infer_feature_spec(df: pd.DataFrame, config: PipelineConfig) -> FeatureSpec:
    """Declared lists win; with none declared, every column but the target is classified by dtype."""
    import pandas as pd

    fc = config.features
    target = config.data.target
    excluded = {target, *config.data.drop_columns}
    if fc.numeric is not None or fc.categorical is not None:
        numeric = list(fc.numeric or [])
        categorical = list(fc.categorical or [])
        text = list(fc.text)
        missing = [c for c in (*numeric, *categorical, *text) if c not in df.columns]
        if missing:
            raise ConfigError(f"features: columns {missing} are not in the data. Columns: {list(df.columns)[:30]}")
        dup = set(numeric) & set(categorical) | (set(numeric) | set(categorical)) & set(text)
        if dup:
            raise ConfigError(f"features: columns {sorted(dup)} are listed under more than one kind.")
        bad = [c for c in numeric if not _is_numeric(df[c])]
        if bad:
            raise ConfigError(
                f"features.numeric: columns {bad} are not numeric (dtypes: "
                f"{[str(df[c].dtype) for c in bad]}). Move them to features.categorical."
            )
        return FeatureSpec(tuple(numeric), tuple(categorical), tuple(text),
                           {c: "not listed in features" for c in df.columns if c not in excluded
                            and c not in (*numeric, *categorical, *text)}, tuple(config.data.na_values))
    from trainpipe.data._text_checks import looks_like_text

    split = config.data.split
    numeric, categorical, dropped = [], [], {}
    text = [c for c in fc.text if c in df.columns]
    n = max(len(df), 1)
    for col in df.columns:
        if col in excluded or col in text:
            continue
        s = df[col]
        if col == split.group_column:
            dropped[col] = "split group column (would leak group identity)"
        elif s.isna().all():
            dropped[col] = "all values missing"
        elif pd.api.types.is_datetime64_any_dtype(s):
            dropped[col] = "datetime column: derive numeric features from it upstream"
        elif _is_row_index(str(col), s):
            dropped[col] = ("row numbers written with the file: they carry only the file's row order, which "
                            "leaks the target when the file is sorted by it")
        elif _is_numeric(s):
            numeric.append(col)
        else:
            nunique = s.nunique(dropna=True)
            if col == split.time_column:
                dropped[col] = "split time column"
            elif looks_like_text(s):  # long, mostly distinct strings: free text, never one-hot encoded
                text.append(col)
            elif nunique > 50 and nunique / n > 0.9:
                dropped[col] = f"identifier-like ({nunique} distinct values in {n} rows)"
            else:
                categorical.append(col)
    if not (numeric or categorical or text):
        raise ConfigError(
            f"features: no usable feature columns were found besides the target {target!r} "
            f"(dropped: {dropped}). Declare features.numeric / features.categorical."
        )
    return FeatureSpec(tuple(numeric), tuple(categorical), tuple(text), dropped, tuple(config.data.na_values))


_INDEX_NAMES = re.compile(r"unnamed: ?\d+|rownames|row_?names|row_?ids?|index|\.\.\.1", re.IGNORECASE)


def _is_row_index(name: str, s: pd.Series) -> bool:
    """A column R's write.csv ("rownames", or "" read as "Unnamed: 0"), pandas' to_csv ("Unnamed: 0") or a
    tibble ("...1") added: named like one and holding distinct whole row numbers that cover most of their
    range (this is the training split of the file, so a subset of 0..n-1 or 1..n in shuffled order)."""
    import numpy as np
    import pandas as pd

    if not _INDEX_NAMES.fullmatch(name.strip()) or not pd.api.types.is_numeric_dtype(s) or s.isna().any():
        return False
    if pd.api.types.is_bool_dtype(s) or len(s) < 2:
        return False
    values = s.to_numpy(dtype=np.float64)
    if not np.all(values == np.round(values)) or values.min() < 0 or not s.is_unique:
        return False
    return bool(values.max() - values.min() + 1 <= 2 * len(values))


def _is_numeric(s: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def prepare_frame(df: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Select the feature columns with the types the preprocessor expects.

    Numeric -> float64 (+-inf becomes NaN and is imputed), categorical -> object strings with NaN
    kept for missing, text -> strings with '' for missing; cells equal to the training run's
    ``data.na_values`` are missing. Raises ``DataError`` naming missing columns or non-numeric cells.
    """
    return columns_frame(prepare_columns(df, spec), spec, df.index)


def columns_frame(columns: dict[str, Any], spec: FeatureSpec, index: Any = None) -> pd.DataFrame:
    """The frame the fitted ColumnTransformer takes, from :func:`prepare_columns`' arrays.

    Missing categorical cells go in as NaN, which the imputer fills with its missing-value category whatever
    else the batch holds. As ``None`` they were filled only when the column also held a string (pandas then
    reads it as a string column, ``None`` as NaN): a one-row request with a missing category was encoded as an
    unseen category instead of as missing, as in training.
    """
    import numpy as np
    import pandas as pd

    out = dict(columns)
    for c in spec.categorical:
        values = out[c]
        missing = values == None  # noqa: E711 (elementwise on an object array)
        if missing.any():
            values = values.copy()
            values[missing] = np.nan
            out[c] = values
    return pd.DataFrame(out, index=index)


def prepare_columns(df: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    """:func:`prepare_frame`'s columns as NumPy arrays, by name (no frame built: the small-frame fast path)."""
    import numpy as np
    import pandas as pd

    from trainpipe._exceptions import DataError

    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise DataError(f"input is missing feature columns {missing}; the model expects {list(spec.columns)}.")
    if spec.na_values:
        from trainpipe.data._sources import apply_na_values

        df = apply_na_values(df[list(spec.columns)], spec.na_values)
    out: dict[str, Any] = {}
    for c in spec.numeric:
        s = df[c]
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "fiu":  # NumPy numbers (no pd.NA): the common case
            values = s.to_numpy().astype(np.float64)
            infinite = np.isinf(values)
            out[c] = np.where(infinite, np.nan, values) if infinite.any() else values
            continue
        if pd.api.types.is_bool_dtype(s):
            s = s.astype("float64")
        elif not pd.api.types.is_numeric_dtype(s):
            coerced = pd.to_numeric(s, errors="coerce")
            bad = s.notna() & coerced.isna()
            if bad.any():
                raise DataError(
                    f"column {c!r} must be numeric, but has non-numeric values such as "
                    f"{s[bad].iloc[0]!r} ({int(bad.sum())} rows)."
                )
            s = coerced
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(values)
        if infinite.any():
            values = np.where(infinite, np.nan, values)  # +-inf is treated as missing and imputed
        out[c] = values
    for c in spec.categorical:
        out[c] = _categorical_values(df[c])
    for c in spec.text:
        out[c] = df[c].fillna("").astype(str).to_numpy(dtype=object)
    return out


def _categorical_values(s: pd.Series) -> Any:
    """Strings for every present value, ``None`` where missing.

    Each value is formatted on its own (``1.0`` -> ``'1'``, ``0.5`` -> ``'0.5'``), so a value gets the same
    category string whatever else is in the batch: one row at serving time encodes like the training set.
    """
    import numpy as np
    import pandas as pd

    if isinstance(s.dtype, pd.StringDtype):  # every present value is a str already, None where missing
        return s.to_numpy(dtype=object, na_value=None)
    missing = s.isna().to_numpy()
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s):
        values = s.astype(str).to_numpy(dtype=object)
    elif pd.api.types.is_float_dtype(s):
        values = np.array([_cat_str(v) for v in s.to_numpy()], dtype=object)
    else:
        values = s.astype(object).to_numpy()
        kinds = {type(v) for v in values[~missing]}
        values = values.copy() if kinds <= {str} else np.array([_cat_str(v) for v in values], dtype=object)
    values[missing] = None
    return values


def _cat_str(value: Any) -> str:
    import numpy as np

    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)
