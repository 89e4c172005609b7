"""The schema of configs/image_classifier: types only (values live in the YAML files)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import OptimConfig, PathsConfig, TrackingConfig, TrainerConfig
from shared.datasets.isic2024 import IsicDataConfig


@dataclass
class SamplingConfig:
    mode: str
    neg_per_pos: float


@dataclass
class AugmentConfig:
    crop_scale: list[float]
    hflip: float
    vflip: float
    rotation_degrees: float
    brightness: float
    contrast: float
    saturation: float
    hue: float
    mean: list[float] | None  # null: the backbone's own (timm's resolve_model_data_config)
    std: list[float] | None


@dataclass
class LoaderConfig:
    image_size: int
    batch_size: int
    num_workers: int
    on_corrupt: str
    verify_images: bool
    cache: bool  # decode every image once into paths.cache_dir at image_size (memory-mapped)
    trunk_cache: bool  # the frozen trunk's output once per image, in memory; no augmentation
    sampling: SamplingConfig
    augment: AugmentConfig


@dataclass
class ModelConfig:
    backbone: str
    pretrained: bool
    gem_p: float
    gem_eps: float
    dropout: float
    freeze_blocks: int  # pretrained stem + first N blocks kept as loaded (0: train all)
    shifted_depthwise_grad: bool  # depthwise weight gradients by shifted sums (CPU speed)


@dataclass
class CVConfig:
    folds: list[int] | None
    selection: str  # inner | fixed: how a fold's epoch is chosen (never on the scored fold)
    inner_fraction: float
    heldout_curves: bool  # score the held-out fold after every epoch (learning curves only)
    tta: bool
    min_tpr: float


@dataclass
class ImageClassifierConfig:
    seed: int
    run_dir: str | None
    resume: bool
    partial: bool
    oof_file: str
    early_stopping_patience: int
    paths: PathsConfig
    tracking: TrackingConfig
    data: IsicDataConfig
    loader: LoaderConfig
    model: ModelConfig
    trainer: TrainerConfig
    cv: CVConfig
    optim: OptimConfig
