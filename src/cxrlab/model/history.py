"""The run's metrics log (one CSV row per epoch) and its loss / metric plots, rewritten after every epoch.

Plots are PNGs (matplotlib, no display needed) because a person reads a curve faster than a column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlab.atomic import atomic_path

__all__ = ["COLUMNS", "METRICS_FILE", "plot_history", "read_history", "write_history"]

METRICS_FILE = "metrics.csv"
COLUMNS = [
    "epoch",
    "train_loss",
    "cls_loss",
    "det_loss",
    "val_loss",
    "val_auroc",
    "lr",
    "images",
    "seconds",
    "images_per_s",
]


def read_history(run: str | Path) -> pd.DataFrame:
    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return pd.DataFrame({c: [] for c in COLUMNS})
    return pd.read_csv(path)


def write_history(run: str | Path, rows: list[dict[str, float]]) -> Path:
    path = Path(run) / METRICS_FILE
    df = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    return path


def plot_history(run: str | Path, rows: list[dict[str, float]]) -> list[Path]:
    """``loss.png`` (train and validation loss per epoch) and ``metrics.png`` (validation macro AUROC)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(rows, columns=COLUMNS)
    run = Path(run)
    written = []
    for name, columns, ylabel in (
        ("loss.png", ["train_loss", "cls_loss", "det_loss", "val_loss"], "loss"),
        ("metrics.png", ["val_auroc"], "validation macro AUROC"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for column in columns:
            if df[column].notna().any():
                ax.plot(df["epoch"], df[column], marker="o", label=column)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        fig.tight_layout()
        with atomic_path(run / name, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        written.append(run / name)
    return written
