"""Text columns in data validation, and a given test set (``data.test_source``) against the training data.

* :func:`looks_like_text`: the rule that makes a string column a text feature when ``features`` declares no
  lists: long values (a median of at least :data:`MIN_MEDIAN_CHARS` characters and :data:`MIN_MEDIAN_WORDS`
  words) that are mostly distinct (at least :data:`MIN_DISTINCT_SHARE` of the present values). Identifiers are
  distinct but short and single-token; categories are short and repeat.
* :func:`text_validation`: per text column, a check that it is not all empty, and notes on empty or
  whitespace-only texts, the length distribution (characters and words, p5/p50/p95) and duplicate texts that
  carry different labels (a label-noise or leakage warning: the same input cannot be learned both ways).
* :func:`test_source_checks`: the given test set has the training data's columns, of the same kind
  (numeric or not), and no label the training data lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from trainpipe.config import PipelineConfig

# (column, check, passed, observed, expected, failing rows, examples): a CheckResult's fields, which
# data/_validation.py (which imports this module) builds from them
Check = tuple[str, str, bool, str, str, int, list[str]]

MIN_MEDIAN_CHARS = 30
MIN_MEDIAN_WORDS = 5
MIN_DISTINCT_SHARE = 0.5


def looks_like_text(s: pd.Series) -> bool:
    """Whether a column holds free text: strings, long, mostly distinct (see the module docstring)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        return False
    present = s.dropna()
    if len(present) < 2 or not all(isinstance(v, str) for v in present.head(200)):
        return False
    try:  # the cheapest condition first (one hash count: categories repeat); the verdict does not depend on order
        if present.nunique() / len(present) < MIN_DISTINCT_SHARE:
            return False
    except TypeError:  # unhashable cells further down the column: the length conditions decide, as before
        pass
    sample = present.astype(str)
    if sample.str.len().median() < MIN_MEDIAN_CHARS:
        return False
    if sample.str.split().str.len().median() < MIN_MEDIAN_WORDS:
        return False
    return bool(present.nunique() / len(present) >= MIN_DISTINCT_SHARE)


def text_columns(df: pd.DataFrame, config: PipelineConfig) -> list[str]:
    """``features.text``, or (no feature lists declared) the columns :func:`looks_like_text` picks."""
    f = config.features
    declared = [c for c in f.text if c in df.columns]
    if f.numeric is not None or f.categorical is not None:
        return declared
    skip = {config.data.target, *config.data.drop_columns, *declared}
    return [*declared, *(c for c in df.columns if c not in skip and looks_like_text(df[c]))]


def text_validation(df: pd.DataFrame, config: PipelineConfig) -> tuple[list[Check], list[str]]:
    """Checks and notes for every text column of ``df`` (see the module docstring)."""
    import numpy as np

    checks: list[Check] = []
    notes: list[str] = []
    target = config.data.target
    inferred = set(text_columns(df, config)) - set(config.features.text)
    for col in text_columns(df, config):
        if col in inferred:
            notes.append(f"column {col!r} holds free text (long, mostly distinct strings): it is used as a text "
                         "feature (TF-IDF, or the encoder's input), never one-hot encoded; list it under "
                         "features.text to make that explicit")
        texts = df[col].fillna("").astype(str)
        blank = texts.str.strip() == ""
        n_blank = int(blank.sum())
        checks.append((col, "text_not_all_empty", n_blank < len(texts), f"{n_blank} of {len(texts)} texts empty",
                       "some non-empty texts", n_blank, []))
        if 0 < n_blank < len(texts):
            notes.append(f"text column {col!r}: {n_blank} of {len(texts)} texts are empty or whitespace only "
                         f"({n_blank / max(len(texts), 1):.1%}); they carry no words")
        if len(texts) and n_blank < len(texts):
            chars = texts[~blank].str.len().to_numpy()
            words = texts[~blank].str.split().str.len().to_numpy()
            c5, c50, c95 = (int(v) for v in np.percentile(chars, [5, 50, 95]))
            w5, w50, w95 = (int(v) for v in np.percentile(words, [5, 50, 95]))
            notes.append(f"text column {col!r}: length p5/p50/p95 = {c5}/{c50}/{c95} characters, {w5}/{w50}/{w95} "
                         f"words (longest {int(chars.max())} characters)")
        if target in df.columns:
            conflicts, example = conflicting_duplicates(texts[~blank], df.loc[~blank, target])
            if conflicts:
                notes.append(f"text column {col!r}: {conflicts} distinct texts occur more than once with different "
                             f"labels of {target!r} (e.g. {example!r}): the model cannot learn both; check the "
                             "labels")
    return checks, notes


def conflicting_duplicates(texts: pd.Series, labels: pd.Series) -> tuple[int, str]:
    """How many distinct texts carry more than one label, and one of them (shortened)."""
    key = texts.str.strip().str.lower()
    per_text = labels.astype(str).groupby(key.to_numpy()).nunique()
    bad = per_text[per_text > 1]
    return len(bad), (str(bad.index[0])[:60] if len(bad) else "")


def test_source_checks(train: pd.DataFrame, test: pd.DataFrame, config: PipelineConfig,
                       classification: bool) -> list[Check]:
    """The given test set (``data.test_source``) against the training data: the same columns (target and
    features), each of the same kind, and (``classification``) labels the training data has."""
    import pandas as pd

    where = "test_source"
    checks: list[Check] = []
    missing = [c for c in train.columns if c not in test.columns]
    checks.append((where, "same_columns", not missing,
                   f"missing {missing[:10]}" if missing else "all training columns present",
                   f"the columns of data.source ({config.data.source})", len(missing), missing[:5]))
    kinds = []
    for col in train.columns:
        if col not in test.columns or test[col].isna().all() or train[col].isna().all():
            continue
        a, b = pd.api.types.is_numeric_dtype(train[col]), pd.api.types.is_numeric_dtype(test[col])
        if a != b:
            kinds.append(f"{col}: {'numeric' if a else 'text'} in source, {'numeric' if b else 'text'} in test")
    checks.append((where, "same_column_kinds", not kinds, "; ".join(kinds) if kinds else "ok",
                   "each column numeric in both or in neither", len(kinds), kinds[:5]))
    target = config.data.target
    if target in test.columns and target in train.columns and classification:
        unseen = sorted(set(test[target].dropna().astype(str)) - set(train[target].dropna().astype(str)))
        checks.append((where, "known_labels", not unseen,
                       f"labels not in the training data: {unseen[:5]}" if unseen else "ok",
                       "labels of the training data", len(unseen), unseen[:5]))
    return checks


__all__ = ["conflicting_duplicates", "looks_like_text", "test_source_checks", "text_columns", "text_validation"]
