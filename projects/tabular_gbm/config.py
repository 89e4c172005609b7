"""The schema of configs/tabular_gbm: a typo or a wrong type fails at start-up, naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.config import PathsConfig, TrackingConfig


@dataclass
class SyntheticConfig:
    n_patients: int = 150
    mean_lesions: float = 40.0
    positive_rate: float = 0.03
    image_size: int = 128
    test_fraction: float = 0.1
    seed: int = 0


@dataclass
class IsicDataConfig:
    name: str = "isic2024"
    dir: str = "???"
    folds_file: str = "???"
    n_folds: int = 5
    fold_seed: int = 42
    group_col: str = "patient_id"
    generate: bool = False
    synthetic: SyntheticConfig | None = None
    image_oof: str | None = None


@dataclass
class FeaturesConfig:
    patient_norm: bool = True
    patient_counts: bool = True
    min_patient_std: float = 1e-6


@dataclass
class LightGBMConfig:
    num_boost_round: int = 200
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class CatBoostConfig:
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    neg_ratio: float = 20.0
    min_tpr: float = 0.8
    ensemble_weights: dict[str, float] = field(default_factory=dict)
    lightgbm: LightGBMConfig = field(default_factory=LightGBMConfig)
    catboost: CatBoostConfig = field(default_factory=CatBoostConfig)


@dataclass
class TabularGBMConfig:
    seed: int = 42
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    data: IsicDataConfig = field(default_factory=IsicDataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
