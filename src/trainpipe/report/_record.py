"""Everything a run page shows, assembled in one place from the run directory.

The run record (``run.json``: status, error, per-step timings, CPU, memory, cost, metrics) and the files the
steps already wrote (``ingest.json``, ``validation_report.json``, ``split.json``, ``drift_report.json``,
``train.json``, ``metrics.json``, ``gate_report.json``, ``registration.json``, ``model_card.md``,
``study_summary.json`` and the evaluation's PNGs) are read here, once; the templates never read a file.
A file is found by its name in the run directory or any step folder (the graph decides which step writes it),
so a run that stopped early simply lacks some sections: :attr:`RunRecord.missing` says why for each.

Reading is cheap (no model is loaded, no plotting library is imported): :func:`load_run` is called at the
end of every run.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainpipe._exceptions import ConfigError

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
SPLITS = ("train", "val", "test")
EVAL_PLOTS = (("roc_curve.png", "ROC curve"), ("pr_curve.png", "Precision-recall curve"),
              ("confusion_matrix.png", "Confusion matrix"), ("predicted_vs_actual.png", "Predicted vs actual"),
              ("residuals.png", "Residuals"), ("calibration.png", "Calibration"))
METRIC_NAMES = {"roc_auc": "AUC", "pr_auc": "PR AUC", "f1": "F1", "f1_macro": "macro F1", "accuracy": "accuracy",
                "log_loss": "log loss", "brier": "Brier score", "rmse": "RMSE", "mae": "MAE", "r2": "R²",
                "ndcg": "NDCG", "map": "MAP"}


def metric_label(name: str) -> str:
    return METRIC_NAMES.get(name, name.replace("_", " "))


@dataclass
class StepRow:
    name: str
    status: str
    reason: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    cost: float


@dataclass
class RunRecord:
    """The run page's data. Sections are plain dicts (from the step outputs) or None when absent."""

    run_id: str
    pipeline: str
    status: str  # finished | failed | interrupted | running
    verdict: str  # passed | registered | refused | invalid data | failed | interrupted | finished | running
    verdict_text: str
    error: str
    run_dir: str
    steps: list[StepRow]
    totals: dict[str, float]
    lineage: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    split: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    tuning: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    plots: list[tuple[str, str]] = field(default_factory=list)  # (title, file path) of the evaluation's PNGs
    gate: dict[str, Any] | None = None
    champion_sentence: str = ""
    registration: dict[str, Any] | None = None
    model_card: str = ""
    calibration: list[tuple[float, float, int]] = field(default_factory=list)  # binary: from the model's scores
    residuals: dict[str, Any] = field(default_factory=dict)  # regression: from the model's scores
    missing: dict[str, str] = field(default_factory=dict)  # section -> why it is not on the page


def check_run_id(run_id: str) -> str:
    """A run id (or its start) as it may become a folder name under ``.trainpipe/runs``."""
    if not RUN_ID.fullmatch(run_id or ""):
        raise ConfigError(f"run id {run_id!r}: expected a run id (letters, digits, '-' and '_', at most 100 "
                          "characters), as `trainpipe runs list` or the end of `trainpipe run` prints it.")
    return run_id


def find_run_dir(state_dir: Path, run_id: str) -> Path:
    """``state_dir/runs/<run_id>`` (a unique prefix is enough); ConfigError (exit 2) naming what to do."""
    check_run_id(run_id)
    runs = state_dir / "runs"
    if (runs / run_id / "run.json").is_file():
        return runs / run_id
    found = [p for p in sorted(runs.glob(f"{run_id}*")) if (p / "run.json").is_file()] if runs.is_dir() else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ConfigError(f"report: {run_id!r} is the start of {len(found)} runs in {runs} "
                          f"({', '.join(p.name for p in found[:5])}); give more of it.")
    raise ConfigError(f"report: no run {run_id!r} in {runs}. Run `trainpipe report` from the directory the run was "
                      "started in (the run id is the folder name under .trainpipe/runs/, see `trainpipe runs list`).")


class _Files:
    """The run's files by name: the top of the run directory first, then each step folder in run order."""

    def __init__(self, run_dir: Path, step_names: list[str]) -> None:
        self.run_dir = run_dir
        self.index: dict[str, Path] = {}
        folders = [run_dir] + [run_dir / "steps" / name for name in step_names]
        steps_dir = run_dir / "steps"
        with contextlib.suppress(OSError):
            folders += [p for p in sorted(steps_dir.iterdir()) if p.name not in step_names]
        for folder in folders:
            with contextlib.suppress(OSError):
                for entry in folder.iterdir():
                    self.index.setdefault(entry.name, entry)

    def path(self, name: str) -> Path | None:
        return self.index.get(name)

    def json(self, name: str) -> Any:
        path = self.index.get(name)
        if path is None:
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def text(self, name: str) -> str:
        path = self.index.get(name)
        try:
            return path.read_text() if path is not None else ""
        except OSError:
            return ""


