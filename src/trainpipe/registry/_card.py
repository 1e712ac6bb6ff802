"""The model card: one markdown page that travels with every registered version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CardInputs:
    name: str
    description: str
    model_type: str
    task: Mapping[str, Any]
    data: Mapping[str, Any]  # source, fingerprint, rows, columns, split sizes
    profile: str  # trainpipe profile (staging, prod...) or ""
    metrics: Mapping[str, Any]  # evaluate's metrics.json
    gate: Mapping[str, Any]  # gate_report.json
    params: Mapping[str, Any]
    lineage: Mapping[str, str]  # run id, config hash, git commit, versions...
    features: Mapping[str, Any] = field(default_factory=dict)
    drift: Mapping[str, Any] | None = None
    version: str | None = None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.5g}"
    return "n/a" if v is None else str(v)


def _text(v: Any) -> str:
    """User text (a description, a label) as Markdown text: no HTML (the MLflow UI renders the card)."""
    return str(v).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(v: Any) -> str:
    """One table cell: no line break or ``|`` can add a cell or a row."""
    return " ".join(_text(_fmt(v)).split()).replace("|", "\\|")


def _code(v: Any) -> str:
    """An inline code span that a backtick in the value cannot close."""
    return "`" + " ".join(str(v).split()).replace("`", "'") + "`"


def render_card(c: CardInputs) -> str:
    from trainpipe.tasks import task_for

    title = f"# Model card: {c.name}" + (f" version {c.version}" if c.version else "")
    lines = [title, ""]
    lines += ["## Intended use", "", _text(c.description) or "(no `description` in the pipeline file)", ""]
    task = c.task
    lines += ["## Model", "", f"- type: `{c.model_type}`", f"- task: {task.get('task')}"]
    if task.get("classes") is not None and task_for(str(task.get("task"))).is_classification:
        lines.append(f"- classes: {_text(task.get('classes'))} (positive: {_text(task.get('positive_label'))})")
    lines += ["- input: raw columns " + ", ".join(_code(x) for x in c.features.get("columns", [])), ""]
    d = c.data
    lines += ["## Data", "", f"- source: {_code(d.get('source'))}",
              f"- data version (sha256): `{d.get('fingerprint')}`",
              f"- rows: {d.get('rows')}, split: {d.get('split')}", f"- profile: {c.profile or '(base config)'}", ""]
    lines += ["## Metrics (held-out test split)", "", "| metric | value |", "|---|---|"]
    for k, v in (c.metrics.get("metrics") or {}).items():
        lines.append(f"| {k} | {_fmt(v)} |")
    for k, v in (c.metrics.get("latency") or {}).items():
        lines.append(f"| {k} | {_fmt(v)} |")
    lines.append("")
    for col, rows in (c.metrics.get("slices") or {}).items():
        if not rows:
            continue
        names = [k for k in rows[0] if k not in ("slice", "count")]
        lines += [f"### By {_code(col)}", "", "| slice | rows | " + " | ".join(_cell(n) for n in names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for r in rows:
            lines.append(f"| {_cell(r['slice'])} | {r['count']} | " + " | ".join(_cell(r.get(n)) for n in names)
                         + " |")
        lines.append("")
    g = c.gate
    lines += ["## Gate", "", f"Verdict: **{g.get('verdict', 'n/a')}**", ""]
    for t in g.get("thresholds", []):
        lines.append(f"- {t['metric']} {t['rule']}: {_fmt(t['value'])} ({'pass' if t['passed'] else 'fail'})")
    ch = g.get("champion")
    if ch:
        lines.append(f"- vs {ch.get('champion_alias', 'production')} version {ch['champion_version']} on "
                     f"{ch['metric']}: delta {ch['delta']:+.4f}, "
                     f"CI [{ch['ci_low']:+.4f}, {ch['ci_high']:+.4f}] at {ch['confidence']:.0%}")
    elif g.get("champion_note"):
        lines.append(f"- {_text(g['champion_note'])}")
    lines.append("")
    if c.drift:
        lines += ["## Data drift at training time", "", f"Reference: {c.drift.get('reference')}"]
        worst = sorted((c.drift.get("features") or {}).items(), key=lambda kv: -kv[1])[:5]
        lines += [f"- {_text(k)}: PSI {v:.4f}" for k, v in worst] + [""]
    members = [(k, v) for k, v in c.params.items() if k.startswith("ensemble.member.")]
    if members:  # tuning.ensemble: one model averaging several, each listed with its trial and weight
        lines += ["## Ensemble members", ""] + [f"- {v}" for _, v in members] + [""]
    lines += ["## Parameters", "", "| param | value |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(c.params.items()) if (k, v) not in members] + [""]
    lines += ["## Lineage and environment", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in sorted(c.lineage.items())] + [""]
    return "\n".join(lines)
