"""Figures logged as MLflow artifacts by more than one project."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], min_tpr: float = 0.8):
    """ROC curves (name -> (y_true, score)) with the scored TPR >= min_tpr band shaded."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.axhspan(
        min_tpr, 1.0, color="tab:orange", alpha=0.12, label=f"scored region (TPR ≥ {min_tpr:.0%})"
    )
    for name, (y, s) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=name, lw=1.5)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def barh_figure(labels: list[str], values: list[float], title: str):
    """Horizontal bar chart, largest first (feature importance). The title sits on the figure,
    wrapped: over the axes it was centred past the right edge once long labels pushed them."""
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(labels) + 1.2))
    ax.barh(labels[::-1], values[::-1])
    fig.suptitle(textwrap.fill(title, 60), fontsize=10)
    fig.tight_layout()
    return fig
