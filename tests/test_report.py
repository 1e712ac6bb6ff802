"""The run report: the record loader, rendering, escaping of user data, sections a run never reached, the CLI's
errors. Real pipeline runs (scikit-learn on a small generated table, the in-memory tracker and registry)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import make_frame, write_pipeline
from trainpipe import ConfigError, DataValidationError, RecordingHooks
from trainpipe.config import load_config
from trainpipe.pipeline import PipelineResult, PipelineRunner
from trainpipe.report import REPORT_FILE, champion_sentence, find_run_dir, load_run, render_run
from trainpipe.report._figures import bar_chart, line_chart
from trainpipe.report._record import check_run_id
from trainpipe.tracking import InMemoryTracker

XSS = "<script>alert(1)</script>"
PIPELINE = """\
name: xss-report
description: "A run named <b>bold</b> & a column named like a script."
data: {source: data.csv, target: label}
model: {type: sklearn.linear_model.LogisticRegression}
evaluation: {latency: false, slices: ["<script>alert(1)</script>"]}
gate:
  thresholds: {roc_auc: ">= 0.5"}
"""


class _Tags(HTMLParser):
    """The start tags of a page and its text (what a browser would show)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _frame() -> pd.DataFrame:
    df = make_frame(300)
    df[XSS] = ["<img src=x onerror=alert(2)>", "plain"] * 150
    return df


