"""ISIC 2024 metadata for the GBM: the training frame with its folds (and image OOF scores)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from shared.datasets import isic2024 as isic
from shared.datasets.isic2024_training import load_training_frame
from shared.errors import DataNotFoundError, InputError
from shared.folds import FOLD_COLUMN
from shared.image_feature import training_feature

IMAGE_SCORE = "image_score"


class ImageScoresError(InputError, ValueError):
    """The image score file does not give exactly one score per lesion (or other folds)."""


class TrainingFrame(NamedTuple):
    df: pd.DataFrame  # metadata + fold (+ image_score)
    extra: list[str]  # feature columns beyond the metadata (image_score when stacking)
    paths: list[Path]  # files that fingerprint the data
    bad_values: dict[str, int]  # per column: text read as missing (data.on_bad_values=warn)


def load_frame(data_cfg) -> TrainingFrame:
    """The training frame with its folds, joined with the image OOF scores when configured."""
    df = load_training_frame(data_cfg)
    bad_values = dict(df.attrs.get("bad_values", {}))
    paths = [Path(data_cfg.dir) / isic.TRAIN_CSV, Path(data_cfg.folds_file)]
    if not data_cfg.image_oof:
        return TrainingFrame(df, [], paths, bad_values)
    oof_path = Path(data_cfg.image_oof)
    return TrainingFrame(
        join_image_oof(df, oof_path), [IMAGE_SCORE], [*paths, oof_path], bad_values
    )


def read_image_scores(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """The image model's score file, failing unless every id appears once with a score."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"image score file not found: {path.resolve()}. Run image_classifier first "
            "(make image-classifier-smoke writes its OOF scores; its predict.py scores a test "
            "set) or leave the image scores out."
        )
    scores = pd.read_csv(path, dtype={isic.ID: str})
    isic.check_columns(scores, columns, str(path))
    dup = scores[isic.ID].duplicated(keep=False)
    if dup.any():
        ids = sorted(scores.loc[dup, isic.ID].unique())
        raise ImageScoresError(
            f"image score file {path} lists {len(ids)} {isic.ID}(s) more than once, "
            f"e.g. {ids[:5]}: one score per lesion expected"
        )
    return scores[columns]


def _check_every_lesion_scored(merged: pd.DataFrame, path: Path, column: str = "score") -> None:
    missing = merged.loc[merged[column].isna(), isic.ID]
    if len(missing):
        raise ImageScoresError(
            f"image score file {path} has no score for {len(missing)} of {len(merged)} lesions, "
            f"e.g. {missing.head(5).tolist()}; score every lesion with image_classifier"
        )


def join_image_oof(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Add image_classifier's out-of-fold score as `image_score`, checking the folds agree.

    One score per lesion (a repeated id would duplicate rows, a missing one would leave a
    hole), and scores predicted in another fold layout would leak (a lesion's score could come
    from a model that saw it), so any of these fails naming the ids.
    """
    path = Path(path)
    oof = read_image_scores(path, [isic.ID, FOLD_COLUMN, "score"])
    merged = df.merge(oof, on=isic.ID, how="left", suffixes=("", "_image"), validate="one_to_one")
    _check_every_lesion_scored(merged, path)
    mismatch = merged[FOLD_COLUMN] != merged[f"{FOLD_COLUMN}_image"]
    if mismatch.any():
        first = merged.loc[mismatch, isic.ID].head(3).tolist()
        raise ImageScoresError(
            f"folds of {path} disagree with this data set's fold file for {int(mismatch.sum())} "
            f"lesions (e.g. {first}); train image_classifier on the same folds file"
        )
    merged = merged.drop(columns=[f"{FOLD_COLUMN}_image"])
    # the training form of the one image feature (shared.image_feature)
    merged[IMAGE_SCORE] = training_feature(
        merged["score"].to_numpy(), merged[FOLD_COLUMN].to_numpy()
    )
    return merged.drop(columns=["score"])


def join_image_scores(metadata: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Predict time: add the image model's `image_score` (as its predict.py / pyfunc wrote
    it: `isic_id, image_score`) unchanged, failing by id where a lesion has no score.

    Never re-ranked within the batch: a lesion's feature must not depend on which other
    lesions are scored with it."""
    path = Path(path)
    scores = read_image_scores(path, [isic.ID, IMAGE_SCORE])
    merged = metadata.merge(scores, on=isic.ID, how="left", validate="one_to_one")
    _check_every_lesion_scored(merged, path, IMAGE_SCORE)
    return merged
