"""User-item interactions for ``task: ranking``: checks, positives, side features.

:func:`prepare_interactions` turns the ingested frame into the positive interactions a ranking model learns
from, refusing what cannot be used (exit 2, naming the key and column) and noting what is unusual:

- errors: a named column that is not in the data; missing (NaN or empty) user or item ids; a label that is not
  numeric or missing; a timestamp that does not parse; a catalogue of one item (nothing to rank);
- notes: explicit feedback turned into positives (``label >= implicit_threshold``), duplicate (user, item)
  pairs (the latest kept), users with fewer than ``data.min_user_interactions`` positives, side features that
  are not constant per user/item (the first value kept).

Side-feature columns keep their raw values; :func:`item_table` / :func:`user_table` give one row per id.
Multi-valued strings (``"Action|Comedy"``) are split into tags by the model family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainpipe._exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd

    from trainpipe.config import PipelineConfig

TIME_COLUMN = "__trainpipe_time"  # parsed timestamps (float seconds), added to the prepared frame


@dataclass
class InteractionReport:
    """What the checks found: counts for the run's metrics, notes for the user."""

    rows: int = 0
    positives: int = 0
    users: int = 0
    items: int = 0
    duplicates: int = 0
    sparse_users: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "positives": self.positives, "users": self.users, "items": self.items,
                "duplicate_pairs": self.duplicates, "users_below_min_interactions": self.sparse_users,
                "notes": list(self.notes)}


def _column(df: pd.DataFrame, key: str, name: str) -> None:
    if name not in df.columns:
        import difflib

        close = difflib.get_close_matches(name, list(map(str, df.columns)), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"{key}: column {name!r} is not in the data.{hint} Columns: {list(map(str, df.columns))[:30]}")


def _check_ids(df: pd.DataFrame, key: str, name: str) -> None:
    s = df[name]
    missing = s.isna() | (s.astype(str).str.strip() == "")
    if bool(missing.any()):
        first = int(missing.to_numpy().nonzero()[0][0])
        raise DataError(f"{key}: column {name!r} has {int(missing.sum())} missing id(s) (NaN or empty; first at row "
                        f"{first}); every interaction needs a {key.split('.')[-1]} id. Drop or fill those rows "
                        "upstream.")


def parse_times(s: pd.Series, key: str = "data.timestamp") -> pd.Series:
    """Timestamps as float seconds: numbers as they are (epoch seconds or any increasing count), else dates
    parsed by pandas; a value that does not parse is a DataError naming the column."""
    import numpy as np
    import pandas as pd

    if s.isna().any():
        first = int(s.isna().to_numpy().nonzero()[0][0])
        raise DataError(f"{key}: column {s.name!r} has {int(s.isna().sum())} missing timestamp(s) (first at row "
                        f"{first}); fill them, or remove data.timestamp to split per user at random.")
    if pd.api.types.is_bool_dtype(s):
        raise DataError(f"{key}: column {s.name!r} holds booleans, not times.")
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(np.float64)
    if pd.api.types.is_datetime64_any_dtype(s):
        return pd.Series(s.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9, index=s.index)
    numbers = pd.to_numeric(s, errors="coerce")
    if numbers.notna().mean() >= 0.5:  # numbers read as text (a CSV column with a few bad cells)
        bad = numbers.isna()
        if not bool(bad.any()):
            return numbers.astype(np.float64)
        examples = [str(v) for v in s[bad].drop_duplicates().head(3)]
        raise DataError(f"{key}: column {s.name!r} has {int(bad.sum())} value(s) that do not parse as times, e.g. "
                        f"{examples}. Use epoch seconds (as the other rows) or ISO dates, or fix those rows.")
    parsed = pd.to_datetime(s.astype(str), errors="coerce", format="mixed", utc=True)
    bad = parsed.isna()
    if bool(bad.any()):
        examples = [str(v) for v in s[bad].drop_duplicates().head(3)]
        raise DataError(f"{key}: column {s.name!r} has {int(bad.sum())} value(s) that do not parse as times, e.g. "
                        f"{examples}. Use ISO dates (2024-05-01 12:00) or epoch seconds, or fix those rows.")
    return pd.Series(parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9,
                     index=s.index)


def feature_columns(cfg: PipelineConfig) -> list[str]:
    return [*cfg.features.user, *cfg.features.item]


