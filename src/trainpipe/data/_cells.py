"""Cell-level findings the column dtypes hide.

A single bad cell (a NUL byte, a ``?``, ``n/a`` typed by hand) makes the CSV reader read a whole numeric
column as text; feature inference then takes it as a category or drops it as identifier-like, and the run
goes on without the column. Such a column, nearly all numbers, is a validation finding naming the column,
the bad values and their rows. Infinite numbers are counted: they are treated as missing and imputed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# A text column is "numeric-looking" when at least this share of its present cells are numbers.
NUMERIC_SHARE = 0.95
_SAMPLE = 2000  # cells tried first: a column far from numeric is passed over without parsing all of it
_SHOWN = 5


def numeric_looking_text(series: pd.Series) -> tuple[pd.Series, int] | None:
    """For a text column whose present cells are nearly all numbers, ``(bad cells, number of present cells)``;
    ``None`` for a numeric column, or a text column that is not mostly numbers, or one with no bad cell."""
    import pandas as pd

    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return None
    present = series.dropna()
    if present.empty:
        return None
    head = present.iloc[:_SAMPLE]
    if pd.to_numeric(head, errors="coerce").notna().mean() < NUMERIC_SHARE - 0.05:
        return None
    parsed = pd.to_numeric(present, errors="coerce")
    share = float(parsed.notna().mean())
    if share < NUMERIC_SHARE or share == 1.0:
        return None
    return present[parsed.isna()], len(present)


def describe_bad_cells(bad: pd.Series) -> tuple[list[str], str]:
    """The first distinct bad values, ``repr``'d (a NUL byte shows as ``'\\x00'``), and their rows numbered
    from 1 (the first data row under the header), as text."""
    values = [repr(v) for v in bad.drop_duplicates().head(_SHOWN).tolist()]
    positions = [str(int(i) + 1) if hasattr(i, "__index__") else str(i) for i in bad.index[:_SHOWN]]
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return values, ", ".join(positions) + more


def infinite_counts(df: pd.DataFrame, columns: list[str]) -> dict[str, int]:
    """Number of +-inf cells per numeric column of ``columns`` that has any."""
    import numpy as np
    import pandas as pd

    out: dict[str, int] = {}
    for col in columns:
        s = df[col]
        if not pd.api.types.is_float_dtype(s):
            continue
        n = int(np.isinf(s.to_numpy(dtype=np.float64, na_value=np.nan)).sum())
        if n:
            out[col] = n
    return out
