"""The evaluation artifacts of a text classifier (a model with ``features.text`` columns):

- ``per_class.json`` and ``per_class.md``: precision, recall, F1 and support of every class, with the macro
  and weighted averages (scikit-learn's ``classification_report``);
- ``misclassified.csv``: the :data:`TOP` test rows the model got wrong with the highest confidence in its
  wrong answer (the texts, shortened to :data:`MAX_CHARS` characters and scrubbed of secret-looking values,
  the true and predicted labels, the probability given to each).

The confusion matrix is drawn for every classifier (``confusion_matrix.png``); latency is measured per row,
one text each (``latency_p50_ms``, ``latency_p95_ms``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TOP = 20
MAX_CHARS = 500


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(text: str) -> str:
    """A text cell that a spreadsheet opens as text: one starting like a formula (``=HYPERLINK(...)``,
    ``+``, ``-``, ``@``, a tab or line break; OWASP's CSV injection) gets a leading ``'``; numbers stay as
    they are."""
    if not text.startswith(_FORMULA_START):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text


def _md_cell(text: str) -> str:
    """A class name as one Markdown table cell: no line breaks, ``|`` escaped, no HTML."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def write_text_report(texts: pd.DataFrame, classes: list[str], y: np.ndarray, pred: np.ndarray,
                      proba: np.ndarray | None, out_dir: Path) -> list[str]:
    """Write the per-class report and the misclassified examples; return the file names written."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import classification_report

    from trainpipe.config._secrets import scrub

    labels = list(range(len(classes)))
    report: dict[str, Any] = classification_report(y, pred, labels=labels, target_names=classes, output_dict=True,
                                                   zero_division=0)
    (out_dir / "per_class.json").write_text(json.dumps(report, indent=2))
    lines = ["| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for name, row in report.items():
        if isinstance(row, dict):
            lines.append(f"| {_md_cell(name)} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1-score']:.4f} | "
                         f"{int(row['support'])} |")
    (out_dir / "per_class.md").write_text("# Per-class report (test split)\n\n" + "\n".join(lines) + "\n")
    wrong = np.flatnonzero(np.asarray(y) != np.asarray(pred))
    confidence = (np.asarray(proba)[wrong, np.asarray(pred)[wrong]] if proba is not None
                  else np.full(len(wrong), np.nan))
    order = wrong[np.argsort(-np.nan_to_num(confidence, nan=0.0), kind="stable")][:TOP]
    rows: dict[str, Any] = {}
    for col in texts.columns:
        rows[csv_cell(str(col))] = [csv_cell(scrub(str(v))[:MAX_CHARS]) for v in texts[col].iloc[order]]
    rows["true"] = [csv_cell(str(classes[int(i)])) for i in np.asarray(y)[order]]
    rows["predicted"] = [csv_cell(str(classes[int(i)])) for i in np.asarray(pred)[order]]
    if proba is not None:
        for k, name in enumerate(classes):
            rows[f"proba_{name}"] = np.round(np.asarray(proba)[order, k], 4)
    tmp = out_dir / ".misclassified.csv.tmp"
    # every text quoted: pandas leaves a lone carriage return unquoted, which splits the row in a CSV reader
    pd.DataFrame(rows).to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC)
    tmp.replace(out_dir / "misclassified.csv")
    return ["per_class.json", "per_class.md", "misclassified.csv"]


__all__ = ["csv_cell", "write_text_report"]
