"""Reading train-metadata.csv: what passes as missing, and what fails loudly, naming the place."""

import numpy as np
import pandas as pd
import pytest

from projects.tabular_gbm.config import TabularGBMConfig
from shared.config import validate
from shared.datasets import isic2024 as isic
from shared.datasets.isic2024_synthetic import generate_metadata
from shared.datasets.isic2024_training import load_training_frame
from shared.errors import InputError


@pytest.fixture(scope="module")
def meta():
    df = generate_metadata(n_patients=6, mean_lesions=5, positive_rate=0.2, seed=0)
    return df[isic.TRAIN_COLUMNS].reset_index(drop=True)


def _write(df, tmp_path, name="train-metadata.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False, na_rep="NA")
    return path


def _with(meta, col, row, value):
    df = meta.copy()
    df[col] = df[col].astype(object)
    df.loc[row, col] = value
    return df


def test_na_and_empty_are_missing_values_not_errors(tmp_path, meta):
    df = _with(meta, "age_approx", 0, np.nan)  # written as NA
    path = _write(df, tmp_path)
    text = path.read_text().splitlines()
    text[2] = text[2].replace(f",{meta['age_approx'][1]},", ",,", 1)  # an empty field too
    path.write_text("\n".join(text) + "\n")
    out = isic.read_metadata(path)
    assert out["age_approx"][:2].isna().all() and out["age_approx"].dtype == np.float64
    assert out.attrs["bad_values"] == {}


@pytest.mark.parametrize("col, value", [("age_approx", "sixty"), ("clin_size_long_diam_mm", "3,5")])
def test_text_in_a_numeric_column_fails_naming_column_file_and_row(tmp_path, meta, col, value):
    path = _write(_with(meta, col, 3, value), tmp_path)
    with pytest.raises(InputError) as err:
        isic.read_metadata(path)
    msg = str(err.value)
    # the row is line 5 of the file: header, then rows 0..3
    assert col in msg and str(path) in msg and f"line 5: '{value}'" in msg
    assert "on_bad_values=warn" in msg


def test_warn_reads_bad_values_as_missing_and_counts_them(tmp_path, meta):
    df = _with(meta, "age_approx", 3, "sixty")
    df = _with(df, "age_approx", 4, "old")
    df = _with(df, "clin_size_long_diam_mm", 0, "3,5")
    path = _write(df, tmp_path)
    with pytest.warns(isic.BadValuesWarning, match="age_approx: 2"):
        out = isic.read_metadata(path, on_bad_values="warn")
    assert out["age_approx"][3:5].isna().all()
    assert out["age_approx"][5] == meta["age_approx"][5]
    assert out.attrs["bad_values"] == {"age_approx": 2, "clin_size_long_diam_mm": 1}


def test_an_unknown_on_bad_values_setting_is_a_config_error(tmp_path, meta):
    with pytest.raises(InputError, match="data.on_bad_values"):
        isic.read_metadata(_write(meta, tmp_path), on_bad_values="ignore")


def test_a_target_that_is_not_0_or_1_names_the_column_and_file(tmp_path, meta):
    path = _write(_with(meta, "target", 2, "yes"), tmp_path)
    with pytest.raises(InputError, match=r"column target of .*train-metadata.csv .*line 4: 'yes'"):
        isic.read_metadata(path)
    path = _write(_with(meta, "target", 1, 2), tmp_path)
    with pytest.raises(InputError, match="must be 0 or 1"):
        isic.read_metadata(path)


def test_a_header_only_file_says_it_has_no_rows(tmp_path, meta):
    path = _write(meta.iloc[:0], tmp_path)
    with pytest.raises(InputError, match="header but no rows"):
        isic.read_metadata(path)
    path.write_text("")
    with pytest.raises(InputError, match="is empty"):
        isic.read_metadata(path)


def test_missing_or_repeated_ids_fail_by_name(tmp_path, meta):
    dup = pd.concat([meta, meta.iloc[[2]]], ignore_index=True)
    with pytest.raises(InputError, match=meta[isic.ID][2]):
        isic.read_metadata(_write(dup, tmp_path))
    with pytest.raises(InputError, match=r"patient_id .* empty on 1 rows"):
        isic.read_metadata(_write(_with(meta, isic.PATIENT, 0, np.nan), tmp_path))


def test_the_training_frame_of_a_header_only_file_says_so_not_cannot_fill_folds(
    project_config, tmp_path, meta
):
    _write(meta.iloc[:0], tmp_path)
    cfg = project_config(
        "tabular_gbm",
        "experiment=full",
        f"data.dir={tmp_path}",
        f"data.folds_file={tmp_path}/folds.csv",
    )
    with pytest.raises(InputError, match="no rows"):
        load_training_frame(validate(cfg, TabularGBMConfig).data)
