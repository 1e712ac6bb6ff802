"""``loss_curve.png``: train and validation loss per epoch (Figure + Agg canvas; no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def loss_curve_png(history: Mapping[str, Sequence[float]], path: Path, best_epoch: int | None = None) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for key in ("train_loss", "val_loss"):
        values = list(history.get(key, []))
        if values:
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=key)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Loss per epoch")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
