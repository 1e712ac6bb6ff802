"""Reading and writing step artifacts: JSON, Parquet frames, feature matrices (``.npy`` or sparse ``.npz``).

Every step module uses these; this module imports no step, runner or graph (it is a leaf of the package).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe.pipeline._handoff import load_array, save_array

if TYPE_CHECKING:
    import pandas as pd


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Parquet, with mixed-type object columns stored as strings (CSV columns holding '3' and 'x')."""
    import pyarrow as pa

    try:
        df.to_parquet(path, index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        fixed = df.copy()
        for col in fixed.columns:
            if fixed[col].dtype == object:
                fixed[col] = fixed[col].map(lambda v: v if v is None or v != v else str(v))
        fixed.to_parquet(path, index=False)


def save_matrix(X: Any, stem: Path) -> None:
    """``stem.npz`` for a sparse matrix, ``stem.parquet`` for an object matrix (raw text columns beside
    numbers: a ``.npy`` of objects would need pickle), else ``stem.npy``."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    if sp.issparse(X):
        sp.save_npz(stem.with_suffix(".npz"), sp.csr_matrix(X))
    elif isinstance(X, np.ndarray) and X.dtype.kind == "O":
        columns = {f"c{j}": (X[:, j].astype(str) if all(isinstance(v, str) for v in X[:, j])
                             else X[:, j].astype(np.float64)) for j in range(X.shape[1])}
        pd.DataFrame(columns).to_parquet(stem.with_suffix(".parquet"), index=False)
    else:
        save_array(np.asarray(X), stem.with_suffix(".npy"))


def load_matrix(stem: Path) -> Any:
    """The matrix :func:`save_matrix` wrote at ``stem``, or None when there is none (an empty split)."""
    import scipy.sparse as sp

    npz = stem.with_suffix(".npz")
    if npz.exists():
        return sp.load_npz(npz)
    table = stem.with_suffix(".parquet")
    if table.exists():
        import pandas as pd

        return pd.read_parquet(table).to_numpy(dtype=object)
    npy = stem.with_suffix(".npy")
    return load_array(npy) if npy.exists() else None


__all__ = ["load_matrix", "read_json", "save_matrix", "write_json", "write_parquet"]
