"""ISIC 2024 metadata for the GBM: the training frame with its folds (and image OOF scores)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shared.datasets import isic2024 as isic
from shared.errors import DataNotFoundError
from shared.folds import FOLD_COLUMN

IMAGE_SCORE = "image_score"


def load_frame(data_cfg) -> tuple[pd.DataFrame, list[str], list[Path]]:
    """(frame with folds [+ image score], extra feature columns, files fingerprinting the data)."""
    df = isic.load_training_frame(data_cfg)
    paths = [Path(data_cfg.dir) / isic.TRAIN_CSV, Path(data_cfg.folds_file)]
    if not data_cfg.image_oof:
        return df, [], paths
    return join_image_oof(df, data_cfg.image_oof), [IMAGE_SCORE], [*paths, Path(data_cfg.image_oof)]


def join_image_oof(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Add image_classifier's out-of-fold score as `image_score`, checking the folds agree.

    Scores predicted in another fold layout would leak (a lesion's score could come from a
    model that saw it), so any disagreement fails.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"image OOF file not found: {path.resolve()}. Run image_classifier first "
            "(make image-classifier-smoke writes it) or unset data.image_oof."
        )
    oof = pd.read_csv(path)
    isic.check_columns(oof, [isic.ID, FOLD_COLUMN, "score"], path.name)
    merged = df.merge(
        oof[[isic.ID, FOLD_COLUMN, "score"]], on=isic.ID, how="left", suffixes=("", "_image")
    )
    missing = merged["score"].isna().sum()
    if missing:
        raise ValueError(f"image OOF file {path} has no score for {missing} of {len(df)} lesions")
    mismatch = merged[FOLD_COLUMN] != merged[f"{FOLD_COLUMN}_image"]
    if mismatch.any():
        first = merged.loc[mismatch, isic.ID].head(3).tolist()
        raise ValueError(
            f"folds of {path} disagree with this data set's fold file for {int(mismatch.sum())} "
            f"lesions (e.g. {first}); train image_classifier on the same folds file"
        )
    merged = merged.drop(columns=[f"{FOLD_COLUMN}_image"])
    # Each fold's scores come from a different image model with its own calibration; the
    # percentile within the fold puts them on one scale (at predict time: within the batch).
    merged[IMAGE_SCORE] = merged.groupby(FOLD_COLUMN)["score"].rank(pct=True)
    return merged.drop(columns=["score"])
