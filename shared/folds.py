"""Patient-grouped fold assignment, written once per data set and read by every project.

The fold file is the contract between tabular_gbm and image_classifier: both read the same
file, so out-of-fold predictions of one can be a feature of the other without leakage.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from shared.errors import InputError

FOLD_COLUMN = "fold"


class FoldLeakageError(InputError, ValueError):
    """A group (patient) appears in more than one fold."""


def assign_folds(
    df: pd.DataFrame,
    *,
    id_col: str,
    group_col: str,
    target_col: str,
    n_splits: int,
    seed: int,
) -> pd.DataFrame:
    """Return `id_col, group_col, fold` with StratifiedGroupKFold, deterministic for a seed."""
    for col in (id_col, group_col, target_col):
        if col not in df.columns:
            raise KeyError(f"fold assignment needs column '{col}'")
    n_groups = df[group_col].nunique()
    if n_groups < n_splits:
        raise ValueError(f"{n_groups} groups in '{group_col}' cannot fill {n_splits} folds")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = pd.Series(-1, index=df.index, dtype="int64")
    for fold, (_, valid_idx) in enumerate(splitter.split(df, df[target_col], df[group_col])):
        folds.iloc[valid_idx] = fold
    out = pd.DataFrame({id_col: df[id_col].values, group_col: df[group_col].values})
    out[FOLD_COLUMN] = folds.values
    check_no_group_leakage(out, group_col)
    return out


def check_no_group_leakage(folds: pd.DataFrame, group_col: str) -> None:
    """Raise FoldLeakageError naming the first groups that appear in two folds."""
    per_group = folds.groupby(group_col)[FOLD_COLUMN].nunique()
    leaking = per_group[per_group > 1]
    if len(leaking):
        raise FoldLeakageError(
            f"{len(leaking)} groups of '{group_col}' appear in several folds, "
            f"e.g. {list(leaking.index[:5])}"
        )


def load_or_create_folds(
    df: pd.DataFrame,
    path: str | Path,
    *,
    id_col: str,
    group_col: str,
    target_col: str,
    n_splits: int,
    seed: int,
) -> pd.DataFrame:
    """Read the fold file at `path`, or create and write it when it does not exist.

    An existing file must cover every id of `df` with the same groups; otherwise it belongs to
    another data set and using it would be wrong, so this raises instead of guessing.
    """
    path = Path(path)
    if path.exists():
        folds = pd.read_csv(path)
        missing = set(df[id_col]) - set(folds[id_col])
        if missing:
            raise ValueError(
                f"fold file {path} lacks {len(missing)} ids of this data set "
                f"(e.g. {sorted(missing)[:3]}); delete it to re-create the folds"
            )
        if folds[FOLD_COLUMN].nunique() != n_splits:
            raise ValueError(
                f"fold file {path} has {folds[FOLD_COLUMN].nunique()} folds, config asks for "
                f"{n_splits}; delete it or change the config"
            )
        check_no_group_leakage(folds, group_col)
        return folds
    folds = assign_folds(
        df, id_col=id_col, group_col=group_col, target_col=target_col, n_splits=n_splits, seed=seed
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    folds.to_csv(path, index=False)
    return folds


def attach_folds(df: pd.DataFrame, folds: pd.DataFrame, id_col: str) -> pd.DataFrame:
    """Return `df` with a `fold` column taken from the fold file (by id)."""
    mapping = folds.set_index(id_col)[FOLD_COLUMN]
    out = df.copy()
    out[FOLD_COLUMN] = out[id_col].map(mapping)
    if out[FOLD_COLUMN].isna().any():
        n = int(out[FOLD_COLUMN].isna().sum())
        raise ValueError(f"{n} rows have no fold in the fold file")
    out[FOLD_COLUMN] = out[FOLD_COLUMN].astype("int64")
    return out
