"""Cheaper default run, same results (issue 19.10): each faster path is compared with the plain computation
it replaces, value for value."""

from __future__ import annotations

import numpy as np


def _weights(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """Bootstrap row counts as bootstrap_intervals draws them."""
    return np.bincount((np.arange(b)[:, None] * n + rng.integers(0, n, (b, n))).ravel(),
                       minlength=b * n).reshape(b, n).astype(float)


def test_bootstrap_counts_and_rank_sums_equal_the_plain_formulas_bit_for_bit() -> None:
    """One matrix product for the 0/1 indicators (accuracy, f1, precision, recall), AUC in one exact pass and
    average precision without the concatenated/differenced copies: every value equals the plain formula
    (analyse_scores on a flights test split: 0.46 -> 0.33 s CPU)."""
    from trainpipe.evaluation._intervals import (
        Scores,
        _auc_of_sums,
        _average_precision_from_counts,
        _by_score,
        _formulas,
        _TieGroupSums,
    )

    rng = np.random.default_rng(7)
    for n, decimals in ((2, 1), (40, 1), (3000, 2), (20_000, 6)):
        y = rng.integers(0, 2, n)
        p1 = np.round(rng.random(n), decimals)  # ties at every size
        s = _by_score(Scores("binary", y, (p1 > 0.5).astype(int), np.c_[1 - p1, p1]))
        yy, pred = np.asarray(s.y), np.asarray(s.pred)
        positive, pred1 = (yy == 1).astype(float), (pred == 1).astype(float)
        tp_rows, fp_rows, fn_rows = positive * pred1, (1 - positive) * pred1, positive * (1 - pred1)
        correct = (pred == yy).astype(float)
        formulas = _formulas(s)
        for w in (_weights(rng, 30, n), np.ones((1, n)), np.zeros((1, n))):
            tp, fp, fn = w @ tp_rows, w @ fp_rows, w @ fn_rows
            with np.errstate(invalid="ignore", divide="ignore"):
                plain = {"accuracy": w @ correct / n,
                         "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
                         "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
                         "recall": np.where(tp + fn > 0, tp / (tp + fn), 0.0)}
            for name, expected in plain.items():
                assert np.array_equal(formulas[name](w), expected, equal_nan=True), name
            pos, total = _TieGroupSums(s.proba[:, 1], positive)(w)
            neg = total - pos
            below = np.cumsum(neg, axis=1) - neg
            with np.errstate(invalid="ignore", divide="ignore"):
                auc = (pos * below + 0.5 * pos * neg).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))
                tp_c, seen = np.cumsum(pos[:, ::-1], axis=1), np.cumsum(total[:, ::-1], axis=1)
                precision = np.where(seen > 0, tp_c / seen, 1.0)
                recall = tp_c / tp_c[:, -1:]
            steps = np.diff(np.concatenate([np.zeros_like(recall[:, :1]), recall], axis=1), axis=1)
            assert np.array_equal(_auc_of_sums(pos, total), auc, equal_nan=True)
            assert np.array_equal(_average_precision_from_counts(tp_c, seen), (steps * precision).sum(axis=1),
                                  equal_nan=True)


def _proxies_every_row(train, target, columns, classification):  # type: ignore[no-untyped-def]
    """target_proxies as it was: every column checked on every row (the reference)."""
    import pandas as pd

    y = train[target]
    found = []
    for col in columns:
        x = train[col]
        if x.isna().any() or len(x) < 10:
            continue
        if classification:
            if x.nunique() <= y.nunique() and bool((y.groupby(x.astype(str)).nunique() <= 1).all()):
                found.append(col)
        elif (pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
              and np.allclose(x.to_numpy(dtype=float), y.to_numpy(dtype=float), equal_nan=False)):
            found.append(col)
    return found


