"""The schema of configs/image_classifier: a typo or a wrong type fails at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.config import OptimConfig, PathsConfig, TrackingConfig
from shared.datasets.isic2024 import IsicDataConfig


@dataclass
class SamplingConfig:
    mode: str = "subsample"
    neg_per_pos: float = 20.0


@dataclass
class AugmentConfig:
    crop_scale: list[float] = field(default_factory=lambda: [0.8, 1.0])
    hflip: float = 0.5
    vflip: float = 0.5
    rotation_degrees: float = 90.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])


@dataclass
class LoaderConfig:
    image_size: int = 224
    batch_size: int = 64
    num_workers: int = 4
    on_corrupt: str = "fail"
    verify_images: bool = True
    cache_images: bool = False
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    backbone: str = "efficientnet_b0"
    pretrained: bool = True
    gem_p: float = 3.0
    gem_eps: float = 1e-6
    dropout: float = 0.2


@dataclass
class CVConfig:
    folds: list[int] | None = None
    tta: bool = True
    min_tpr: float = 0.8


@dataclass
class ImageClassifierConfig:
    seed: int = 42
    run_dir: str | None = None
    resume: bool = False
    oof_file: str = "???"
    early_stopping_patience: int = 3
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    data: IsicDataConfig = field(default_factory=IsicDataConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: dict[str, Any] = field(default_factory=dict)  # Lightning Trainer arguments
    cv: CVConfig = field(default_factory=CVConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
