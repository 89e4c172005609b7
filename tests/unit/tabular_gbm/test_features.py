import numpy as np
import pandas as pd
import pytest

from projects.tabular_gbm.features import (
    MISSING,
    build_features,
    fit_spec,
    patient_counts,
    patient_normalise,
)
from shared.datasets import isic2024 as isic
from shared.datasets.isic2024_synthetic import generate_metadata
from shared.errors import InputError


@pytest.fixture(scope="module")
def meta():
    df = generate_metadata(n_patients=12, mean_lesions=8, positive_rate=0.1, seed=0)
    df = df[[c for c in isic.TRAIN_COLUMNS]]
    for c in isic.CATEGORICAL:
        df[c] = df[c].astype("string")
    return df


def test_patient_normalisation_on_a_hand_made_frame():
    df = pd.DataFrame({"patient_id": ["a", "a", "a", "b"], "size": [1.0, 2.0, 3.0, 10.0]})
    z = patient_normalise(df, ["size"])
    # Patient a: mean 2, sample std 1 -> -1, 0, 1. Patient b has one lesion: nothing to compare.
    assert z["size_patient_norm"].tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0])


def test_constant_feature_within_a_patient_normalises_to_zero():
    df = pd.DataFrame({"patient_id": ["a", "a"], "x": [5.0, 5.0]})
    assert patient_normalise(df, ["x"])["x_patient_norm"].tolist() == [0.0, 0.0]


def test_patient_counts():
    df = pd.DataFrame(
        {
            "patient_id": ["a", "a", "a", "b"],
            "anatom_site_general": ["head/neck", "head/neck", None, "head/neck"],
        }
    )
    c = patient_counts(df)
    assert c["patient_lesion_count"].tolist() == [3, 3, 3, 1]
    assert c["patient_site_count"].tolist() == [2, 2, 1, 1]


def test_features_never_use_target_or_train_only_columns(meta):
    spec = fit_spec(meta)
    X = build_features(meta, spec)
    assert not ({isic.TARGET, *isic.TRAIN_ONLY} & set(X.columns))
    # Scrambling every forbidden column leaves every feature unchanged.
    scrambled = meta.copy()
    rng = np.random.default_rng(0)
    scrambled[isic.TARGET] = rng.permutation(scrambled[isic.TARGET].to_numpy())
    scrambled["tbp_lv_dnn_lesion_confidence"] = rng.random(len(meta))
    scrambled["iddx_1"] = "Malignant"
    pd.testing.assert_frame_equal(X, build_features(scrambled, spec))


def test_unseen_categories_and_nans_map_to_missing(meta):
    spec = fit_spec(meta)
    new = meta.head(3).copy()
    new["anatom_site_general"] = pd.array(["moon", pd.NA, "head/neck"], dtype="string")
    new["age_approx"] = np.nan
    X = build_features(new, spec)
    assert X["anatom_site_general"].tolist()[:2] == [MISSING, MISSING]
    assert X["age_approx"].isna().all()


@pytest.mark.parametrize("col", ["sex", "anatom_site_general"])
def test_categories_encode_the_same_in_train_and_predict(meta, col):
    """A predict batch holding only some of the values (here: only the last one of the
    vocabulary, one row) must get the training codes, not codes of its own vocabulary."""
    spec = fit_spec(meta)
    train = build_features(meta, spec)[col]
    last = spec.categories[col][-1]
    batch = meta[meta[col].astype("string").fillna(MISSING) == last].head(1)
    scored = build_features(batch, spec)[col]
    assert list(scored.cat.categories) == list(train.cat.categories)
    assert scored.cat.codes.tolist() == train.loc[batch.index].cat.codes.tolist()
    assert scored.cat.codes.iloc[0] == list(train.cat.categories).index(last) > 0


def test_missing_required_column_is_named(meta):
    with pytest.raises(KeyError, match="tbp_lv_H"):
        build_features(meta.drop(columns=["tbp_lv_H"]), fit_spec(meta))


def test_text_in_a_numeric_column_of_a_scored_frame_fails_by_name(meta):
    """The registered model takes a DataFrame directly: no silent NaN there either."""
    bad = meta.head(3).astype({"clin_size_long_diam_mm": object})
    bad.loc[bad.index[1], "clin_size_long_diam_mm"] = "3,5"
    with pytest.raises(InputError, match=r"clin_size_long_diam_mm: 1 \(row 1: '3,5'\)"):
        build_features(bad, fit_spec(meta))


def test_extra_columns_are_ignored(meta):
    spec = fit_spec(meta)
    X = build_features(meta.assign(some_new_column=1.0), spec)
    assert "some_new_column" not in X.columns


def test_read_metadata_turns_na_strings_into_nan(tmp_path, meta):
    path = tmp_path / "train-metadata.csv"
    m = meta.copy()
    m.loc[m.index[0], "age_approx"] = np.nan
    m.to_csv(path, index=False, na_rep="NA")
    assert "NA" in path.read_text()
    df = isic.read_metadata(path)
    assert np.isnan(df["age_approx"].iloc[0]) and df["age_approx"].dtype == np.float64
