"""Per-user splits of interactions that never leak the future.

- ``temporal_per_user``: each user's interactions in time order; the latest ``test_size`` share (at least one)
  goes to test, the ``val_size`` share before it to validation, the rest to training. No test interaction of a
  user is earlier than any of that user's training interactions.
- ``leave_last_out``: each user's last interaction is the test one, the one before it the validation one.
- ``per_user_random``: the same shares drawn at random per user (seeded); the only choice without timestamps,
  and the run notes that time order was not available.

Users with fewer than ``min_interactions`` positives are never held out: all their rows train. Every held-out
user keeps at least one training interaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trainpipe.config import SplitConfig

SPLIT_TYPES = ("temporal_per_user", "leave_last_out", "per_user_random")


def split_type(cfg: SplitConfig, has_time: bool) -> tuple[str, list[str]]:
    """The split to use (``data.split.type``, or its default) and a note when time order is missing."""
    if cfg.type is not None:
        notes = ["ranking split: per_user_random draws held-out interactions at random, so test interactions may "
                 "be older than training ones (time order not used)"] if cfg.type == "per_user_random" else []
        return cfg.type, notes
    if has_time:
        return "temporal_per_user", []
    return "per_user_random", ["ranking split: no data.timestamp, so time order was not available: each user's "
                               "held-out interactions are drawn at random (per_user_random)"]


def split_interactions(frame: pd.DataFrame, user: str, cfg: SplitConfig, *, time_column: str | None,
                       min_interactions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, list[str]]:
    """Row positions of train, validation and test, the split used and notes. ``frame`` is in time order when
    ``time_column`` is given (as :func:`~trainpipe.data._interactions.prepare_interactions` leaves it)."""
    import numpy as np
    import pandas as pd

    kind, notes = split_type(cfg, time_column is not None)
    n_rows = len(frame)
    if kind == "per_user_random":
        key = np.random.default_rng(cfg.seed).random(n_rows)
        order = np.lexsort((key,))
    else:
        times = frame[time_column].to_numpy(dtype=np.float64) if time_column else np.arange(n_rows, dtype=float)
        order = np.argsort(times, kind="stable")
    users = frame[user].to_numpy()[order]
    codes = pd.factorize(users)[0]
    pos = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    n = np.bincount(codes)[codes]
    if kind == "leave_last_out":
        n_test = np.ones_like(n)
        n_val = np.ones_like(n) if cfg.val_size > 0 else np.zeros_like(n)
    else:
        n_test = np.maximum(1, np.floor(n * cfg.test_size + 0.5)).astype(np.int64)
        n_val = np.floor(n * cfg.val_size + 0.5).astype(np.int64)
        n_val = np.where((cfg.val_size > 0) & (n_val == 0) & (n >= 3), 1, n_val)
    held = n >= max(min_interactions, 2)
    n_val = np.where(n - n_test - n_val >= 1, n_val, np.maximum(0, n - n_test - 1))
    test_mask = held & (pos >= n - n_test)
    val_mask = held & ~test_mask & (pos >= n - n_test - n_val)
    train_mask = ~(test_mask | val_mask)
    parts = tuple(np.sort(order[m]) for m in (train_mask, val_mask, test_mask))
    if not len(parts[2]):
        raise_no_test(min_interactions)
    return parts[0], parts[1], parts[2], kind, notes


def raise_no_test(min_interactions: int) -> None:
    from trainpipe._exceptions import DataError

    raise DataError(f"data.split: no user has {max(min_interactions, 2)} or more positive interactions, so nothing "
                    "can be held out for test. Lower data.min_user_interactions, or use more data.")


def check_no_future_leak(frame: pd.DataFrame, user: str, time_column: str, train: np.ndarray,
                         test: np.ndarray) -> int:
    """How many test interactions are earlier than the same user's latest training one (0 for a temporal
    split)."""
    tr = frame.iloc[train].groupby(user)[time_column].max()
    te = frame.iloc[test]
    latest = te[user].map(tr)
    return int((te[time_column] < latest).sum())
