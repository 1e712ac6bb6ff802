"""PNG plots (matplotlib, Agg backend): confusion matrix, ROC, PR, feature importance, residuals."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def _figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A figure and its axes, drawn with the Agg canvas directly: no pyplot, no global figure state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def confusion_matrix_png(y: np.ndarray, pred: np.ndarray, labels: list[str], path: Path) -> None:
    import numpy as np
    from sklearn.metrics import confusion_matrix

    k = len(labels)
    cm = confusion_matrix(y, pred, labels=list(range(k)))
    size = min(3 + 0.5 * k, 14)
    fig, ax = _figure((size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), labels=[s[:20] for s in labels], rotation=45, ha="right")
    ax.set_yticks(range(k), labels=[s[:20] for s in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    if k <= 20:
        top = cm.max() if cm.size else 0
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")
    ax.set_title("Confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def roc_pr_png(y: np.ndarray, proba: np.ndarray, labels: list[str], roc_path: Path, pr_path: Path) -> None:
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    k = proba.shape[1]
    classes = [1] if k == 2 else list(range(min(k, 10)))
    fig_roc, ax_roc = _figure((5, 5))
    fig_pr, ax_pr = _figure((5, 5))
    for c in classes:
        truth = (y == c).astype(int)
        if truth.min() == truth.max():
            continue
        fpr, tpr, _ = roc_curve(truth, proba[:, c])
        prec, rec, _ = precision_recall_curve(truth, proba[:, c])
        ax_roc.plot(*_thin(fpr, tpr), label=f"{labels[c][:20]} (AUC {auc(fpr, tpr):.3f})")
        ax_pr.plot(*_thin(rec, prec),
                   label=f"{labels[c][:20]} (AP {average_precision_score(truth, proba[:, c]):.3f})")
    ax_roc.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    for fig, ax, path in ((fig_roc, ax_roc, roc_path), (fig_pr, ax_pr, pr_path)):
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)


def _thin(x: np.ndarray, y: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` evenly spaced points of a curve, ends kept: a 500-pixel plot shows no more, and a
    curve over 65k test rows has 65k thresholds."""
    import numpy as np

    if len(x) <= points:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
    return x[idx], y[idx]


def feature_importance_png(names: list[str], importances: np.ndarray, path: Path, top: int = 20) -> None:
    import numpy as np

    imp = np.asarray(importances, dtype=float)
    if not names or len(names) != len(imp):
        names = [f"f{i}" for i in range(len(imp))]
    order = np.argsort(imp)[::-1][:top][::-1]
    fig, ax = _figure((7, 0.3 * len(order) + 1.5))
    ax.barh([names[i][:40] for i in order], imp[order])
    ax.set_title(f"Feature importance (top {len(order)})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def predicted_vs_actual_png(y: np.ndarray, pred: np.ndarray, path: Path) -> None:
    import numpy as np

    n = len(y)
    idx = np.random.default_rng(0).choice(n, size=min(n, 5000), replace=False)
    fig, ax = _figure((5, 5))
    ax.scatter(y[idx], pred[idx], s=4, alpha=0.4)
    lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def import_drawing_libraries() -> None:
    """What drawing needs, imported ahead (the plot worker does it while the run prepares its data)."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401
    import sklearn.metrics  # noqa: F401


def draw_plots(plots: tuple[str, ...], y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
               labels: list[str], feature_names: list[str], importances: np.ndarray | None,
               out_dir: Path) -> list[str]:
    """The plots in ``plots`` that apply (the task's names), plus feature importance when there is one; the
    file names written into ``out_dir``, in a fixed order."""
    written: list[str] = []
    if "confusion_matrix" in plots:
        confusion_matrix_png(y, pred, labels, out_dir / "confusion_matrix.png")
        written.append("confusion_matrix.png")
    if "roc_pr" in plots and proba is not None:
        roc_pr_png(y, proba, labels, out_dir / "roc_curve.png", out_dir / "pr_curve.png")
        written += ["roc_curve.png", "pr_curve.png"]
    if "predicted_vs_actual" in plots:
        predicted_vs_actual_png(y, pred, out_dir / "predicted_vs_actual.png")
        written.append("predicted_vs_actual.png")
    if importances is not None and len(importances):
        feature_importance_png(feature_names, importances, out_dir / "feature_importance.png")
        written.append("feature_importance.png")
    return written
