"""The schema of configs/captioning: a typo or a wrong type fails at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from projects.captioning.decoder import DecoderConfig
from shared.config import OptimConfig, PathsConfig, TrackingConfig, TrainerConfig


@dataclass
class SyntheticConfig:
    n_train: int
    n_val: int
    n_test: int
    image_size: int
    seed: int


@dataclass
class DataConfig:
    name: str
    dir: str
    annotations: str
    image_dir: str
    merge_restval: bool
    on_corrupt: str  # fail | skip
    image_size: int | None  # these four: null = the encoder's pretrained config (timm)
    interpolation: str | None
    mean: list[float] | None
    std: list[float] | None
    batch_size: int
    num_workers: int
    max_len: int
    generate: bool
    synthetic: SyntheticConfig | None


@dataclass
class EncoderConfig:
    name: str
    pretrained: bool
    frozen: bool  # never trained: its features are computed once per image, before training
    freeze_epochs: int


@dataclass
class TokenizerConfig:
    kind: str
    name: str
    vocab_size: int


@dataclass
class DecodingConfig:
    beam_size: int
    length_penalty: float
    max_len: int
    eval_batch_size: int


@dataclass
class CaptioningConfig:
    seed: int
    label_smoothing: float
    select: str  # cider_d | grounding (generated data): the val greedy score that picks the epoch
    paths: PathsConfig
    tracking: TrackingConfig
    data: DataConfig
    encoder: EncoderConfig
    decoder: DecoderConfig
    tokenizer: TokenizerConfig
    decoding: DecodingConfig
    optim: OptimConfig
    trainer: TrainerConfig
