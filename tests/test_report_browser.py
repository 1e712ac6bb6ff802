"""The report pages of real runs of examples/telco-churn, opened in Debian's chromium (headless, driven by
playwright's Python package through ``executable_path``; no browser is downloaded): no console errors, the key
sections and numbers in the rendered DOM, page weight, a screenshot of each page kept under
``.trainpipe-test-artifacts/report/``.

Four runs share one project (module fixture): a passing run (registered, promoted to production), a
gate-refused run (a weaker model against that champion, with drift), a validation-failed run, and a tuned run
(a logistic regression, 5 trials, SQLite study)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import trainpipe
from trainpipe import DataValidationError, GateRefused
from trainpipe.report import REPORT_FILE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "telco-churn" / "pipeline.yaml"
ARTIFACTS = ROOT / ".trainpipe-test-artifacts" / "report"
CHROMIUM = os.environ.get("TRAINPIPE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_PAGE_BYTES = 3 * 1024 * 1024
FAST = ["model.params.n_estimators=40", "model.params.max_depth=4", "model.params.learning_rate=0.1"]


@dataclass
class Project:
    workdir: Path
    passed: Path
    refused: Path
    invalid: Path
    tuned: Path
    tracking_uri: str
    passed_run_id: str


def _newest_run(workdir: Path) -> Path:
    return max((workdir / ".trainpipe" / "runs").iterdir(), key=lambda p: (p / "run.json").stat().st_mtime)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    workdir = tmp_path_factory.mktemp("telco")
    shutil.copy(EXAMPLE, workdir / "pipeline.yaml")
    config = workdir / "pipeline.yaml"
    passed = trainpipe.run(config, [*FAST, "registry.promote=production"], workdir=workdir)
    with pytest.raises(GateRefused):  # a much weaker model against the production champion
        trainpipe.run(config, ["model.params.n_estimators=4", "model.params.max_depth=1"], workdir=workdir)
    refused = _newest_run(workdir)
    with pytest.raises(DataValidationError):
        trainpipe.run(config, [*FAST, "validation.columns.tenure.max=12"], workdir=workdir)
    invalid = _newest_run(workdir)
    # the tuned run: a logistic regression (fast trials), its study in SQLite
    tuned_config = yaml.safe_load(config.read_text())
    tuned_config["model"] = {"type": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}}
    tuned_config.pop("training", None)
    tuned_config["tuning"] = {"n_trials": 5, "selection": "holdout", "storage": f"sqlite:///{workdir}/optuna.db",
                              "space": {"C": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
                                        "fit_intercept": {"type": "categorical", "choices": [True, False]}}}
    (workdir / "tuned.yaml").write_text(yaml.safe_dump(tuned_config))
    with contextlib.suppress(GateRefused):  # against the boosted production model: the pages exist either way
        trainpipe.run(workdir / "tuned.yaml", workdir=workdir)
    tuned = _newest_run(workdir)
    return Project(workdir, passed.run_dir, refused, invalid, tuned, passed.tracking_uri, passed.run_id)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"chromium is not installed at {CHROMIUM}: run `apt-get install -y chromium` (as root; .ci/run "
                    "does it), or set TRAINPIPE_CHROMIUM to its path.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is missing: pip install -e '.[dev]' (or pip install playwright; "
                    "no `playwright install` is needed, the system chromium is used)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Opened:
    page: Any
    errors: list[str]
    text: str


def _open(browser: Any, path: Path, shot: str, *, wait_plotly: bool = False, javascript: bool = True) -> Opened:
    """Open ``path``, collect console errors and page errors, keep a full-page screenshot as ``shot``."""
    assert path.stat().st_size < MAX_PAGE_BYTES, f"{path}: {path.stat().st_size} bytes"
    context = browser.new_context(viewport={"width": 1200, "height": 900}, java_script_enabled=javascript)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:"))
            else errors.append(f"network request: {r.url}"))  # self-contained: nothing from anywhere
    page.goto(path.as_uri(), wait_until="load")
    if wait_plotly:
        page.wait_for_selector("body[data-plotly=ready]", timeout=60_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return Opened(page, errors, " ".join(page.inner_text("body").split()))


def test_passing_run_page(project: Project, browser: Any) -> None:
    opened = _open(browser, project.passed / REPORT_FILE, "run-passed.png")
    assert opened.errors == []
    page, text = opened.page, opened.text
    assert page.inner_text("#verdict-badge").strip().lower() == "registered"
    run = json.loads((project.passed / "run.json").read_text())
    auc = run["metrics"]["test_roc_auc"]
    assert f"{auc:.4g}" in page.inner_text("#metrics-table")
    steps = page.locator("#steps-table tbody tr")
    assert steps.count() == len(run["steps"])
    for name in ("Validation checks", "Label distribution", "Leakage", "Model and training", "Evaluation", "Gate",
                 "Lineage and registry", "ROC curve", "Confusion matrix", "Feature importance"):
        assert name in text, name
    assert "Registered telco-churn version 1 with alias @production" in text
    assert page.locator("svg.chart polyline").count() >= 1  # the learning curve
    assert page.locator("img[src^='data:image/png;base64,']").count() >= 4  # ROC, PR, confusion, importance
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    page.emulate_media(media="print")  # printed: no sticky navigation, every section in the flow
    assert not page.is_visible("nav.toc") and page.is_visible("#lineage-table")
    page.screenshot(path=str(ARTIFACTS / "run-passed-print.png"), full_page=True)


def test_gate_refused_run_page_says_why_in_words(project: Project, browser: Any) -> None:
    opened = _open(browser, project.refused / REPORT_FILE, "run-refused.png")
    assert opened.errors == []
    gate = json.loads((project.refused / "gate_report.json").read_text())
    c = gate["champion"]
    assert c is not None and not c["passed"]
    sentence = opened.page.inner_text("#champion-sentence")
    assert "worse by" in sentence and "AUC" in sentence and "fails the 0.0 margin" in sentence
    assert f"{abs(c['delta']):.3f}" in sentence
    assert opened.page.inner_text("#verdict-badge").strip().lower() == "refused"
    assert "Why refused" in opened.text and "nothing was registered" in opened.text
    assert "Drift against production" in opened.text
    assert "Population stability index per feature against telco-churn version 1 (production)" in opened.text
    assert opened.page.locator("svg.bars rect.bar").count() >= 10  # a PSI bar per feature


def test_validation_failed_run_page_names_the_failed_check(project: Project, browser: Any) -> None:
    opened = _open(browser, project.invalid / REPORT_FILE, "run-invalid.png")
    assert opened.errors == []
    assert opened.page.inner_text("#verdict-badge").strip().lower() == "invalid data"
    failed = opened.page.locator("#validation-table tr.fail")
    assert failed.count() == 1 and "tenure" in failed.inner_text()
    assert "Not available: the run stopped at step validate before evaluate wrote it." in opened.text
    assert "Data validation failed in step validate" in opened.text


def test_run_page_reads_without_javascript(project: Project, browser: Any) -> None:
    opened = _open(browser, project.passed / REPORT_FILE, "run-passed-nojs.png", javascript=False)
    assert opened.errors == [] and "Validation checks" in opened.text and "Champion comparison" in opened.text


def test_tuned_run_and_study_page(project: Project, browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from trainpipe.cli import app

    run_page = _open(browser, project.tuned / REPORT_FILE, "run-tuned.png")
    assert run_page.errors == [] and "Study telco-churn" in run_page.text
    monkeypatch.chdir(project.workdir)
    out = project.workdir / "study.html"
    done = CliRunner().invoke(app, ["report", "--study", "telco-churn", "-o", str(out)])
    assert done.exit_code == 0, done.output
    opened = _open(browser, out, "study.png", wait_plotly=True)
    assert opened.errors == []
    summary = json.loads(next(project.tuned.glob("steps/*/study_summary.json")).read_text())
    page = opened.page
    assert int(page.inner_text("#n-complete")) == summary["n_complete"]
    assert int(page.inner_text("#n-pruned")) == summary["n_pruned"]
    assert page.locator("#trials-table tbody tr").count() == summary["n_finished"]
    assert page.locator(".js-plotly-plot").count() == 4  # history, importances, parallel coordinates, slices
    html = out.read_text()  # plotly.js once (gzipped, unpacked by one loader), each figure as JSON
    assert html.count('id="plotly-gz"') == 1 and html.count('class="plotly-figure"') == 4
    assert f"{summary['best_value']:.4g}" in page.inner_text("#best-value")


def test_a_study_that_lived_in_memory_is_rebuilt_from_trials_csv(project: Project) -> None:
    from trainpipe.report._study import _record, rebuild_study, study_figures

    tune_dir = next(project.tuned.glob("steps/*/study_summary.json")).parent
    summary = json.loads((tune_dir / "study_summary.json").read_text())
    study = rebuild_study("telco-churn", tune_dir / "trials.csv", summary["direction"])
    rec = _record(study, "in-memory (rebuilt)", str(tune_dir / "trials.csv"), summary)
    assert rec.counts["complete"] == summary["n_complete"] and rec.counts["pruned"] == summary["n_pruned"]
    assert rec.best is not None and rec.best["value"] == pytest.approx(summary["best_value"])
    assert rec.best["params"]["C"] == pytest.approx(summary["best_params"]["C"])
    assert rec.total_cost == pytest.approx(summary["total_cost"], rel=1e-6)
    assert [title for _, title, fig in study_figures(rec) if fig is None] == []


def test_model_page_and_the_mlflow_artifact(project: Project, browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from trainpipe.cli import app

    client = MlflowClient(tracking_uri=project.tracking_uri)
    for run_dir in (project.passed, project.refused, project.invalid):
        names = [a.path for a in client.list_artifacts(run_dir.name)]
        assert REPORT_FILE in names, (run_dir.name, names)
    monkeypatch.chdir(project.workdir)
    out = project.workdir / "model.html"
    done = CliRunner().invoke(app, ["report", "--model", "telco-churn", "-o", str(out)])
    assert done.exit_code == 0, done.output
    opened = _open(browser, out, "model.png")
    assert opened.errors == []
    rows = opened.page.locator("#versions-table tbody tr")
    versions = client.search_model_versions("name = 'telco-churn'")
    assert rows.count() == len(versions) >= 1
    assert "@production" in opened.page.inner_text("#versions-table")
    history = opened.page.locator("#history-table tbody tr")
    assert history.count() >= 1 and "@production" in history.last.inner_text()
    assert opened.page.locator("svg.timeline circle").count() == history.count()
    missing = CliRunner().invoke(app, ["report", "--model", "no-such-model"])
    assert missing.exit_code == 2 and "no registered model of that name" in missing.output
