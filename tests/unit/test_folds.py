import numpy as np
import pandas as pd
import pytest

from shared.folds import (
    FoldLeakageError,
    assign_folds,
    attach_folds,
    check_no_group_leakage,
    load_or_create_folds,
)


def _frame(n_groups=40, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 12, n_groups)
    groups = np.repeat([f"IP_{g}" for g in range(n_groups)], sizes)
    return pd.DataFrame(
        {
            "isic_id": [f"ISIC_{i}" for i in range(len(groups))],
            "patient_id": groups,
            "target": (rng.random(len(groups)) < 0.1).astype(int),
        }
    )


KW = dict(id_col="isic_id", group_col="patient_id", target_col="target", n_splits=5)


def test_folds_never_split_a_patient():
    folds = assign_folds(_frame(), seed=1, **KW)
    assert folds.groupby("patient_id")["fold"].nunique().max() == 1
    assert set(folds["fold"]) == set(range(5))


def test_folds_are_deterministic_for_a_seed():
    df = _frame()
    a, b = assign_folds(df, seed=3, **KW), assign_folds(df, seed=3, **KW)
    c = assign_folds(df, seed=4, **KW)
    assert a.equals(b)
    assert not a["fold"].equals(c["fold"])


def test_folds_spread_positives_over_folds():
    df = _frame(200)
    folds = attach_folds(df, assign_folds(df, seed=0, **KW), "isic_id")
    per_fold = folds.groupby("fold")["target"].sum()
    assert per_fold.min() > 0


def test_leakage_check_raises_naming_the_group():
    bad = pd.DataFrame({"isic_id": ["a", "b"], "patient_id": ["IP_1", "IP_1"], "fold": [0, 1]})
    with pytest.raises(FoldLeakageError, match="IP_1"):
        check_no_group_leakage(bad, "patient_id")


def test_fold_file_is_written_once_and_reused(tmp_path):
    df = _frame()
    path = tmp_path / "folds.csv"
    first = load_or_create_folds(df, path, seed=0, **KW)
    mtime = path.stat().st_mtime_ns
    second = load_or_create_folds(df, path, seed=99, **KW)  # seed ignored: file wins
    assert path.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second)


def test_fold_file_of_another_data_set_is_refused(tmp_path):
    path = tmp_path / "folds.csv"
    load_or_create_folds(_frame(seed=0), path, seed=0, **KW)
    other = _frame(seed=0)
    other["isic_id"] = other["isic_id"] + "_x"
    with pytest.raises(ValueError, match="lacks"):
        load_or_create_folds(other, path, seed=0, **KW)


def test_too_few_groups_for_the_folds():
    with pytest.raises(ValueError, match="cannot fill"):
        assign_folds(_frame(3), seed=0, **KW)
