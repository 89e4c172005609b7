"""Fold properties pinned by mutation testing (benchmarks/mutation-survivors.md): each test
kills mutants of shared/folds.py that the behaviour tests in test_folds.py let through."""

import re

import numpy as np
import pandas as pd
import pytest

from shared.folds import (
    FoldFileMismatchError,
    _ids,
    assign_folds,
    attach_folds,
    check_fold_file,
    load_or_create_folds,
)

KW = dict(id_col="isic_id", group_col="patient_id", target_col="target")


def _frame(n_groups=30):
    """`n_groups` patients of 3 lesions each, one positive lesion per patient."""
    groups = np.repeat([f"IP_{g}" for g in range(n_groups)], 3)
    return pd.DataFrame(
        {
            "isic_id": [f"ISIC_{i}" for i in range(len(groups))],
            "patient_id": groups,
            "target": np.tile([1, 0, 0], n_groups),
        }
    )


def test_as_many_patients_as_folds_is_enough():
    """Five patients fill five folds, one patient each: the guard refuses fewer, not equal."""
    folds = assign_folds(_frame(5), n_splits=5, seed=0, **KW)
    assert sorted(folds.groupby("fold")["patient_id"].nunique()) == [1] * 5


def test_the_folds_are_as_many_as_the_config_asks():
    """n_splits reaches the splitter: three folds asked, three folds made, every row in one."""
    folds = assign_folds(_frame(), n_splits=3, seed=0, **KW)
    assert set(folds["fold"]) == {0, 1, 2}


def test_a_new_fold_file_holds_the_seeded_folds_in_a_new_folder(tmp_path):
    """The first run creates the folder, writes the folds of its seed (not a random draw) and
    writes them without the frame's index, so the file reads back as the folds themselves."""
    df = _frame()
    path = tmp_path / "data" / "isic" / "folds.csv"
    made = load_or_create_folds(df, path, n_splits=5, seed=7, **KW)
    expected = assign_folds(df, n_splits=5, seed=7, **KW)
    pd.testing.assert_frame_equal(made, expected)
    pd.testing.assert_frame_equal(pd.read_csv(path), expected)


def test_a_refused_fold_file_is_named_with_the_fix(tmp_path):
    """The error names the file to delete and says what deleting it means."""
    path = tmp_path / "folds.csv"
    df = _frame()
    load_or_create_folds(df, path, n_splits=5, seed=0, **KW)
    with pytest.raises(FoldFileMismatchError, match=re.escape(str(path))) as err:
        load_or_create_folds(df.iloc[3:], path, n_splits=5, seed=0, **KW)
    assert "delete it to re-create the folds" in str(err.value)


def test_a_fold_file_without_a_fold_column_is_refused_as_a_mismatch():
    """A file lacking the fold column is a wrong fold file (InputError), not a KeyError."""
    df = _frame()
    no_fold = df[["isic_id", "patient_id"]]
    with pytest.raises(FoldFileMismatchError, match="lacks column"):
        check_fold_file(df, no_fold, "f.csv", id_col="isic_id", group_col="patient_id", n_splits=5)


def test_a_fold_file_with_another_number_of_folds_is_refused_naming_both():
    """A 5-fold file cannot serve a 3-fold config: OOF scores would come from other splits."""
    df = _frame()
    folds = assign_folds(df, n_splits=5, seed=0, **KW)
    with pytest.raises(FoldFileMismatchError, match="has 5 folds, config asks for 3"):
        check_fold_file(df, folds, "f.csv", id_col="isic_id", group_col="patient_id", n_splits=3)


def test_rows_without_a_fold_are_counted_and_folds_stay_integers():
    """attach_folds gives integer fold numbers and refuses rows the file lacks, counting them."""
    df = _frame()
    folds = assign_folds(df, n_splits=5, seed=0, **KW)
    out = attach_folds(df, folds, "isic_id")
    assert out["fold"].dtype == np.int64
    with pytest.raises(ValueError, match=r"^2 rows have no fold"):
        attach_folds(df, folds.iloc[2:], "isic_id")


def test_ids_in_messages_are_the_first_few_in_text_order_and_a_count_of_the_rest():
    """Error messages list ids sorted as text (stable for mixed types) and say how many more."""
    assert _ids([10, 9, 8, 7, 6, 5, 4]) == "10, 4, 5, 6, 7 and 2 more"
    assert _ids([3, 1, 2, 0, 4]) == "0, 1, 2, 3, 4"
    assert _ids(["b", 1]) == "1, b"


def test_scored_folds_accept_exactly_the_folds_zero_to_n_minus_one():
    """cv.folds may name the first fold and the last one, not one past it; the error says
    which folds exist."""
    from shared.config import ConfigError
    from shared.folds import scored_folds

    assert scored_folds(5, [0, 4], None) == [0, 4]
    with pytest.raises(ConfigError, match=r"must be distinct folds 0\.\.4 "):
        scored_folds(5, [5], None)
    with pytest.raises(ConfigError, match=r"is not a fold 0\.\.4$"):
        scored_folds(5, None, 5)
