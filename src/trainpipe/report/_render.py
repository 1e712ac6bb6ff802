"""Render the report pages with Jinja2 (autoescape on: run names, column names and values are user data)."""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainpipe._version import __version__
from trainpipe.report._record import RunRecord, load_run, metric_label

if TYPE_CHECKING:
    import jinja2

    from trainpipe.report._model import ModelRecord
    from trainpipe.report._study import StudyRecord

REPORT_FILE = "report.html"
_ENV: list[jinja2.Environment] = []  # built once per process (parsing the templates costs ~20 ms)
BADGES = {"passed": "ok", "registered": "ok", "finished": "ok", "refused": "warn", "invalid data": "bad",
          "failed": "bad", "interrupted": "bad", "running": "neutral"}


def _fmt_num(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(float(value))
    if magnitude >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}" if magnitude >= 0.001 else f"{value:.3g}"


def _fmt_secs(value: Any) -> str:
    v = float(value or 0.0)
    if v >= 3600:
        return f"{v / 3600:.1f} h"
    if v >= 120:
        return f"{v / 60:.1f} min"
    return f"{v:.1f} s" if v >= 10 else f"{v:.2f} s"


def _fmt_mb(value: Any) -> str:
    v = float(value or 0.0)
    return f"{v / 1024:.2f} GB" if v >= 1024 else f"{v:.0f} MB"


def _fmt_money(value: Any) -> str:
    """Costs in the currency of ``cost.cpu_hour``: cents, or the first significant digits of a fraction."""
    v = float(value or 0.0)
    if v == 0:
        return "0"
    if v >= 0.01:
        return f"{v:,.2f}"
    return "< 0.000001" if v < 1e-6 else f"{v:.6f}".rstrip("0")


def environment() -> jinja2.Environment:
    if _ENV:
        return _ENV[0]
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("trainpipe.report", "templates"),
                             autoescape=True, undefined=jinja2.ChainableUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update({"num": _fmt_num, "secs": _fmt_secs, "mb": _fmt_mb, "money": _fmt_money,
                        "metric": metric_label})
    env.globals["version"] = __version__
    _ENV.append(env)
    return env