def prepare_interactions(df: pd.DataFrame, cfg: PipelineConfig) -> tuple[pd.DataFrame, InteractionReport]:
    """The positive interactions (user, item, side features, parsed time) and the report of the checks."""
    import pandas as pd

    data = cfg.data
    user, item = str(data.user), str(data.item)
    report = InteractionReport(rows=len(df))
    for key, name in (("data.user", user), ("data.item", item), ("data.label", data.label),
                      ("data.timestamp", data.timestamp)):
        if name:
            _column(df, key, name)
    for key in ("user", "item"):
        for name in getattr(cfg.features, key):
            _column(df, f"features.{key}", name)
    if len(df) == 0:
        raise DataError(f"{cfg.data.source}: no rows; a ranking task needs user-item interactions.")
    _check_ids(df, "data.user", user)
    _check_ids(df, "data.item", item)
    keep = list(dict.fromkeys([user, item, *([data.label] if data.label else []),
                               *([data.timestamp] if data.timestamp else []), *feature_columns(cfg)]))
    out = df[keep].copy()
    if data.timestamp:
        out[TIME_COLUMN] = parse_times(out[data.timestamp]).to_numpy()
    if data.label:
        lab = out[data.label]
        if not pd.api.types.is_numeric_dtype(lab) or pd.api.types.is_bool_dtype(lab):
            raise DataError(f"data.label: column {data.label!r} is not numeric (dtype {lab.dtype}); it rates each "
                            "interaction (e.g. a 1-5 rating). Remove data.label to treat every row as a positive.")
        if bool(lab.isna().any()):
            raise DataError(f"data.label: column {data.label!r} has {int(lab.isna().sum())} missing value(s); fill "
                            "or drop those rows upstream.")
        if data.implicit_threshold is not None:
            positive = lab >= data.implicit_threshold
            report.notes.append(f"ranking: {int(positive.sum())} of {len(out)} interactions have {data.label} >= "
                                f"{data.implicit_threshold:g} and are the positives; the others are left out")
            out = out[positive]
        else:
            report.notes.append(f"ranking: data.label {data.label!r} without data.implicit_threshold: every "
                                "interaction is a positive (set implicit_threshold to keep only the liked ones)")
    order = [TIME_COLUMN] if data.timestamp else []
    if order:
        out = out.sort_values(order, kind="stable")
    dup = out.duplicated([user, item], keep="last")
    report.duplicates = int(dup.sum())
    if report.duplicates:
        report.notes.append(f"ranking: {report.duplicates} duplicate (user, item) pair(s); the "
                            f"{'latest' if order else 'last'} of each is kept")
        out = out[~dup]
    n_items = int(out[item].nunique())
    if n_items < 2:
        raise DataError(f"data.item: the catalogue of column {item!r} has {n_items} item(s) among the positive "
                        "interactions; ranking needs at least 2 items to choose between. Check data.item and "
                        "data.implicit_threshold.")
    counts = out.groupby(user, sort=False).size()
    sparse = counts[counts < data.min_user_interactions]
    report.sparse_users = len(sparse)
    if len(sparse):
        report.notes.append(f"ranking: {len(sparse)} of {len(counts)} users have fewer than "
                            f"{data.min_user_interactions} positive interactions (data.min_user_interactions); "
                            "they stay in training and are not held out for test")
    for key, id_col in (("user", user), ("item", item)):
        cols = getattr(cfg.features, key)
        if cols:
            varying = [c for c in cols if bool((out.groupby(id_col)[c].nunique(dropna=False) > 1).any())]
            if varying:
                report.notes.append(f"features.{key}: {varying} vary within one {key}; the first value per {key} "
                                    "is used")
    report.positives, report.users, report.items = len(out), int(counts.size), n_items
    return out.reset_index(drop=True), report


def entity_table(frame: pd.DataFrame, id_col: str, columns: list[str]) -> pd.DataFrame:
    """One row per id (first value of each side feature), sorted by id."""
    table = frame[[id_col, *columns]].drop_duplicates(id_col, keep="first")
    return table.sort_values(id_col, kind="stable").reset_index(drop=True)


def cold_shares(train: pd.DataFrame, test: pd.DataFrame, user: str, item: str) -> tuple[float, float]:
    """Shares of test users and of test items never seen in training."""
    if len(test) == 0:
        return 0.0, 0.0
    users, items = test[user].drop_duplicates(), test[item].drop_duplicates()
    return (float((~users.isin(set(train[user]))).mean()), float((~items.isin(set(train[item]))).mean()))


@dataclass
class RankingData:
    """What a ranking model family's ``fit`` takes (as ``X``; ``X_val`` is the validation one): interactions
    (one positive per row) and the user and item tables (every id of the data, with its side features).
    ``seen``: for validation data, the training interactions (excluded from the validation ranking)."""

    interactions: pd.DataFrame
    user: str
    item: str
    users: pd.DataFrame
    items: pd.DataFrame
    user_features: list[str] = field(default_factory=list)
    item_features: list[str] = field(default_factory=list)
    seen: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.interactions)

    @property
    def shape(self) -> tuple[int, int]:
        """(interactions, 2): what tuning's bookkeeping reads of a training matrix."""
        return len(self.interactions), 2


def ranking_data(frame: pd.DataFrame, everything: pd.DataFrame, cfg: PipelineConfig,
                 seen: pd.DataFrame | None = None) -> RankingData:
    """``frame``'s interactions with the user and item tables of ``everything`` (all splits together)."""
    user, item = str(cfg.data.user), str(cfg.data.item)
    return RankingData(interactions=frame[[user, item]].reset_index(drop=True), user=user, item=item,
                       users=entity_table(everything, user, list(cfg.features.user)),
                       items=entity_table(everything, item, list(cfg.features.item)),
                       user_features=list(cfg.features.user), item_features=list(cfg.features.item),
                       seen=None if seen is None else seen[[user, item]].reset_index(drop=True))
