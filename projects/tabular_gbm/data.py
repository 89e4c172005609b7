"""ISIC 2024 metadata for the GBM: the training frame with its folds (and image OOF scores)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shared.datasets import isic2024 as isic
from shared.datasets.isic2024_synthetic import ensure_dataset
from shared.folds import FOLD_COLUMN, attach_folds, load_or_create_folds

IMAGE_SCORE = "image_score"


def prepare_data_dir(data_cfg) -> Path:
    """The data folder; smoke configs generate it first when it is missing."""
    if data_cfg.generate:
        ensure_dataset(data_cfg.dir, **dict(data_cfg.synthetic or {}))
    return Path(data_cfg.dir)


def load_training_frame(data_cfg) -> pd.DataFrame:
    """train-metadata.csv with the shared fold column (created on first use)."""
    csv, _ = isic.train_paths(prepare_data_dir(data_cfg))
    df = isic.read_metadata(csv, train=True)
    folds = load_or_create_folds(
        df,
        data_cfg.folds_file,
        id_col=isic.ID,
        group_col=data_cfg.group_col,
        target_col=isic.TARGET,
        n_splits=data_cfg.n_folds,
        seed=data_cfg.fold_seed,
    )
    return attach_folds(df, folds, isic.ID)


def join_image_oof(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Add image_classifier's out-of-fold score as `image_score`, checking the folds agree.

    Scores predicted in another fold layout would leak (a lesion's score could come from a
    model that saw it), so any disagreement fails.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"image OOF file not found: {path.resolve()}. Run image_classifier first "
            "(it writes oof.csv into its output folder) or unset data.image_oof."
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
