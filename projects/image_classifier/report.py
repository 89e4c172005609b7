"""Per-run artifacts of image_classifier: a grid of validation images with their scores."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from shared.datasets import isic2024 as isic  # noqa: E402
from shared.images import DecodedImageCache, HDF5ImageStore  # noqa: E402


def image_grid(
    store: HDF5ImageStore | DecodedImageCache, frame: pd.DataFrame, scores: np.ndarray, n: int = 16
):
    """The highest-scored validation images and every positive, titled with score and label
    (as the model saw them: SxS when read from the decode cache)."""
    order = np.argsort(-scores)
    pos = np.flatnonzero(frame[isic.TARGET].to_numpy() == 1)
    pick = list(dict.fromkeys([*order[: n // 2], *pos[: n // 2], *order[-(n // 4) :]]))[:n]
    cols = 4
    fig, axes = plt.subplots(
        (len(pick) + cols - 1) // cols, cols, figsize=(8, 2.2 * len(pick) / cols + 1)
    )
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), pick):
        row = frame.iloc[i]
        ax.imshow(store.read(row[isic.ID]))
        ax.set_title(
            f"{scores[i]:.2f} (y={row[isic.TARGET]})",
            fontsize=8,
            color="tab:red" if row[isic.TARGET] else "black",
        )
    fig.tight_layout()
    return fig


def write_csv_atomic(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` to a temporary file beside `path`, then rename it over `path`.

    A crash or Ctrl-C while writing leaves the previous file whole: readers (tabular_gbm, a
    resumed run) see the old scores or the new ones, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def log_oof(oof: pd.DataFrame, oof_file: str | Path, min_tpr: float) -> None:
    """Write `isic_id, fold, score` to `oof_file` (atomically); log it and the ROC curve."""
    from shared.folds import FOLD_COLUMN
    from shared.plots import roc_figure
    from shared.tracking import get_mlflow

    mlflow = get_mlflow()
    path = write_csv_atomic(oof[[isic.ID, FOLD_COLUMN, "score"]], oof_file)
    mlflow.log_artifact(str(path), artifact_path="oof")
    mlflow.set_tag("oof_file", str(path.resolve()))
    y, s = oof[isic.TARGET].to_numpy(), oof["score"].to_numpy()
    mlflow.log_figure(roc_figure({"image OOF": (y, s)}, min_tpr), "roc_curve.png")
