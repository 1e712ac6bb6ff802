"""Seeded train / validation / test split: random, stratified, by time, or by group."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainpipe._exceptions import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.config import SplitConfig


def split_indices(
    df: pd.DataFrame, target: str, split: SplitConfig, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row positions of (train, val, test). ``val`` may be empty when ``val_size`` is 0."""
    import numpy as np

    n = len(df)
    n_test, n_val = _split_sizes(n, split)
    if n - n_test - n_val < 2:
        raise DataError(f"{n} rows are too few to split with test_size={split.test_size}, val_size={split.val_size}.")
    positions = np.arange(n)
    if split.method == "time":
        col = _column(df, split.time_column, "data.split.time_column")
        order, keys = _time_order(col, split.time_column or "")
        positions = positions[order]
        test_start = _time_cut(keys, n - n_test, low=3 if n_val else 2, high=n - 1, name=split.time_column or "")
        train_end = test_start
        if n_val:
            train_end = _time_cut(keys, test_start - n_val, low=2, high=test_start - 1,
                                  name=split.time_column or "")
        return positions[:train_end], positions[train_end:test_start], positions[test_start:]
    if split.method == "group":
        return _group_split(df, split, n_test, n_val)
    from sklearn.model_selection import train_test_split

    labels = df[target].to_numpy() if (stratify and split.method == "stratified") else None
    if labels is not None:
        counts = df[target].astype(object).value_counts()
        if counts.min() < 3:
            rare = counts[counts < 3].index.tolist()[:5]
            raise DataError(
                f"stratified split: classes {rare} of target {target!r} have fewer than 3 rows, so they cannot "
                "appear in train, validation and test. Remove them, or set data.split.method: random."
            )
        smallest = min(n_test, n_val) if n_val else n_test
        if smallest < len(counts):
            raise DataError(
                f"stratified split: {len(counts)} classes do not fit in {smallest} rows of the smaller of the "
                f"test ({n_test}) and validation ({n_val}) splits. Raise data.split.test_size/val_size, "
                "or set data.split.method: random."
            )
    rest, test = train_test_split(positions, test_size=n_test, random_state=split.seed,
                                  stratify=labels)
    if n_val == 0:
        return np.sort(rest), np.array([], dtype=np.int64), np.sort(test)
    rest_labels = labels[rest] if labels is not None else None
    train, val = train_test_split(rest, test_size=n_val, random_state=split.seed + 1, stratify=rest_labels)
    return np.sort(train), np.sort(val), np.sort(test)


def _split_sizes(n: int, split: SplitConfig) -> tuple[int, int]:
    """(test rows, validation rows) of ``n`` rows; ``split_indices`` needs at least 2 left for training."""
    n_test = max(1, round(n * split.test_size))
    n_val = round(n * split.val_size)
    if split.val_size > 0:
        n_val = max(1, n_val)
    return n_test, n_val


def min_splittable_rows(split: SplitConfig) -> int:
    """The fewest rows ``split_indices`` can cut into train (2 rows or more), validation and test."""
    n = 3
    while n - sum(_split_sizes(n, split)) < 2:
        n += 1
    return n


def _column(df: pd.DataFrame, name: str | None, key: str) -> pd.Series:
    if not name or name not in df.columns:
        raise DataError(f"{key}: column {name!r} is not in the data. Columns: {', '.join(map(str, df.columns[:20]))}")
    return df[name]


def _time_cut(keys: np.ndarray, wanted: int, *, low: int, high: int, name: str) -> int:
    """A cut position in the sorted ``keys`` that falls between two distinct times, nearest to ``wanted``.

    Rows of the same time never straddle two splits (a year-valued column would otherwise put rows of the
    same year in train and test). The cut stays within ``[low, high]`` so no split is left empty.
    """
    import numpy as np

    value = keys[wanted]
    first = int(np.searchsorted(keys, value, side="left"))
    after = int(np.searchsorted(keys, value, side="right"))
    candidates = sorted({first, after}, key=lambda c: (abs(c - wanted), -c))
    for cut in candidates:
        if low <= cut <= high:
            return cut
    raise DataError(
        f"data.split.time_column {name!r}: too few distinct times to cut the data into train, validation and "
        f"test without rows of one time on both sides of a cut ({len(np.unique(keys))} distinct values). Use a "
        "finer time column, or data.split.method: random."
    )


def _time_order(col: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np
    import pandas as pd

    if col.isna().any():
        raise DataError(f"data.split.time_column {name!r} has {int(col.isna().sum())} missing values; "
                        "every row needs a time to be ordered.")
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
        keys = col
    else:
        keys = pd.to_datetime(col, errors="coerce")
        if keys.isna().any():
            bad = col[keys.isna()].iloc[0]
            raise DataError(f"data.split.time_column {name!r}: value {bad!r} is not a date/time or a number.")
    values = keys.to_numpy()
    order = np.argsort(values, kind="stable")
    return order, values[order]


def _group_split(
    df: pd.DataFrame, split: SplitConfig, n_test: int, n_val: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import numpy as np
    from sklearn.model_selection import GroupShuffleSplit

    column = _column(df, split.group_column, "data.split.group_column")
    if column.isna().any():
        raise DataError(f"data.split.group_column {split.group_column!r} has {int(column.isna().sum())} missing "
                        "values; every row needs a group to be kept with the rest of it. Fill them (e.g. with "
                        "'unknown') or drop those rows.")
    groups = column.astype(str).to_numpy(dtype=object)
    if len(set(groups)) < 3:
        raise DataError(f"data.split.group_column {split.group_column!r} has fewer than 3 groups; cannot split.")
    n = len(df)
    positions = np.arange(n)
    gss = GroupShuffleSplit(n_splits=1, test_size=n_test / n, random_state=split.seed)
    rest, test = next(gss.split(positions, groups=groups))
    if n_val == 0:
        return np.sort(rest), np.array([], dtype=np.int64), np.sort(test)
    gss_val = GroupShuffleSplit(n_splits=1, test_size=n_val / len(rest), random_state=split.seed + 1)
    tr, va = next(gss_val.split(rest, groups=groups[rest]))
    return np.sort(rest[tr]), np.sort(rest[va]), np.sort(test)
