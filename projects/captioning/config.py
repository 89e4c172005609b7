"""The schema of configs/captioning: a typo or a wrong type fails at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.config import OptimConfig, PathsConfig, TrackingConfig


@dataclass
class SyntheticConfig:
    n_train: int = 1200
    n_val: int = 150
    n_test: int = 150
    image_size: int = 96
    seed: int = 0


@dataclass
class DataConfig:
    dir: str = "???"
    annotations: str = "???"
    image_dir: str = "???"
    merge_restval: bool = True
    image_size: int = 224
    batch_size: int = 64
    num_workers: int = 4
    max_len: int = 30
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    generate: bool = False
    synthetic: SyntheticConfig | None = None


@dataclass
class EncoderConfig:
    name: str = "vit_base_patch16_224"
    pretrained: bool = True
    freeze_epochs: int = 1


@dataclass
class DecoderCfg:
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_positions: int = 1024
    dropout: float = 0.1
    init: str | None = "gpt2"


@dataclass
class TokenizerConfig:
    kind: str = "gpt2"
    name: str = "gpt2"
    vocab_size: int = 512


@dataclass
class DecodingConfig:
    beam_size: int = 3
    length_penalty: float = 0.7
    max_len: int = 30
    eval_batch_size: int = 64


@dataclass
class CaptioningConfig:
    seed: int = 42
    label_smoothing: float = 0.1
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderCfg = field(default_factory=DecoderCfg)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: dict[str, Any] = field(default_factory=dict)
