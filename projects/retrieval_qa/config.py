"""The schema of configs/retrieval_qa: a typo or a wrong type fails at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.config import OptimConfig, PathsConfig, TrackingConfig


@dataclass
class SyntheticConfig:
    n_entities: int = 80
    n_distractors: int = 60
    test_fraction: float = 0.25
    corpus_files: int = 2
    seed: int = 0


@dataclass
class DataConfig:
    dir: str = "???"
    corpus_dir: str = "???"
    train_file: str = "train.csv"
    test_file: str = "test.csv"
    val_fraction: float = 0.2
    generate: bool = False
    synthetic: SyntheticConfig | None = None


@dataclass
class ChunkingConfig:
    sentences: int = 3
    stride: int = 2
    max_chars: int = 1500


@dataclass
class BM25Config:
    k1: float = 1.5
    b: float = 0.75


@dataclass
class RetrieverConfig:
    encoder: str = "BAAI/bge-small-en-v1.5"
    batch_size: int = 256
    index: str = "flat"
    nlist: int = 4096
    nprobe: int = 32
    hnsw_m: int = 32
    ef_search: int = 64
    bm25: BM25Config = field(default_factory=BM25Config)
    candidates: int = 20
    weights: dict[str, float] = field(default_factory=lambda: {"dense": 1.0, "sparse": 1.0})
    rrf_k: float = 60.0


@dataclass
class ReaderConfig:
    model: str = "microsoft/deberta-v3-large"
    num_hidden_layers: int | None = None
    context_passages: int = 3
    max_length: int = 384
    batch_size: int = 2
    eval_batch_size: int = 8


@dataclass
class RetrievalQAConfig:
    seed: int = 42
    cache_dir: str = "???"
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: dict[str, Any] = field(default_factory=dict)
