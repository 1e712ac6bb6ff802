"""The fitted ColumnTransformer of :mod:`trainpipe.features._preprocess`, compiled to plain NumPy for small frames.

A one-row prediction through scikit-learn's ``ColumnTransformer`` spends most of its time in per-call
validation and pandas indexing (a DataFrame per transformer, ``check_array`` per step), not in arithmetic.
:func:`compile_transform` reads the fitted transformers once and returns a :class:`FastTransform` that does
the same arithmetic on the arrays :func:`trainpipe.features._spec.prepare_columns` returns:

- numeric block (``SimpleImputer`` then optionally ``StandardScaler``): missing cells take the imputer's
  statistics, then ``x -= mean_; x /= scale_``, the operations scikit-learn runs, in the same order;
- categorical block (``SimpleImputer(constant)`` then ``OneHotEncoder`` or ``OrdinalEncoder``): each column's
  output block is looked up in a table made at compile time by running the fitted pipeline itself on every
  known category, on a missing value and on an unseen value (the encoders map each cell on its own).

Anything else (text columns, other transformers, a pandas ``set_output``, sparse output) compiles to ``None``
and the caller keeps the scikit-learn path. A compiled plan must also reproduce the scikit-learn output on
probe rows (values, missing cells, unseen categories) bit for bit, dtype included, or it is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from trainpipe.features._spec import FeatureSpec

# a category no training set holds: its row in a lookup table is what the encoder gives unseen values
_UNSEEN = "\x00trainpipe-unseen\x00"
# above this many rows a categorical column is looked up with a vectorised hash index instead of a dict
_DICT_LOOKUP_ROWS = 16


@dataclass(frozen=True)
class _Numeric:
    columns: tuple[str, ...]
    out: slice
    fill: np.ndarray  # per column, the imputer's statistics
    mean: np.ndarray | None
    scale: np.ndarray | None


@dataclass(frozen=True)
class _Categorical:
    column: str
    out: slice
    table: np.ndarray  # (known categories + missing + unseen, block width)
    rows: dict[Any, int]  # category -> row of ``table``; ``None`` (missing) included
    unseen: int  # row for a value the encoder never saw
    missing: int  # row for a missing value
    index: Any  # pandas Index of the keys of ``rows`` but None, for large frames
    index_rows: np.ndarray  # row of ``table`` for each entry of ``index``


@dataclass(frozen=True)
class FastTransform:
    """``transform(columns, n)`` equals the fitted ColumnTransformer's ``transform`` of the same frame."""

    width: int
    dtype: np.dtype[Any]
    numeric: _Numeric | None
    categorical: tuple[_Categorical, ...]

    def transform(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        import numpy as np

        out = np.empty((n, self.width), dtype=self.dtype)
        num = self.numeric
        if num is not None:
            x = np.empty((n, len(num.columns)), dtype=np.float64)
            for j, name in enumerate(num.columns):
                x[:, j] = columns[name]
            missing = np.isnan(x)
            if missing.any():
                x = np.where(missing, num.fill, x)
            if num.mean is not None:
                x -= num.mean
            if num.scale is not None:
                x /= num.scale
            out[:, num.out] = x
        for cat in self.categorical:
            values = columns[cat.column]
            idx: Any
            if n <= _DICT_LOOKUP_ROWS:
                rows = cat.rows
                idx = [rows.get(v, cat.unseen) for v in values]
            else:
                found = cat.index.get_indexer(values)
                idx = np.where(found < 0, cat.unseen, cat.index_rows[found])
                idx[values == None] = cat.missing  # noqa: E711 (elementwise on an object array)
            out[:, cat.out] = cat.table[idx]
        return out


def compile_transform(preprocessor: Any, spec: FeatureSpec) -> FastTransform | None:
    """A :class:`FastTransform` equal to ``preprocessor.transform``, or None where none can be made."""
    try:
        plan = _compile(preprocessor, spec)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return None  # a shape this module does not know: the scikit-learn path is always right
    if plan is None or not _agrees(plan, preprocessor, spec):
        return None
    return plan


def _compile(ct: Any, spec: FeatureSpec) -> FastTransform | None:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if type(ct) is not ColumnTransformer or spec.text or getattr(ct, "sparse_output_", True):
        return None
    if getattr(ct, "_sklearn_output_config", {}).get("transform", "default") != "default":
        return None
    numeric: _Numeric | None = None
    categorical: list[_Categorical] = []
    dtypes: list[Any] = []
    for name, trans, cols in ct.transformers_:
        out = ct.output_indices_[name]
        if trans == "drop" or out.stop == out.start:
            continue
        if not isinstance(trans, Pipeline) or not isinstance(cols, list):
            return None
        steps = [step for _, step in trans.steps]
        imputer = steps[0]
        if type(imputer) is not SimpleImputer or imputer.add_indicator:
            return None
        if name == "numeric" and tuple(cols) == spec.numeric:
            fill = np.asarray(imputer.statistics_, dtype=np.float64)
            if np.isnan(fill).any() or not np.isnan(imputer.missing_values):
                return None
            scaler = steps[1] if len(steps) == 2 else None
            if len(steps) > 2 or (scaler is not None and type(scaler) is not StandardScaler):
                return None
            mean = scale = None
            if scaler is not None:
                mean = np.asarray(scaler.mean_, dtype=np.float64) if scaler.with_mean else None
                scale = np.asarray(scaler.scale_, dtype=np.float64) if scaler.with_std else None
            numeric = _Numeric(tuple(cols), out, fill, mean, scale)
            dtypes.append(np.float64)
        elif name == "categorical" and tuple(cols) == spec.categorical and len(steps) == 2:
            encoder = steps[1]
            if type(encoder) not in (OneHotEncoder, OrdinalEncoder) or getattr(encoder, "sparse_output", False):
                return None
            categorical.extend(_categorical_tables(trans, encoder, list(cols), out))
            dtypes.append(np.dtype(encoder.dtype))
        else:
            return None
    if numeric is None and not categorical:
        return None
    width = max(s.stop for s in [*(c.out for c in categorical), *([numeric.out] if numeric else [])])
    return FastTransform(width, np.dtype(np.result_type(*dtypes)), numeric, tuple(categorical))


def _categorical_tables(pipeline: Any, encoder: Any, cols: list[str], out: slice) -> list[_Categorical]:
    """Per column, the encoder's output block for each known category, a missing value and an unseen value,
    computed by the fitted pipeline itself (every other column held at its first category)."""
    import numpy as np
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder

    from trainpipe.features._spec import FeatureSpec, columns_frame

    cats = [list(c) for c in encoder.categories_]
    one_hot = isinstance(encoder, OneHotEncoder)
    widths = [int(w) for w in encoder._n_features_outs] if one_hot else [1] * len(cols)
    if sum(widths) != out.stop - out.start or len(cats) != len(cols):
        raise ValueError("encoder output does not match its columns")
    base = {c: _probe_value(cats[j][0]) for j, c in enumerate(cols)}

    def spec_of(names: list[str]) -> FeatureSpec:
        return FeatureSpec((), tuple(names))

    tables: list[_Categorical] = []
    start = out.start
    for j, col in enumerate(cols):
        known = [_probe_value(v) for v in cats[j]]
        if _UNSEEN in known:
            raise ValueError("the unseen marker is a category")
        probes = [*known, None, _UNSEEN]
        columns = {c: np.array([base[c]] * len(probes), dtype=object) for c in cols}
        columns[col] = np.array(probes, dtype=object)
        frame = columns_frame(columns, spec_of(cols))
        result = np.asarray(pipeline.transform(frame))
        block = slice(start - out.start, start - out.start + widths[j])
        table = np.ascontiguousarray(result[:, block])
        rows: dict[Any, int] = {}
        for i, v in enumerate(known):
            rows.setdefault(v, i)
        missing = len(known)
        rows[None] = missing
        keys = [k for k in rows if k is not None]
        tables.append(_Categorical(col, slice(start, start + widths[j]), table, rows, missing + 1, missing,
                                   pd.Index(np.array(keys, dtype=object), dtype=object),
                                   np.array([rows[k] for k in keys], dtype=np.intp)))
        start += widths[j]
    return tables


def _probe_value(value: Any) -> Any:
    """A category as prepare_frame hands it over: ``None`` for a missing one (the encoder may store NaN)."""
    return None if value is None or (isinstance(value, float) and value != value) else value


def _agrees(plan: FastTransform, ct: Any, spec: FeatureSpec) -> bool:
    """The plan reproduces ``ct.transform`` on probe rows exactly: values, missing cells and unseen categories."""
    import numpy as np

    from trainpipe.features._spec import columns_frame

    n = 5
    columns: dict[str, np.ndarray] = {}
    if plan.numeric is not None:
        for j, c in enumerate(plan.numeric.columns):
            columns[c] = np.array([np.nan, 0.0, 1.5 + j, -3.25 * (j + 1), 1e6], dtype=np.float64)
    for cat in plan.categorical:
        keys = [k for k in cat.rows if k is not None]
        columns[cat.column] = np.array([keys[0], None, _UNSEEN, keys[-1], keys[len(keys) // 2]], dtype=object)
    expected = ct.transform(columns_frame({c: columns[c] for c in spec.columns}, spec))
    if not isinstance(expected, np.ndarray) or expected.dtype != plan.dtype or expected.shape[1] != plan.width:
        return False
    for rows in (slice(0, n), slice(0, 1), slice(2, 3)):
        got = plan.transform({c: v[rows] for c, v in columns.items()}, len(range(n)[rows]))
        if not np.array_equal(got, expected[rows], equal_nan=True):
            return False
    many = {c: np.tile(v, 8) for c, v in columns.items()}  # the vectorised lookup (more than 16 rows)
    return bool(np.array_equal(plan.transform(many, n * 8), np.tile(expected, (8, 1)), equal_nan=True))