def load_run(run_dir: Path, *, score: bool = True) -> RunRecord:
    """The run page's record of the run in ``run_dir`` (ConfigError when it has no ``run.json``).

    ``score``: score the model on the test split once more for the metrics' bootstrap intervals, the calibration
    curve (binary) and the residuals (regression) (see ``report._scores``)."""
    run_file = run_dir / "run.json"
    try:
        run = json.loads(run_file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"report: {run_file} cannot be read ({type(exc).__name__}); is {run_dir} a trainpipe run "
                          "directory? Runs live under .trainpipe/runs/.") from exc
    steps = [StepRow(str(s.get("name", "")), str(s.get("status", "")), str(s.get("reason", "")),
                     float(s.get("seconds", 0.0)), float(s.get("cpu_seconds", 0.0)), float(s.get("peak_rss_mb", 0.0)),
                     float(s.get("cost", 0.0))) for s in run.get("steps", [])]
    files = _Files(run_dir, [s.name for s in steps])
    metrics = run.get("metrics") or {}
    totals = {"seconds": sum(s.seconds for s in steps), "cpu_seconds": sum(s.cpu_seconds for s in steps),
              "peak_rss_mb": max((s.peak_rss_mb for s in steps), default=0.0),
              "cost": sum(s.cost for s in steps)}
    totals.update({k: float(metrics[m]) for k, m in (("seconds", "total_seconds"), ("cost", "estimated_cost"))
                   if isinstance(metrics.get(m), int | float)})
    status, error = str(run.get("status", "")), str(run.get("error", ""))
    rec = RunRecord(run_id=str(run.get("run_id", run_dir.name)), pipeline=str(run.get("pipeline", "")),
                    status=status, verdict="", verdict_text="", error=error, run_dir=str(run_dir), steps=steps,
                    totals=totals, lineage=_lineage(run_dir), config=_config(run_dir))
    _data(rec, files)
    _model(rec, files)
    _evaluation(rec, files)
    if score:
        _scores(rec, files)
    _gate(rec, files)
    rec.registration = files.json("registration.json")
    rec.model_card = files.text("model_card.md") if rec.registration and rec.registration.get("registered") else ""
    rec.verdict, rec.verdict_text = _verdict(rec)
    _explain_missing(rec)
    _scrub(rec)
    return rec


def _scrub(rec: RunRecord) -> None:
    """Every text the page shows with secrets masked (secret-named environment variables' values, URI
    passwords, token formats), as for anything else trainpipe writes: step outputs may quote a source URI."""
    from trainpipe.config._secrets import scrub_strings

    for name in ("error", "verdict_text", "lineage", "config", "data", "validation", "split", "drift", "training",
                 "tuning", "gate", "champion_sentence", "registration", "model_card", "missing"):
        setattr(rec, name, scrub_strings(getattr(rec, name)))
    if rec.evaluation is not None:  # numbers, and slice levels that are data values
        rec.evaluation["slices"] = scrub_strings(rec.evaluation["slices"])


def _lineage(run_dir: Path) -> dict[str, str]:
    """The parent run's tags as the run started it (trigger, git commit and dirty flag, versions, host): the
    first record of the run's tracking journal. Empty for a run without a tracker."""
    path = run_dir / "tracking_journal.jsonl"
    try:
        with path.open() as fh:
            for line in fh:
                entry = json.loads(line)
                if entry.get("op") == "start_run" and not entry.get("parent"):
                    return {str(k): str(v) for k, v in (entry.get("tags") or {}).items()}
    except (OSError, ValueError):
        pass
    return {}


