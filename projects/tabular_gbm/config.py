"""The schema of configs/tabular_gbm: a typo or a wrong type fails at start-up, naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.config import PathsConfig, TrackingConfig
from shared.datasets.isic2024 import IsicDataConfig


@dataclass
class TabularDataConfig(IsicDataConfig):
    image_oof: str | None = None  # image_classifier's OOF scores, joined as a feature


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
    data: TabularDataConfig = field(default_factory=TabularDataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
