"""task: ranking enforces the ``validation:`` section: the checks that apply to interactions (``min_rows``,
``max_missing_fraction``, ``max_duplicate_fraction`` on (user, item) pairs, ``columns``) run with the tabular
check engine and fail with exit 3 and a report; a check that cannot apply (``min_class_fraction``) is refused
when the config is loaded (exit 2 naming the key), never silently ignored."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.test_ranking import _cli, interactions, ranking_config
from trainpipe import ConfigError
from trainpipe.data._validation import validate_interactions


def _with_validation(validation: dict[str, Any]) -> Any:
    from trainpipe.config import config_from_dict

    return config_from_dict({"name": "recs", "task": "ranking", "validation": validation,
                             "data": {"source": "x.csv", "user": "user", "item": "item", "timestamp": "ts"},
                             "model": {"type": "two_tower"}}).config


def _failed(report: Any) -> dict[tuple[str, str], Any]:
    return {(c.column, c.check): c for c in report.failures}


def test_the_interaction_checks_run_on_the_ingested_rows() -> None:
    df = interactions()
    df.loc[[3, 7], "rating"] = None
    repeated = int(df.duplicated(["user", "item"]).sum())
    assert repeated > 0, "the generated interactions hold no repeated pair"
    cfg = ranking_config()
    strict = _with_validation({"min_rows": 100_000, "max_duplicate_fraction": 0.0, "max_missing_fraction": 0.0,
                               "columns": {"rating": {"min": 4, "max": 5}, "genres": {"allowed": ["Comedy"]}}})
    report = validate_interactions(df, strict)
    failed = _failed(report)
    assert not report.passed
    assert failed[("<table>", "min_rows")].observed == f"{len(df)} interactions"
    dup = failed[("user, item", "max_duplicate_fraction")]
    assert dup.failing_rows == repeated and f"({repeated} repeated pairs)" in dup.observed
    assert failed[("rating", "max_missing_fraction")].failing_rows == 2
    low = int((df["rating"] < 4).sum())
    assert failed[("rating", "greater_than_or_equal_to")].failing_rows == low
    assert failed[("genres", "isin")].failing_rows == int((df["genres"] != "Comedy").sum())
    assert "data validation failed: 5 of" in report.summary()

    assert validate_interactions(df, cfg).checks == []  # nothing declared: nothing checked (the defaults apply)


def test_min_class_fraction_is_refused_for_ranking_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"validation\.min_class_fraction: a ranking task has no target and no "
                                          r"classes, so this check cannot apply to interactions; remove it"):
        _with_validation({"min_class_fraction": 0.1})


def _project(tmp_path: Path, validation: dict[str, Any]) -> None:
    import yaml

    interactions().to_csv(tmp_path / "ratings.csv", index=False)
    config = {"name": "recs", "task": "ranking",
              "data": {"source": "ratings.csv", "user": "user", "item": "item", "timestamp": "ts"},
              "model": {"type": "two_tower"}, "validation": validation}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))


def test_trainpipe_validate_on_ranking_fails_with_exit_3_and_a_report(tmp_path: Path) -> None:
    _project(tmp_path, {"columns": {"rating": {"min": 4}, "user": {"nullable": False}}})
    result = _cli(tmp_path, "validate", "pipeline.yaml")
    out = " ".join(result.output.split())
    assert result.exit_code == 3, result.output
    low = int((interactions()["rating"] < 4).sum())
    assert re.search(rf"rating: greater_than_or_equal_to: observed {low} failing rows, expected >= 4", out), out
    assert "Traceback" not in result.output
    (report,) = tmp_path.glob(".trainpipe/validation/recs/validation_report.json")
    data = json.loads(report.read_text())
    assert data["passed"] is False
    assert {(c["column"], c["check"], c["passed"]) for c in data["checks"]} >= {
        ("rating", "greater_than_or_equal_to", False), ("user", "not_nullable", True)}


def test_trainpipe_validate_on_ranking_passes_declared_checks_and_reports_them(tmp_path: Path) -> None:
    _project(tmp_path, {"min_rows": 100, "max_missing_fraction": 0.0, "columns": {"rating": {"min": 1, "max": 5}}})
    result = _cli(tmp_path, "validate", "pipeline.yaml")
    assert result.exit_code == 0, result.output
    (report,) = tmp_path.glob(".trainpipe/validation/recs/validation_report.json")
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["interactions"]["users"] == 60
    checks = {(c["column"], c["check"]) for c in data["checks"]}
    assert {("<table>", "min_rows"), ("rating", "less_than_or_equal_to")} <= checks
    assert all(c["passed"] for c in data["checks"])
    md = report.with_name("validation_report.md").read_text()
    assert "## Declared checks" in md and "| rating | less_than_or_equal_to | pass |" in md