def _config(run_dir: Path) -> dict[str, Any]:
    """The resolved config with secrets masked (``config.redacted.yaml``)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load((run_dir / "config.redacted.yaml").read_text(), Loader=loader)  # a safe loader (C if built)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _data(rec: RunRecord, files: _Files) -> None:
    ingest = files.json("ingest.json")
    if ingest is not None:
        rec.data = {"source": ingest.get("source", ""), "rows": ingest.get("rows"),
                    "columns": list(ingest.get("columns", [])), "dtypes": dict(ingest.get("dtypes", {})),
                    "fingerprint": ingest.get("fingerprint", ""), "missing": _null_counts(files.path("data.parquet")),
                    "labels": {}}
    rec.validation = files.json("validation_report.json")
    rec.split = files.json("split.json")
    rec.drift = files.json("drift_report.json")
    target = str((rec.config.get("data") or {}).get("target", ""))
    if rec.data is not None and target:
        parts = {name: files.path(f"{name}.parquet") for name in SPLITS}
        if not any(parts.values()):  # stopped before the split: the whole table
            parts = {"all rows": files.path("data.parquet")}
        rec.data["target"] = target
        rec.data["labels"] = {name: counts for name, path in parts.items()
                              if path is not None and (counts := _label_counts(path, target))}


def _null_counts(path: Path | None) -> dict[str, int]:
    """Missing values per column from the Parquet footer's statistics (no data is read)."""
    if path is None:
        return {}
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        out: dict[str, int] = {}
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                col = group.column(c)
                stats = col.statistics
                if stats is not None and stats.has_null_count:
                    name = col.path_in_schema
                    out[name] = out.get(name, 0) + int(stats.null_count)
        return out
    except Exception:  # a report never fails a run over a statistic: the section says it is unavailable
        return {}


def _label_counts(path: Path, target: str, top: int = 12) -> dict[str, int]:
    """Rows per label value (a numeric target: none, it is not a class)."""
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        column = pq.read_table(path, columns=[target]).column(target)
        import pyarrow as pa

        if pa.types.is_floating(column.type):
            return {}
        counts = pc.value_counts(column).to_pylist()
        pairs = sorted(((str(c["values"]), int(c["counts"])) for c in counts), key=lambda kv: -kv[1])
        return dict(pairs[:top])
    except Exception:
        return {}


def _model(rec: RunRecord, files: _Files) -> None:
    train = files.json("train.json")
    if train is not None:
        history = {k: v for k, v in (train.get("history") or {}).items() if isinstance(v, list) and v}
        rec.training = {"params": train.get("params") or {}, "best_iteration": train.get("best_iteration"),
                        "n_iterations": train.get("n_iterations"), "history": history,
                        "notes": list(train.get("notes") or []), "refit": files.json("refit.json"),
                        "feature_importance": files.path("feature_importance.png")}
    summary = files.json("study_summary.json")
    if summary is not None:
        rec.tuning = {"summary": summary, "history": files.path("optimization_history.png"),
                      "importances": files.path("param_importances.png")}


def _evaluation(rec: RunRecord, files: _Files) -> None:
    evaluated = files.json("metrics.json")
    if evaluated is None:
        return
    rec.evaluation = {"n_test": evaluated.get("n_test"), "metrics": evaluated.get("metrics") or {},
                      "latency": evaluated.get("latency") or {}, "slices": evaluated.get("slices") or {},
                      "intervals": evaluated.get("intervals") or evaluated.get("ci") or {}}
    rec.plots = [(title, str(path)) for name, title in EVAL_PLOTS if (path := files.path(name)) is not None]


def _scores(rec: RunRecord, files: _Files) -> None:
    """Bootstrap intervals, calibration and residuals: as the evaluate step computed them (``metrics.json``),
    else (a run of an older trainpipe) from the model's scores on the test split; a model that cannot be scored
    here leaves a note instead (the page is still written)."""
    evaluated = files.json("metrics.json") or {}
    if rec.evaluation is not None and "interval_note" in evaluated:
        rec.evaluation["intervals"] = {k: tuple(v) for k, v in (evaluated.get("intervals") or {}).items()}
        rec.evaluation["interval_note"] = str(evaluated["interval_note"])
        rec.calibration = [tuple(c) for c in evaluated.get("calibration") or []]
        rec.residuals = dict(evaluated.get("residuals") or {})
        return
    model_dir, test_file = files.path("model"), files.path("test.parquet")
    target = str((rec.config.get("data") or {}).get("target", ""))
    if rec.evaluation is None or model_dir is None or test_file is None or not target:
        return
    try:
        from trainpipe.report._scores import analyse

        scores = analyse(model_dir, test_file, target, list(rec.evaluation["metrics"]))
    except Exception as exc:  # the page without intervals beats no page
        from trainpipe.config._secrets import scrub

        rec.missing["intervals"] = f"Intervals not computed: {type(exc).__name__}: {scrub(str(exc))[:200]}"
        return
    if scores is None:
        return
    rec.evaluation["intervals"] = scores.intervals
    rec.calibration, rec.residuals = scores.calibration, scores.residuals


def _gate(rec: RunRecord, files: _Files) -> None:
    rec.gate = files.json("gate_report.json")
    if rec.gate and rec.gate.get("champion"):
        rec.champion_sentence = champion_sentence(rec.gate["champion"])