def test_target_proxies_checks_a_sample_first_with_the_same_result() -> None:
    """Columns that fail on a 1,000-row sample are not checked on every row (preprocess on flights: the 11
    feature columns of 229k rows); the found columns equal the every-row check's, including columns that differ
    from the target on one row only, which the sample misses."""
    import pandas as pd

    from trainpipe.pipeline._steps import target_proxies

    rng = np.random.default_rng(11)
    for n in (12, 1999, 2000, 5003, 40_000):
        y = rng.integers(0, 3, n)
        almost = y.copy()
        almost[n // 2 + 1] = (almost[n // 2 + 1] + 1) % 3  # one row off: not a proxy
        gap = y.astype(float)
        gap[n - 1] = np.nan  # one missing value: not a proxy
        df = pd.DataFrame({
            "label": y, "copy": y, "relabelled": np.array(["a", "b", "c"])[y], "almost": almost, "gap": gap,
            "noise": rng.integers(0, 3, n), "many": rng.random(n), "constant": np.zeros(n, dtype=int),
            "amount": rng.random(n)})
        df["amount_again"] = df["amount"]
        df["amount_off"] = df["amount"].where(df.index != n - 2, 5.0)
        columns = [c for c in df.columns if c != "label"]
        for target, classification in (("label", True), ("amount", False)):
            cols = [c for c in df.columns if c != target]
            assert target_proxies(df, target, cols, classification) == _proxies_every_row(df, target, cols,
                                                                                          classification)
        assert target_proxies(df, "label", columns, True) == ["copy", "relabelled"]
        assert target_proxies(df, "amount", ["amount_again", "amount_off", "many"], False) == ["amount_again"]


def test_derived_arrays_are_kept_with_their_unchanged_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    import pytest

    from trainpipe.pipeline import _handoff

    path = tmp_path / "t.parquet"
    path.write_bytes(b"x")
    calls: list[str] = []

    def compute(tag: str) -> np.ndarray:
        calls.append(tag)
        return np.arange(3, dtype=np.uint64)

    try:
        first = _handoff.derived(path, ("row_hashes", "a"), lambda: compute("a"))
        assert _handoff.derived(path, ("row_hashes", "a"), lambda: compute("again")) is first
        _handoff.derived(path, ("row_hashes", "a", "b"), lambda: compute("a,b"))  # other columns: computed
        with pytest.raises(ValueError, match="read-only"):
            first[0] = 7  # shared between steps: nobody changes it
        path.write_bytes(b"yy")  # another file now (size, mtime): computed again
        os.utime(path, ns=(1, 1))
        _handoff.derived(path, ("row_hashes", "a"), lambda: compute("rewritten"))
        assert calls == ["a", "a,b", "rewritten"]
    finally:
        _handoff.clear()


def test_validate_and_split_hash_the_ingested_rows_once(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The duplicate note (validate) and the rows shared across the split (split) come from one hashing of the
    ingested table (0.045 s CPU on flights); the counts equal those of hashing it again."""
    import json

    import pandas as pd

    from trainpipe.config import load_config
    from trainpipe.data import _leakage
    from trainpipe.pipeline import PipelineRunner
    from trainpipe.tracking import InMemoryTracker

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.integers(0, 4, 300), "c": rng.choice(["a", "b"], 300),
                       "label": rng.integers(0, 2, 300)})  # 16 distinct rows: many repeats, across the split
    df.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "pipeline.yaml").write_text(
        "name: hashes\ndata: {source: data.csv, target: label}\n"
        "model: {type: sklearn.linear_model.LogisticRegression}\n"
        "evaluation: {latency: false, plots: false}\nvalidation: {min_rows: 10}\n")
    hashed: list[int] = []
    real = _leakage.row_hashes

    def counting(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
        hashed.append(len(frame))
        return real(frame, columns)

    monkeypatch.setattr(_leakage, "row_hashes", counting)
    from trainpipe import RecordingHooks
    from trainpipe.pipeline._steps import CORE_STEPS

    hooks = RecordingHooks()
    result = PipelineRunner(load_config(tmp_path / "pipeline.yaml"), workdir=tmp_path, tracker=InMemoryTracker(),
                            hooks=hooks, steps=CORE_STEPS[:3]).run()
    messages = [e[1][0] for e in hooks.events if e[0] == "message"]
    assert hashed == [300]  # validate's duplicate count; split took the same hashes
    steps = result.run_dir / "steps"
    split = json.loads((steps / "split" / "split.json").read_text())
    columns = split["rows_equal_to_train"]["columns"]
    table = pd.read_parquet(steps / "ingest" / "data.parquet")
    parts = [pd.read_parquet(steps / "split" / f"{name}.parquet") for name in ("train", "val", "test")]
    expected = _leakage.cross_split_duplicates(*parts, columns)
    assert split["rows_equal_to_train"] == expected
    assert expected["test"]["in_train"] > 0
    assert any(m.startswith("duplicate rows: 284 of 300") for m in messages), messages
    assert _leakage.duplicate_note(table, columns)[0] == 284
