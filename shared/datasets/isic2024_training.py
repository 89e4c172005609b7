"""The training rows both ISIC projects start from: the metadata with the shared fold column,
the smoke data set generated first where the config asks for it. Above `isic2024` (the format)
and `isic2024_synthetic` (the generator), which never import this module.
"""

from __future__ import annotations

import pandas as pd

from shared.datasets import isic2024 as isic
from shared.datasets.isic2024_synthetic import ensure_dataset
from shared.folds import FOLD_COLUMN, attach_folds, load_or_create_folds


def load_training_frame(data_cfg: isic.IsicDataConfig) -> pd.DataFrame:
    """train-metadata.csv with the shared fold column (the fold file is created on first use).

    Smoke configs (`generate: true`) write the generated data set first when it is missing.
    Both ISIC projects start here, so they always train on the same rows and folds. The
    patients of `holdout_fold` are dropped (a sweep selects on them; see tools.sweep).
    """
    if data_cfg.generate:
        ensure_dataset(data_cfg.dir, **dict(data_cfg.synthetic or {}))
    csv, _ = isic.train_paths(data_cfg.dir)
    df = isic.read_metadata(csv, train=True, on_bad_values=data_cfg.on_bad_values)
    folds = load_or_create_folds(
        df,
        data_cfg.folds_file,
        id_col=isic.ID,
        group_col=data_cfg.group_col,
        target_col=isic.TARGET,
        n_splits=data_cfg.n_folds,
        seed=data_cfg.fold_seed,
    )
    df = attach_folds(df, folds, isic.ID)
    if data_cfg.holdout_fold is not None:  # set aside: never trained on, never scored
        attrs = dict(df.attrs)
        df = df[df[FOLD_COLUMN] != data_cfg.holdout_fold].reset_index(drop=True)
        df.attrs.update(attrs)
    return df
