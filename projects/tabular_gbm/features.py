"""Feature engineering after the top ISIC 2024 public solutions, as small tested functions.

Every function takes the metadata frame and returns new columns; none reads the target or a
train-only column (`build_features` checks its own output for that). Per-patient statistics
use the patient's own lesions in the frame being scored, as the competition allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shared.datasets import isic2024 as isic

EPS = 1e-6
MISSING = "__missing__"


def lesion_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Shape, size and colour ratios/interactions of one lesion."""
    d = df
    color_diff = np.sqrt(d.tbp_lv_deltaA**2 + d.tbp_lv_deltaB**2 + d.tbp_lv_deltaL**2)
    return pd.DataFrame(
        {
            "lesion_size_ratio": d.tbp_lv_minorAxisMM / (d.clin_size_long_diam_mm + EPS),
            "lesion_shape_index": d.tbp_lv_areaMM2 / (d.tbp_lv_perimeterMM**2 + EPS),
            "perimeter_to_area_ratio": d.tbp_lv_perimeterMM / (d.tbp_lv_areaMM2 + EPS),
            "hue_contrast": (d.tbp_lv_H - d.tbp_lv_Hext).abs(),
            "luminance_contrast": (d.tbp_lv_L - d.tbp_lv_Lext).abs(),
            "lesion_color_difference": color_diff,
            "color_contrast_std": color_diff / np.sqrt(3.0),
            "border_complexity": d.tbp_lv_norm_border + d.tbp_lv_symm_2axis,
            "border_color_interaction": d.tbp_lv_norm_border * d.tbp_lv_norm_color,
            "symmetry_border_consistency": d.tbp_lv_symm_2axis * d.tbp_lv_norm_border,
            "color_uniformity": d.tbp_lv_color_std_mean / (d.tbp_lv_radial_color_std_max + EPS),
            "color_consistency": d.tbp_lv_stdL / (d.tbp_lv_Lext + EPS),
            "lesion_visibility_score": d.tbp_lv_deltaLBnorm + d.tbp_lv_norm_color,
            "shape_color_composite": (
                d.tbp_lv_color_std_mean + d.tbp_lv_area_perim_ratio + d.tbp_lv_symm_2axis
            )
            / 3.0,
            "size_age_interaction": d.clin_size_long_diam_mm * d.age_approx,
            "log_area": np.log1p(d.tbp_lv_areaMM2.clip(lower=0)),
        },
        index=df.index,
    )


def position_features(df: pd.DataFrame) -> pd.DataFrame:
    """Distance of the lesion from the body's origin in the 3D TBP model."""
    d = df
    return pd.DataFrame(
        {"position_distance_3d": np.sqrt(d.tbp_lv_x**2 + d.tbp_lv_y**2 + d.tbp_lv_z**2)},
        index=df.index,
    )


def patient_normalise(
    df: pd.DataFrame, columns: list[str], group_col: str = isic.PATIENT, min_std: float = EPS
) -> pd.DataFrame:
    """Z-score of each column within its patient: how a lesion differs from its siblings.

    A patient with one lesion (or constant values) gets 0: nothing to compare with.
    """
    groups = df.groupby(group_col, sort=False)[columns]
    mean = groups.transform("mean")
    std = groups.transform("std").fillna(0.0)
    z = (df[columns] - mean) / std.where(std > min_std, np.inf)
    return z.fillna(0.0).add_suffix("_patient_norm")


def patient_counts(df: pd.DataFrame, group_col: str = isic.PATIENT) -> pd.DataFrame:
    """How many lesions the patient has, in total and at this site."""
    site = df["anatom_site_general"].astype("string").fillna(MISSING)
    return pd.DataFrame(
        {
            "patient_lesion_count": df.groupby(group_col)[group_col]
            .transform("size")
            .astype(float),
            "patient_site_count": df.groupby([df[group_col], site])[group_col]
            .transform("size")
            .astype(float),
        },
        index=df.index,
    )


@dataclass
class FeatureSpec:
    """What `build_features` learned from the training frame: category vocabularies, columns."""

    categories: dict[str, list[str]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    extra_numeric: list[str] = field(default_factory=list)  # e.g. image_score when stacking

    def to_dict(self) -> dict:
        return {
            "categories": self.categories,
            "columns": self.columns,
            "extra_numeric": self.extra_numeric,
        }

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        return cls(**d)


def fit_spec(df: pd.DataFrame, extra_numeric: list[str] | None = None) -> FeatureSpec:
    """Learn the category vocabulary of the training frame (sorted, so codes are stable)."""
    cats = {
        c: sorted(df[c].astype("string").fillna(MISSING).unique().tolist())
        for c in isic.CATEGORICAL
    }
    return FeatureSpec(categories=cats, extra_numeric=list(extra_numeric or []))


def encode_categories(df: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Categoricals with the training vocabulary; unseen values and NaN become the missing code."""
    out = {}
    for col, vocab in spec.categories.items():
        values = df[col].astype("string").fillna(MISSING)
        values = values.where(values.isin(vocab), MISSING)
        out[col] = pd.Categorical(values, categories=sorted(set(vocab) | {MISSING}))
    return pd.DataFrame(out, index=df.index)


def build_features(
    df: pd.DataFrame,
    spec: FeatureSpec,
    *,
    patient_norm: bool = True,
    counts: bool = True,
    min_patient_std: float = EPS,
) -> pd.DataFrame:
    """Metadata frame -> model matrix (numeric columns + pandas categoricals).

    Reads only `isic.NUMERIC`, `isic.CATEGORICAL`, the patient id and `spec.extra_numeric`,
    so neither the target nor a train-only column can reach a model.
    """
    isic.check_columns(df, isic.REQUIRED_TEST + spec.extra_numeric, "metadata")
    numeric_cols = isic.NUMERIC + spec.extra_numeric
    # A frame handed to the registered model directly: text in a numeric column fails by name.
    base, _ = isic.coerce_numeric(df[numeric_cols], numeric_cols, "metadata", in_file=False)
    # engineered from the coerced floats: a column missing on every row of a batch (a patient
    # whose age is unknown) arrives as None objects, which arithmetic would leave as objects
    engineered = pd.concat([lesion_ratios(base), position_features(base)], axis=1)
    numeric = pd.concat([base, engineered], axis=1).replace([np.inf, -np.inf], np.nan)
    parts = [numeric]
    if patient_norm:
        with_patient = numeric.assign(**{isic.PATIENT: df[isic.PATIENT].values})
        parts.append(
            patient_normalise(with_patient, list(numeric.columns), min_std=min_patient_std)
        )
    if counts:
        parts.append(patient_counts(df))
    parts.append(encode_categories(df, spec))
    features = pd.concat(parts, axis=1)
    forbidden = {isic.TARGET, *isic.TRAIN_ONLY} & set(features.columns)
    if forbidden:  # pragma: no cover - guarded by construction, checked anyway
        raise AssertionError(f"leaking columns in features: {sorted(forbidden)}")
    if spec.columns:
        features = features[spec.columns]
    return features