def render(template: str, **context: Any) -> str:
    context.setdefault("generated", time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
    return environment().get_template(template).render(**context)


def render_run(rec: RunRecord) -> str:
    """The run page of ``rec`` (see :func:`~trainpipe.report.load_run`)."""
    from trainpipe.report._figures import bar_chart, line_chart, png_data_uri, xy_chart

    figs: dict[str, Any] = {}
    if rec.drift and rec.drift.get("features"):
        psi = sorted(((str(k), float(v)) for k, v in rec.drift["features"].items()), key=lambda kv: -kv[1])[:30]
        figs["drift"] = bar_chart(psi, limit=rec.drift.get("max_psi"), limit_label="max_psi",
                                  bad=list(rec.drift.get("failures") or []), title="PSI per feature")
    curves: list[tuple[str, Any]] = []
    if rec.training and rec.training["history"]:
        history = rec.training["history"]
        best = rec.training.get("best_iteration")
        mark = int(best) + 1 if isinstance(best, int | float) else None  # best_iteration counts from 0
        losses = {k: v for k, v in history.items() if "loss" in k}  # torch: train and validation loss per epoch
        others = {k: v for k, v in history.items() if k not in losses}
        for group in (losses, others):  # one chart per scale
            if group:
                title = ", ".join(group)
                curves.append((title, line_chart(group, xlabel="round / epoch", mark=mark, title=title)))
    slice_metric = ""
    if rec.evaluation and rec.evaluation["slices"]:
        gate = (rec.config.get("gate") or {}).get("champion") or {}
        metrics = list(rec.evaluation["metrics"])
        slice_metric = str(gate.get("metric") if gate.get("metric") in metrics else (metrics[0] if metrics else ""))
        figs["slices"] = []
        for column, rows in list(rec.evaluation["slices"].items())[:12]:
            items = [(f"{r.get('slice')} (n={r.get('count')})", r.get(slice_metric)) for r in rows[:20]]
            figs["slices"].append((column, bar_chart([(k, v) for k, v in items if v is not None],
                                                     title=f"{slice_metric} per {column}")))
    if rec.calibration:
        figs["calibration"] = xy_chart({"model": [(p, o) for p, o, _ in rec.calibration]}, diagonal=True,
                                       xlabel="mean predicted probability", ylabel="observed share",
                                       title="calibration")
    if rec.residuals.get("pairs"):
        figs["residuals"] = xy_chart({"test rows": [(p, a - p) for p, a in rec.residuals["pairs"]]}, lines=False,
                                     zero_line=True, xlabel="predicted", ylabel="residual", title="residuals")
    plots = [(title, uri) for title, path in rec.plots if (uri := png_data_uri(Path(path)))]
    importance = None
    if rec.training and rec.training.get("feature_importance"):
        importance = png_data_uri(Path(rec.training["feature_importance"]))
    tuning_plots = {}
    if rec.tuning:
        tuning_plots = {k: png_data_uri(Path(rec.tuning[k])) for k in ("history", "importances") if rec.tuning.get(k)}
    headline: list[tuple[str, str]] = []
    if rec.evaluation:
        for k, v in list(rec.evaluation["metrics"].items())[:3]:
            headline.append((f"test {metric_label(k)}", _fmt_num(v)))
    label_values: list[str] = []
    if rec.data:
        for counts in rec.data.get("labels", {}).values():
            label_values += [v for v in counts if v not in label_values]
    libraries = sorted((k[4:], v) for k, v in rec.lineage.items() if k.startswith("lib."))
    return render("run.html.j2", rec=rec, badge=BADGES.get(rec.verdict, "neutral"), figs=figs, plots=plots,
                  importance=importance, tuning_plots=tuning_plots, headline=headline, label_values=label_values,
                  libraries=libraries, curves=curves, slice_metric=slice_metric)


def render_study(rec: StudyRecord) -> str:
    """The study page: Optuna's own plotly figures (plotly.js embedded once), trial states and costs."""
    from trainpipe.report._figures import bar_chart, plotly_div, plotly_script
    from trainpipe.report._study import study_figures

    figures = [(anchor, title, plotly_div(fig, f"fig-{anchor}") if fig is not None else None)
               for anchor, title, fig in study_figures(rec)]
    states = [(k, float(v)) for k, v in rec.counts.items() if v or k in ("complete", "pruned")]
    costs = [(f"trial {t['number']} ({t['state']})", float(t["cost"])) for t in rec.trials
             if isinstance(t.get("cost"), int | float)][:60]
    figs = {"states": bar_chart(states, digits=0, title="trials by state"),
            "cost": bar_chart(costs, digits=6, title="cost per trial") if costs else ""}
    drawn = any(fig is not None for _, _, fig in figures)
    return render("study.html.j2", rec=rec, figures=figures, figs=figs, plotly_js=plotly_script() if drawn else "")


def render_model(rec: ModelRecord) -> str:
    """The model page: versions, their metrics and gate verdicts, the alias history on a timeline."""
    from trainpipe.report._figures import bar_chart, timeline

    figs: dict[str, Any] = {"metrics": []}
    for metric in rec.metric_names[:6]:
        items = [(f"v{v['version']}", v["metrics"][metric]) for v in reversed(rec.versions) if metric in v["metrics"]]
        figs["metrics"].append((metric, bar_chart(items, digits=4, title=f"test {metric} by version", width=340,
                                                  label_width=48)))
    events = [{"t": m["t"], "alias": m["alias"], "label": f"v{m['to_version']}" if m.get("to_version") else "×",
               "title": f"{m['time']}: @{m['alias']} {m.get('from_version') or '-'} -> {m.get('to_version') or '-'}"
                        f" ({m.get('reason', '')})"} for m in rec.moves]
    figs["timeline"] = timeline(events)
    return render("model.html.j2", rec=rec, figs=figs)


def write_page(html: str, path: Path) -> Path:
    """Write atomically (a temporary name, then a rename): a reader never sees half a page. A path that cannot
    be written (a folder, a file where a folder goes, no permission) is a ConfigError (exit 2) naming it."""
    from trainpipe._exceptions import ConfigError

    if path.is_dir():
        raise ConfigError(f"-o {path}: a folder; give the page's file name (e.g. {path / 'report.html'}).")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    except (FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(f"-o {path}: cannot write the page there ({exc.strerror or exc}).") from None
    return path


_OFF = ("0", "false", "no", "off")


def write_run_report(run_dir: Path, out: Path | None = None, *, score: bool = True) -> Path:
    """Render the run page of ``run_dir`` into ``out`` (default: ``run_dir/report.html``); ``score``: the
    metrics' intervals, calibration and residuals from the model's scores (see ``load_run``)."""
    return write_page(render_run(load_run(run_dir, score=score)), out or run_dir / REPORT_FILE)


__all__ = ["REPORT_FILE", "render", "render_model", "render_run", "render_study", "write_page", "write_run_report",
           "write_run_report_safely"]


def write_run_report_safely(run_dir: Path, hooks: Any = None) -> Path | None:
    """:func:`write_run_report` at the end of a run: a page that cannot be rendered is a note (``hooks``'s
    ``on_message``), never a failed run. ``TRAINPIPE_REPORT=0`` turns it off; ``TRAINPIPE_REPORT_SCORES=0``
    leaves out what needs the model scored again (intervals, calibration, residuals: ~0.1-0.2 s of the ~0.2 s)."""
    if os.environ.get("TRAINPIPE_REPORT", "1").strip().lower() in _OFF:
        return None
    try:
        return write_run_report(run_dir, score=os.environ.get("TRAINPIPE_REPORT_SCORES", "1").strip().lower()
                                not in _OFF)
    except Exception as exc:  # the run's outcome is decided: a report problem must not change it
        from trainpipe.config._secrets import scrub

        if hooks is not None:
            hooks.on_message(f"report: {REPORT_FILE} was not written ({type(exc).__name__}: "
                             f"{scrub(str(exc))[:200]}); `trainpipe report {run_dir.name}` tries again")
        return None
