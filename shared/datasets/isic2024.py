"""ISIC 2024 (Kaggle `isic-2024-challenge`) metadata: columns, reading, checks.

Shared by tabular_gbm and image_classifier, which read the same files and the same folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shared.config import require_dir
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
    generate: bool
    synthetic: SyntheticConfig | None


class MissingColumnsError(InputError, KeyError):
    """The metadata lacks columns the pipeline needs."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def check_columns(df: pd.DataFrame, required: list[str], source: str) -> None:
    """Raise MissingColumnsError naming every required column `df` lacks."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MissingColumnsError(f"{source} lacks required column(s): {', '.join(missing)}")


def read_metadata(path: str | Path, train: bool = True) -> pd.DataFrame:
    """Read a metadata CSV with the competition's dtypes; 'NA' and blanks become NaN.

    Extra columns are kept (and ignored downstream); missing required ones fail by name.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"metadata file not found: {path.resolve()}. {HOW_TO_GET}")
    df = pd.read_csv(path, na_values=["NA", ""], keep_default_na=True, low_memory=False)
    check_columns(df, REQUIRED_TRAIN if train else REQUIRED_TEST, path.name)
    for col in NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in CATEGORICAL:
        df[col] = df[col].astype("string")
    df[ID] = df[ID].astype(str)
    df[PATIENT] = df[PATIENT].astype(str)
    if train:
        df[TARGET] = df[TARGET].astype("int64")
    return df


def train_paths(data_dir: str | Path) -> tuple[Path, Path]:
    """(train-metadata.csv, train-image.hdf5) under `data_dir`, failing clearly if absent."""
    root = require_dir(data_dir, "ISIC 2024 data folder", HOW_TO_GET)
    csv = root / TRAIN_CSV
    if not csv.is_file():
        raise DataNotFoundError(f"{TRAIN_CSV} not found in {root.resolve()}. {HOW_TO_GET}")
    return csv, root / TRAIN_HDF5


ORACLE_CSV = "smoke-oracle.csv"


def read_oracle(data_dir: str | Path) -> pd.DataFrame | None:
    """`isic_id, true_probability` written by the smoke generator; None for real data."""
    path = Path(data_dir) / ORACLE_CSV
    return pd.read_csv(path) if path.is_file() else None


def load_training_frame(data_cfg: IsicDataConfig) -> pd.DataFrame:
    """train-metadata.csv with the shared fold column (the fold file is created on first use).

    Smoke configs (`generate: true`) write the generated data set first when it is missing.
    Both ISIC projects start here, so they always train on the same rows and folds.
    """
    from shared.datasets.isic2024_synthetic import ensure_dataset
    from shared.folds import attach_folds, load_or_create_folds

    if data_cfg.generate:
        ensure_dataset(data_cfg.dir, **dict(data_cfg.synthetic or {}))
    csv, _ = train_paths(data_cfg.dir)
    df = read_metadata(csv, train=True)
    folds = load_or_create_folds(
        df,
        data_cfg.folds_file,
        id_col=ID,
        group_col=data_cfg.group_col,
        target_col=TARGET,
        n_splits=data_cfg.n_folds,
        seed=data_cfg.fold_seed,
    )
    return attach_folds(df, folds, ID)
