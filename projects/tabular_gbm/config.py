"""The schema of configs/tabular_gbm: types only (values live in the YAML files).

A typo or a wrong type fails at start-up, naming the key; a key left without a value too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.config import PathsConfig, TrackingConfig
from shared.datasets.isic2024 import IsicDataConfig


@dataclass
class TabularDataConfig(IsicDataConfig):
    image_oof: str | None  # image_classifier's OOF scores, joined as a feature


@dataclass
class FeaturesConfig:
    patient_norm: bool
    patient_counts: bool
    min_patient_std: float


@dataclass
class CVConfig:
    folds: list[int] | None  # null = every fold (but data.holdout_fold); a list = a partial run


@dataclass
class LightGBMConfig:
    num_boost_round: int
    params: dict[str, Any]


@dataclass
class CatBoostConfig:
    params: dict[str, Any]


@dataclass
class DaskConfig:
    scheduler: str | None  # a running cluster's address; null = a LocalCluster in this process
    n_workers: int
    threads_per_worker: int
    processes: bool
    connect_timeout_s: int


@dataclass
class ModelConfig:
    neg_ratio: float
    n_bags: int  # draws of the negatives per fold, one LightGBM + CatBoost each, averaged
    min_tpr: float
    ensemble_weights: dict[str, float]
    lightgbm: LightGBMConfig
    catboost: CatBoostConfig
    engine: str  # local | dask (LightGBM only; CatBoost always fits on this machine)
    dask: DaskConfig


@dataclass
class TabularGBMConfig:
    seed: int
    paths: PathsConfig
    tracking: TrackingConfig
    data: TabularDataConfig
    features: FeaturesConfig
    cv: CVConfig
    model: ModelConfig
