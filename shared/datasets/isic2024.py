"""ISIC 2024 (Kaggle `isic-2024-challenge`) metadata: columns, reading, checks.

Shared by tabular_gbm and image_classifier, which read the same files and the same folds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shared.config import ConfigError, require_dir
from shared.errors import DataNotFoundError, InputError

TRAIN_CSV = "train-metadata.csv"
TEST_CSV = "test-metadata.csv"
TRAIN_HDF5 = "train-image.hdf5"
TEST_HDF5 = "test-image.hdf5"
HOW_TO_GET = (
    "Download it with `kaggle competitions download -c isic-2024-challenge` and unzip it; the "
    "folder must hold train-metadata.csv and train-image.hdf5."
)

ID, TARGET, PATIENT = "isic_id", "target", "patient_id"

TBP_NUMERIC = [
    "tbp_lv_A",
    "tbp_lv_Aext",
    "tbp_lv_B",
    "tbp_lv_Bext",
    "tbp_lv_C",
    "tbp_lv_Cext",
    "tbp_lv_H",
    "tbp_lv_Hext",
    "tbp_lv_L",
    "tbp_lv_Lext",
    "tbp_lv_areaMM2",
    "tbp_lv_area_perim_ratio",
    "tbp_lv_color_std_mean",
    "tbp_lv_deltaA",
    "tbp_lv_deltaB",
    "tbp_lv_deltaL",
    "tbp_lv_deltaLB",
    "tbp_lv_deltaLBnorm",
    "tbp_lv_eccentricity",
    "tbp_lv_minorAxisMM",
    "tbp_lv_nevi_confidence",
    "tbp_lv_norm_border",
    "tbp_lv_norm_color",
    "tbp_lv_perimeterMM",
    "tbp_lv_radial_color_std_max",
    "tbp_lv_stdL",
    "tbp_lv_stdLExt",
    "tbp_lv_symm_2axis",
    "tbp_lv_symm_2axis_angle",
    "tbp_lv_x",
    "tbp_lv_y",
    "tbp_lv_z",
]
NUMERIC = ["age_approx", "clin_size_long_diam_mm", *TBP_NUMERIC]
CATEGORICAL = [
    "sex",
    "anatom_site_general",
    "tbp_tile_type",
    "tbp_lv_location",
    "tbp_lv_location_simple",
    "attribution",
]
OTHER = ["image_type", "copyright_license"]
# Present in train only; they describe the diagnosis, so they must never become features.
TRAIN_ONLY = [
    "lesion_id",
    "iddx_full",
    "iddx_1",
    "iddx_2",
    "iddx_3",
    "iddx_4",
    "iddx_5",
    "mel_mitotic_index",
    "mel_thick_mm",
    "tbp_lv_dnn_lesion_confidence",
]
REQUIRED_TEST = [ID, PATIENT, *NUMERIC, *CATEGORICAL]
REQUIRED_TRAIN = [*REQUIRED_TEST, TARGET]
TRAIN_COLUMNS = [
    ID,
    TARGET,
    PATIENT,
    *NUMERIC[:1],
    "sex",
    "anatom_site_general",
    "clin_size_long_diam_mm",
    "image_type",
    "tbp_tile_type",
    *TBP_NUMERIC,
    "tbp_lv_location",
    "tbp_lv_location_simple",
    "attribution",
    "copyright_license",
    *TRAIN_ONLY,
]


# Schema of the shared config group configs/common/isic2024 (composed as `data`).
@dataclass
class SyntheticConfig:
    n_patients: int
    mean_lesions: float
    positive_rate: float
    image_size: int
    test_fraction: float
    seed: int


@dataclass
class IsicDataConfig:
    name: str
    dir: str
    folds_file: str
    n_folds: int
    fold_seed: int
    group_col: str
    holdout_fold: int | None  # patients set aside (a sweep's selection fold)
    on_bad_values: str  # fail | warn: text in a numeric column (`sixty`, `3,5`)
    generate: bool
    synthetic: SyntheticConfig | None


class MissingColumnsError(InputError, KeyError):
    """The metadata lacks columns the pipeline needs."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class MalformedMetadataError(InputError, ValueError):
    """The metadata file has the right columns but values the public format does not allow."""


class NoRowsError(MalformedMetadataError):
    """The metadata file is empty or holds only its header."""


class BadValuesError(MalformedMetadataError):
    """A numeric column holds text that is neither a number nor a missing-value marker."""


class BadTargetError(MalformedMetadataError):
    """`target` holds something other than 0 or 1."""


class BadValuesWarning(UserWarning):
    """`data.on_bad_values=warn`: unreadable numbers were read as missing."""


ON_BAD_VALUES = ("fail", "warn")
# What the public files write for a missing value (pandas' defaults, `NaN`, `null`, ..., too).
MISSING_MARKERS = ["NA", ""]