def champion_sentence(c: dict[str, Any]) -> str:
    """The champion comparison in a reviewer's words: ``better by 0.012 AUC (95 % CI 0.004–0.020): passes the
    0.0 margin``. The delta and interval are sign-adjusted (positive: the challenger is better)."""
    delta, lo, hi = float(c["delta"]), float(c["ci_low"]), float(c["ci_high"])
    margin = float(c.get("min_delta", 0.0))
    digits = 3 if max(abs(delta), abs(lo), abs(hi)) >= 0.001 else 5
    word = "better" if delta > 0 else "worse" if delta < 0 else "no different"
    by = f" by {abs(delta):.{digits}f}" if delta != 0 else ""
    conf = f"{float(c.get('confidence', 0.95)) * 100:.0f} %"
    joiner = "–" if lo >= 0 else " to "  # "0.004–0.020", but "−0.012 to −0.001"
    ci = f"{conf} CI {_signed(lo, digits)}{joiner}{_signed(hi, digits)}"
    shown = f"{margin:.1f}" if round(margin, 1) == margin else f"{margin:g}"
    if c.get("passed"):
        tail = f"passes the {shown} margin"
    elif delta <= margin:
        tail = f"fails the {shown} margin"
    else:
        tail = f"fails the {shown} margin: the interval's lower bound is below it, so the gain may be luck"
    return f"{word}{by} {metric_label(str(c.get('metric', '')))} ({ci}): {tail}"


def _signed(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".replace("-", "−")


def _verdict(rec: RunRecord) -> tuple[str, str]:
    error = rec.error
    failed = next((s for s in rec.steps if s.status == "failed"), None)
    where = f" in step {failed.name}" if failed is not None else ""
    if rec.status == "interrupted":
        return "interrupted", f"The run was interrupted{where}."
    if error.startswith("GateRefused"):
        reasons = (rec.gate or {}).get("reasons") or []
        first = f" Reason: {reasons[0]}" if reasons else ""
        return "refused", f"The gate refused the model; nothing was registered.{first}"
    if error.startswith("DataValidationError"):
        why = _first_line(error)
        why = why[len("data validation failed"):].lstrip(": ") if why.startswith("data validation failed") else why
        return "invalid data", f"Data validation failed{where}: {why}"
    if rec.status == "failed":
        return "failed", f"The run failed{where}: {_first_line(error)}"
    if rec.status == "running":
        return "running", "The run has not finished (or its process was killed)."
    reg = rec.registration or {}
    if reg.get("registered"):
        alias = f" as @{reg['alias']}" if reg.get("alias") else ""
        return "registered", f"Passed the gate; registered {reg.get('model_name')} version {reg.get('version')}{alias}."
    if reg.get("pending"):
        return "passed", "Passed the gate; registration waits for `trainpipe runs sync` (tracking server unreachable)."
    if rec.gate is not None:
        return ("passed", "Passed the gate.") if rec.gate.get("passed") else ("refused", "The gate refused the model.")
    return "finished", "The run finished."


def _first_line(text: str) -> str:
    head = text.split(": ", 1)[-1] if ": " in text else text
    return (head.strip().splitlines() or [""])[0][:400]


def _explain_missing(rec: RunRecord) -> None:
    ran = {s.name for s in rec.steps}
    stopped = next((s.name for s in rec.steps if s.status == "failed"), None)
    why = (f"the run stopped at step {stopped}" if stopped else
           "the run was interrupted" if rec.status == "interrupted" else "this run's steps did not produce it")
    for section, value, producer in (("data", rec.data, "ingest"), ("validation", rec.validation, "validate"),
                                     ("training", rec.training, "train"), ("evaluation", rec.evaluation, "evaluate"),
                                     ("gate", rec.gate, "gate"), ("registration", rec.registration, "register")):
        if value is None:
            rec.missing[section] = (f"Not available: {why} before {producer} wrote it." if producer not in ran
                                    or stopped == producer else f"Not available: {why}.")
    if rec.drift is None:
        drift_note = ""
        for step in rec.steps:  # the step that profiled the data recorded what it compared with, or why not
            with contextlib.suppress(OSError, ValueError):
                stored = json.loads((Path(rec.run_dir) / "steps" / step.name / "_step_result.json").read_text())
                drift_note = str(stored.get("params", {}).get("drift_reference", "")) or drift_note
        rec.missing["drift"] = (f"No drift comparison: {drift_note}." if drift_note.startswith("none")
                                else "No drift comparison in this run (validation.drift.reference, or no production "
                                     "version to compare with).")


__all__ = ["RunRecord", "StepRow", "champion_sentence", "check_run_id", "find_run_dir", "load_run", "metric_label"]