@dataclass
class Runs:
    workdir: Path
    passed: PipelineResult
    tracker: InMemoryTracker
    invalid_dir: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """One passing run and one whose data validation failed, in one project folder."""
    workdir = tmp_path_factory.mktemp("report")
    _frame().to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, PIPELINE)
    tracker = InMemoryTracker()
    passed = PipelineRunner(load_config(path), workdir=workdir, tracker=tracker).run()
    bad = write_pipeline(workdir, PIPELINE + "validation:\n  columns:\n    x1: {min: 100}\n", "bad.yaml")
    hooks = RecordingHooks()
    with pytest.raises(DataValidationError):
        PipelineRunner(load_config(bad), workdir=workdir, tracker=tracker, hooks=hooks).run()
    invalid_dir = max((workdir / ".trainpipe" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    return Runs(workdir, passed, tracker, invalid_dir)


def test_every_run_writes_its_report_and_logs_it_to_the_tracker(runs: Runs) -> None:
    passed, tracker = runs.passed, runs.tracker
    page = passed.run_dir / REPORT_FILE
    assert page.is_file()
    assert tracker.runs[passed.run_id].artifacts[REPORT_FILE] == page.read_bytes()
    invalid = runs.invalid_dir / REPORT_FILE
    assert invalid.is_file()
    assert REPORT_FILE in tracker.runs[invalid.parent.name].artifacts


def test_user_data_is_shown_as_text_never_as_markup(runs: Runs) -> None:
    html = (runs.passed.run_dir / REPORT_FILE).read_text()
    page = _parse(html)
    assert "script" not in page.tags
    shown = "".join(page.text)
    assert XSS in shown  # the column name, in the columns table and the slice chart, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "<b>bold</b>" not in html
    assert "A run named <b>bold</b> &amp; a column" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    # the run page needs no JavaScript at all, and loads nothing from anywhere
    assert not re.search(r"<script\b", html)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_the_passing_run_page_has_every_section_with_the_run_numbers(runs: Runs) -> None:
    passed = runs.passed
    rec = load_run(passed.run_dir)
    assert rec.verdict == "registered" and rec.status == "finished"
    assert rec.registration and rec.registration["version"] == "1"
    assert [s.name for s in rec.steps] == [s.name for s in passed.steps]
    assert rec.data and rec.data["rows"] == 300 and XSS in rec.data["columns"]
    assert rec.data["missing"]["x2"] == 15  # make_frame blanks n // 20 cells of x2
    assert set(rec.data["labels"]) == {"train", "val", "test"}
    assert sum(sum(c.values()) for c in rec.data["labels"].values()) == 300
    assert rec.lineage["trigger"] == "manual" and "git.commit" in rec.lineage
    assert rec.evaluation and XSS in rec.evaluation["slices"]
    assert rec.gate and rec.gate["passed"] and not rec.champion_sentence  # nothing to beat yet
    html = render_run(rec)
    text = " ".join(_parse(html).text)
    for heading in ("Summary", "Steps", "Data", "Validation checks", "Model and training", "Evaluation", "Gate",
                    "Lineage and registry", "Leakage", "Label distribution"):
        assert heading in text, heading
    auc = passed.metrics["test_roc_auc"]
    assert f"{auc:.4g}" in text
    assert "Registered" in text and "xss-report" in text
    for anchor in ("summary", "steps", "data", "model", "evaluation", "gate", "lineage"):
        assert f'id="{anchor}"' in html and f'href="#{anchor}"' in html
    assert "@media print" in html


def test_a_validation_failure_says_why_and_which_sections_it_never_reached(runs: Runs) -> None:
    rec = load_run(runs.invalid_dir)
    assert rec.verdict == "invalid data" and rec.status == "failed"
    assert rec.verdict_text.startswith("Data validation failed in step validate: 1 of ")
    assert rec.validation and not rec.validation["passed"]
    failed = [c for c in rec.validation["checks"] if not c["passed"]]
    assert failed and failed[0]["column"] == "x1"
    assert rec.evaluation is None and rec.training is None and rec.gate is None
    assert rec.missing["evaluation"] == "Not available: the run stopped at step validate before evaluate wrote it."
    assert rec.data and set(rec.data["labels"]) == {"all rows"}  # no split: the whole table
    text = " ".join(_parse(render_run(rec)).text)
    assert "invalid data" in text and "Not available: the run stopped at step validate" in text


def test_a_failed_run_says_which_step_failed_and_why(workdir: Path) -> None:
    make_frame(200).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: broken\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression,\n"
                                   "        params: {solver: liblinear, penalty: elasticnet}}\n"
                                   "evaluation: {latency: false}\n")
    tracker = InMemoryTracker()
    with pytest.raises(ValueError, match="Only 'saga' solver supports elasticnet"):
        PipelineRunner(load_config(path), workdir=workdir, tracker=tracker).run()
    run_dir = next((workdir / ".trainpipe" / "runs").iterdir())
    assert REPORT_FILE in tracker.runs[run_dir.name].artifacts
    rec = load_run(run_dir)
    assert rec.verdict == "failed"
    assert rec.verdict_text == ("The run failed in step train: Only 'saga' solver supports elasticnet penalty, got "
                                "solver=liblinear.")
    assert rec.missing["evaluation"] == "Not available: the run stopped at step train before evaluate wrote it."
    html = (run_dir / REPORT_FILE).read_text()
    assert 'id="run-error"' in html and "ValueError: Only &#39;saga&#39; solver" in html


def test_damaged_step_outputs_leave_a_section_out_instead_of_failing(runs: Runs,
                                                                     tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(runs.passed.run_dir, copy)
    (copy / "steps" / "evaluate" / "metrics.json").write_text("{not json")
    (copy / "gate_report.json").unlink()
    (copy / "steps" / "gate" / "gate_report.json").unlink()
    rec = load_run(copy)
    assert rec.evaluation is None and rec.gate is None
    assert rec.missing["evaluation"] == "Not available: this run's steps did not produce it."
    assert "Not available" in render_run(rec)


def test_secrets_in_step_outputs_are_masked_on_the_page(runs: Runs, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(runs.passed.run_dir, copy)
    monkeypatch.setenv("WAREHOUSE_API_KEY", "tok-7f3a9c2e11b4")
    ingest = copy / "steps" / "ingest" / "ingest.json"
    data = json.loads(ingest.read_text())
    data["source"] = "https://analyst:hunter2pass@warehouse.example/churn.csv"
    ingest.write_text(json.dumps(data))
    run = json.loads((copy / "run.json").read_text())
    run.update(status="failed", error="DataError: cannot read with key tok-7f3a9c2e11b4")
    (copy / "run.json").write_text(json.dumps(run))
    html = render_run(load_run(copy, score=False))
    assert "hunter2pass" not in html and "tok-7f3a9c2e11b4" not in html
    assert "https://analyst:***@warehouse.example/churn.csv" in html


def test_champion_comparison_in_words() -> None:
    won = {"delta": 0.012, "ci_low": 0.004, "ci_high": 0.020, "min_delta": 0.0, "confidence": 0.95,
           "metric": "roc_auc", "passed": True}
    assert champion_sentence(won) == "better by 0.012 AUC (95 % CI 0.004–0.020): passes the 0.0 margin"
    lost = {**won, "delta": -0.0064, "ci_low": -0.0123, "ci_high": -0.0008, "passed": False}
    assert champion_sentence(lost) == "worse by 0.006 AUC (95 % CI −0.012 to −0.001): fails the 0.0 margin"
    lucky = {**won, "delta": 0.003, "ci_low": -0.002, "ci_high": 0.008, "passed": False, "metric": "rmse",
             "confidence": 0.9, "min_delta": 0.001}
    assert champion_sentence(lucky) == ("better by 0.003 RMSE (90 % CI −0.002 to 0.008): fails the 0.001 margin: "
                                        "the interval's lower bound is below it, so the gain may be luck")


def test_figures_escape_their_labels() -> None:
    bars = str(bar_chart([(XSS, 0.3), ("ok", 0.1)], limit=0.25, bad=[XSS]))
    assert "<script>" not in bars and "&lt;script&gt;" in bars and 'class="bar bad"' in bars
    curve = str(line_chart({XSS: [0.5, 0.4, 0.35]}, xlabel="round", mark=2))
    assert "<script>" not in curve and curve.count("<polyline") == 1
    assert str(line_chart({"empty": []}, xlabel="round")) == ""


def test_plotly_figures_cannot_close_their_script_element() -> None:
    import plotly.graph_objects as go

    from trainpipe.report._figures import plotly_div

    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name=f"</script>{XSS}"))
    html = str(plotly_div(fig, "fig-x"))
    assert html.count("</script>") == 1 and XSS not in html  # only the element's own end tag
    spec = html.split('data-target="fig-x">', 1)[1].rsplit("</script>", 1)[0]
    assert json.loads(spec)["data"][0]["name"] == f"</script>{XSS}"  # the browser's JSON.parse gets it back


def test_run_ids_are_checked_before_they_become_paths(runs: Runs) -> None:
    state = runs.workdir / ".trainpipe"
    for bad in ("../etc", "a/b", "", ".hidden", "x" * 101):
        with pytest.raises(ConfigError, match="expected a run id"):
            check_run_id(bad)
    with pytest.raises(ConfigError, match=r"no run 'nope' in .*Run `trainpipe report` from the directory"):
        find_run_dir(state, "nope")
    passed = runs.passed
    assert find_run_dir(state, passed.run_id[:10]) == passed.run_dir


def test_cli_report_writes_the_page_and_bad_input_is_exit_2(runs: Runs,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from trainpipe.cli import app

    workdir = runs.workdir
    monkeypatch.chdir(workdir)
    cli = CliRunner()
    target = workdir / "out.html"
    done = cli.invoke(app, ["report", runs.passed.run_id, "-o", str(target)])
    assert done.exit_code == 0, done.output
    assert target.is_file() and "xss-report" in target.read_text()
    for args, message in ((["report", "../../etc"], "expected a run id"),
                          (["report", "nope"], "no run 'nope'"),
                          (["report"], "give exactly one of RUN_ID, --study NAME or --model NAME"),
                          (["report", "abc", "--model", "m"], "got RUN_ID, --model"),
                          (["report", "--study", "s", "--storage", "bogus://x"], "unsupported storage"),
                          (["report", "--study", "nosuch"], "no run of this project tuned a study")):
        failed = cli.invoke(app, args)
        assert failed.exit_code == 2, (args, failed.output)
        assert message in " ".join(failed.output.split()), (args, failed.output)
        assert "Traceback" not in failed.output


def test_a_report_that_cannot_be_written_is_a_note_not_a_failed_run(workdir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import trainpipe.report._render as render

    def broken(html: str, path: Path) -> Path:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(render, "write_page", broken)
    make_frame(200).to_csv(workdir / "data.csv", index=False)
    path = write_pipeline(workdir, "name: quiet\ndata: {source: data.csv, target: label}\n"
                                   "model: {type: sklearn.linear_model.LogisticRegression}\n"
                                   "evaluation: {latency: false, plots: false}\n")
    hooks = RecordingHooks()
    result = PipelineRunner(load_config(path), workdir=workdir, tracker=InMemoryTracker(), hooks=hooks).run()
    assert result.status == "finished"
    notes = [e[1][0] for e in hooks.events if e[0] == "message"]
    assert any(str(n).startswith("report: report.html was not written (OSError") for n in notes), notes
    assert not (result.run_dir / REPORT_FILE).exists()


def test_intervals_come_from_the_model_scores_and_contain_the_test_value(runs: Runs) -> None:
    from trainpipe.report._scores import bootstrap_intervals, point_values, score_test

    run_dir = runs.passed.run_dir
    evaluated = json.loads((run_dir / "steps" / "evaluate" / "metrics.json").read_text())["metrics"]
    scores = score_test(run_dir / "steps" / "train" / "model", run_dir / "steps" / "split" / "test.parquet", "label")
    assert scores is not None and scores.task == "binary"
    mine = point_values(scores, list(evaluated))
    assert set(mine) == set(evaluated)  # the binary defaults all have a weighted form
    for metric, value in evaluated.items():
        assert mine[metric] == pytest.approx(value, rel=1e-9, abs=1e-12), metric
    intervals = bootstrap_intervals(scores, list(evaluated))
    for metric, (lo, hi) in intervals.items():
        assert lo <= evaluated[metric] <= hi and lo < hi, (metric, lo, hi)
    rec = load_run(run_dir)
    assert rec.evaluation and rec.evaluation["intervals"] == intervals
    assert rec.calibration and sum(n for _, _, n in rec.calibration) == len(scores.y)
    assert "Calibration" in render_run(rec)
    # the evaluate step computed them (metrics.json): the page reads them, no model is scored again
    stored = json.loads((run_dir / "steps" / "evaluate" / "metrics.json").read_text())
    assert {k: tuple(v) for k, v in stored["intervals"].items()} == intervals
    assert stored["interval_note"] == "Intervals: percentile bootstrap over the test rows (200 resamples)."
    unscored = load_run(run_dir, score=False).evaluation
    assert unscored is not None and {k: tuple(v) for k, v in unscored["intervals"].items()} == intervals


def test_rendering_is_cheap_once_loaded(runs: Runs) -> None:
    """Measured, not asserted against a wall-clock target: printed for the record (-s)."""
    run_dir = runs.passed.run_dir
    started = time.perf_counter()
    for _ in range(5):
        render_run(load_run(run_dir))
    each = (time.perf_counter() - started) / 5
    print(f"load_run + render_run: {each * 1000:.1f} ms per page")
    assert each > 0