def check_columns(df: pd.DataFrame, required: list[str], source: str) -> None:
    """Raise MissingColumnsError naming every required column `df` lacks."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MissingColumnsError(f"{source} lacks required column(s): {', '.join(missing)}")


def _examples(raw: pd.Series, bad: pd.Series, n: int = 3, in_file: bool = True) -> str:
    """`line 5: 'sixty', line 9: '3,5'` for the first offending rows of a CSV read with its
    default index (line 1 is the header); `row <label>` for a frame from elsewhere."""
    rows = raw.index[bad.to_numpy()][:n]
    where = (lambda i: f"line {i + 2}") if in_file else (lambda i: f"row {i}")
    return ", ".join(f"{where(i)}: {raw.loc[i]!r}" for i in rows)


def coerce_numeric(
    df: pd.DataFrame,
    columns: list[str],
    source: str,
    on_bad_values: str = "fail",
    in_file: bool = True,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Numeric columns as float64, and how many values per column were not numbers.

    Missing values (`NA`, empty) are already NaN and pass. Anything else that is not a number
    (`sixty`, a comma decimal `3,5`) fails naming the column, the file and the first rows, or,
    with `on_bad_values="warn"`, becomes NaN with a warning; the counts come back either way.
    """
    if on_bad_values not in ON_BAD_VALUES:
        raise ConfigError(
            f"config key 'data.on_bad_values': one of {', '.join(ON_BAD_VALUES)}, not "
            f"{on_bad_values!r}"
        )
    out = df.copy()
    counts: dict[str, int] = {}
    problems = []
    for col in columns:
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = raw.notna() & num.isna()
        if bad.any():
            counts[col] = int(bad.sum())
            problems.append(f"{col}: {counts[col]} ({_examples(raw, bad, in_file=in_file)})")
        out[col] = num
    if problems and on_bad_values == "fail":
        raise BadValuesError(
            f"{source} has values that are not numbers in {'; '.join(problems)}. Missing values "
            "must be NA or empty; fix the data, or set data.on_bad_values=warn to train with them "
            "read as missing"
        )
    if problems:
        warnings.warn(
            f"{source}: read as missing, not numbers: {'; '.join(problems)}",
            BadValuesWarning,
            stacklevel=2,
        )
    return out, counts


def check_target(df: pd.DataFrame, source: str) -> pd.Series:
    """`target` as int64, or BadTargetError naming the column, file and first bad rows."""
    raw = df[TARGET]
    num = pd.to_numeric(raw, errors="coerce")
    bad = ~num.isin([0, 1])
    if bad.any():
        raise BadTargetError(
            f"column {TARGET} of {source} must be 0 or 1 on every row; {int(bad.sum())} rows are "
            f"not ({_examples(raw, bad)})"
        )
    return num.astype("int64")


def _check_ids(df: pd.DataFrame, source: str) -> None:
    """Every lesion needs an id and a patient (folds group by patient); ids are unique."""
    for col in (ID, PATIENT):
        missing = df[col].isna()
        if missing.any():
            raise MalformedMetadataError(
                f"column {col} of {source} is empty on {int(missing.sum())} rows "
                f"({_examples(df[col], missing)})"
            )
    dup = df[ID].duplicated(keep=False)
    if dup.any():
        raise MalformedMetadataError(
            f"{source} lists {df.loc[dup, ID].nunique()} {ID}(s) more than once, "
            f"e.g. {sorted(df.loc[dup, ID].unique())[:5]}"
        )


def read_metadata(
    path: str | Path, train: bool = True, on_bad_values: str = "fail"
) -> pd.DataFrame:
    """Read a metadata CSV with the competition's dtypes; 'NA' and blanks become NaN.

    Extra columns are kept (and ignored downstream); missing required ones fail by name, and
    so do an empty file, unreadable numbers (see `coerce_numeric`), a target that is not 0/1,
    and missing or duplicate ids. The per-column counts of values read as missing under
    `on_bad_values="warn"` are in `df.attrs["bad_values"]`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"metadata file not found: {path.resolve()}. {HOW_TO_GET}")
    try:
        df = pd.read_csv(path, na_values=MISSING_MARKERS, keep_default_na=True, low_memory=False)
    except pd.errors.EmptyDataError:
        raise NoRowsError(f"{path} is empty: no header, no rows") from None
    except pd.errors.ParserError as exc:
        raise MalformedMetadataError(f"{path} is not a readable CSV: {exc}".strip()) from None
    check_columns(df, REQUIRED_TRAIN if train else REQUIRED_TEST, path.name)
    if df.empty:
        raise NoRowsError(f"{path} has a header but no rows: nothing to train or score")
    _check_ids(df, str(path))
    df, bad_values = coerce_numeric(df, NUMERIC, str(path), on_bad_values)
    for col in CATEGORICAL:
        df[col] = df[col].astype("string")
    df[ID] = df[ID].astype(str)
    df[PATIENT] = df[PATIENT].astype(str)
    if train:
        df[TARGET] = check_target(df, str(path))
    df.attrs["bad_values"] = bad_values
    return df


def train_paths(data_dir: str | Path) -> tuple[Path, Path]:
    """(train-metadata.csv, train-image.hdf5) under `data_dir`, failing clearly if absent."""
    root = require_dir(data_dir, "ISIC 2024 data folder", HOW_TO_GET)
    csv = root / TRAIN_CSV
    if not csv.is_file():
        raise DataNotFoundError(f"{TRAIN_CSV} not found in {root.resolve()}. {HOW_TO_GET}")
    return csv, root / TRAIN_HDF5


ORACLE_CSV = "smoke-oracle.csv"
# The disc holding each generated lesion, as fractions of the image side (smoke-oracle.csv).
LESION_DISC = ("lesion_x", "lesion_y", "lesion_r")


def read_oracle(data_dir: str | Path) -> pd.DataFrame | None:
    """`isic_id, true_probability, split` and the `LESION_DISC` columns written by the smoke
    generator; None for real data."""
    path = Path(data_dir) / ORACLE_CSV
    return pd.read_csv(path) if path.is_file() else None


def oracle_probability(ids: pd.Series, oracle: pd.DataFrame) -> np.ndarray:
    """The generator's true probability of each lesion in `ids`, in that order (NaN where the
    oracle does not know the lesion): the best score any model could give."""
    merged = pd.DataFrame({ID: ids}).merge(oracle[[ID, "true_probability"]], on=ID, how="left")
    return merged["true_probability"].to_numpy()
