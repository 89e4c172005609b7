"""Patient-grouped fold assignment, written once per data set and read by every project.

The fold file is the contract between tabular_gbm and image_classifier: both read the same
file, so out-of-fold predictions of one can be a feature of the other without leakage.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from shared.errors import InputError
from shared.locks import write_atomically

FOLD_COLUMN = "fold"


class FoldLeakageError(InputError, ValueError):
    """A group (patient) appears in more than one fold."""


class FoldFileMismatchError(InputError, ValueError):
    """An existing fold file was made for other data: ids missing, extra or repeated."""


class TooFewGroupsError(InputError, ValueError):
    """Fewer groups (patients) than folds."""


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
    n_pos = int((df[target_col] == 1).sum())
    if n_pos < n_splits:  # a fold without a positive has no pAUC: refuse before writing
        raise TooFewGroupsError(
            f"{n_pos} positive rows ({target_col}=1) cannot give each of {n_splits} folds one; "
            "check the target column or lower data.n_folds"
        )
    n_groups = df[group_col].nunique()
    if n_groups < n_splits:
        raise TooFewGroupsError(f"{n_groups} groups in '{group_col}' cannot fill {n_splits} folds")
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


def _ids(values, n: int = 5) -> str:
    values = sorted(values, key=str)
    more = f" and {len(values) - n} more" if len(values) > n else ""
    return ", ".join(map(str, values[:n])) + more


def check_fold_file(
    df: pd.DataFrame,
    folds: pd.DataFrame,
    source: str | Path,
    *,
    id_col: str,
    group_col: str,
    n_splits: int,
) -> None:
    """Raise unless `folds` assigns exactly the ids of `df`, once each, keeping every group of
    `df` (as the data groups it now) inside one fold.

    A fold file made for other data, or for this data before its patients were regrouped,
    would put a patient's lesions on both sides of a split: OOF scores would leak.
    """
    fix = "delete it to re-create the folds (and re-make any OOF scores made with it)"
    lacking = [c for c in (id_col, FOLD_COLUMN) if c not in folds.columns]
    if lacking:
        raise FoldFileMismatchError(f"fold file {source} lacks column(s) {', '.join(lacking)}")
    repeated = folds.loc[folds[id_col].duplicated(), id_col].unique()
    if len(repeated):
        raise FoldFileMismatchError(
            f"fold file {source} lists {len(repeated)} ids more than once: {_ids(repeated)}; {fix}"
        )
    data_ids, file_ids = set(df[id_col]), set(folds[id_col])
    if missing := data_ids - file_ids:
        raise FoldFileMismatchError(
            f"fold file {source} lacks {len(missing)} ids of this data set: {_ids(missing)}; "
            f"it was made for other data: {fix}"
        )
    if extra := file_ids - data_ids:
        raise FoldFileMismatchError(
            f"fold file {source} holds {len(extra)} ids this data set lacks: {_ids(extra)}; "
            f"it was made for other data: {fix}"
        )
    if folds[FOLD_COLUMN].nunique() != n_splits:
        raise FoldFileMismatchError(
            f"fold file {source} has {folds[FOLD_COLUMN].nunique()} folds, config asks for "
            f"{n_splits}; delete it or change the config"
        )
    joined = df[[id_col, group_col]].merge(folds[[id_col, FOLD_COLUMN]], on=id_col)
    per_group = joined.groupby(group_col)[FOLD_COLUMN].nunique()
    leaking = per_group.index[per_group > 1]
    if len(leaking):
        rows = joined[joined[group_col].isin(leaking[:3])]
        where = "; ".join(
            f"{g} in "
            + " / ".join(f"fold {f}: {_ids(rf[id_col], 2)}" for f, rf in r.groupby(FOLD_COLUMN))
            for g, r in rows.groupby(group_col)
        )
        raise FoldLeakageError(
            f"fold file {source} puts {len(leaking)} '{group_col}' groups of this data set in "
            f"several folds (the data was regrouped since the file was made), e.g. {where}; {fix}"
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

    An existing file is checked against `df` first (`check_fold_file`): it must list exactly
    the ids of `df` and keep each of its groups in one fold; otherwise this raises instead of
    guessing.
    """
    path = Path(path)
    if path.exists():
        folds = pd.read_csv(path)
        check_fold_file(df, folds, path, id_col=id_col, group_col=group_col, n_splits=n_splits)
        return folds
    folds = assign_folds(
        df, id_col=id_col, group_col=group_col, target_col=target_col, n_splits=n_splits, seed=seed
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, folds.to_csv(index=False))  # a run starting beside sees all or none
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


def scored_folds(n_folds: int, requested: list[int] | None, holdout: int | None) -> list[int]:
    """The folds a run scores: `cv.folds` when given, else every fold but the held-out one.

    Checked before any data is read, so `cv.folds=[7]` of five folds fails at start-up
    naming the key instead of training a "fold" on all the data.
    """
    from shared.config import ConfigError

    if holdout is not None and not 0 <= holdout < n_folds:
        raise ConfigError(
            f"config key 'data.holdout_fold': {holdout} is not a fold 0..{n_folds - 1}"
        )
    if requested is None:
        return [k for k in range(n_folds) if k != holdout]
    folds = [int(k) for k in requested]
    bad = [k for k in folds if not 0 <= k < n_folds]
    if not folds or bad or len(set(folds)) != len(folds):
        raise ConfigError(
            f"config key 'cv.folds': {folds} must be distinct folds 0..{n_folds - 1} "
            "(or null for all)"
        )
    if holdout in folds:
        raise ConfigError(f"config key 'cv.folds': fold {holdout} is data.holdout_fold (set aside)")
    return sorted(folds)
