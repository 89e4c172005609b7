"""The schema of configs/retrieval_qa: a typo or a wrong type fails at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import OptimConfig, PathsConfig, TrackingConfig, TrainerConfig


@dataclass
class SyntheticConfig:
    n_entities: int
    n_distractors: int
    test_fraction: float
    corpus_files: int
    seed: int


@dataclass
class DataConfig:
    name: str
    dir: str
    corpus_dir: str
    train_file: str
    test_file: str
    extra_train: list[str]
    val_fraction: float
    corpus_batch_rows: int
    generate: bool
    synthetic: SyntheticConfig | None


@dataclass
class ChunkingConfig:
    sentences: int
    stride: int
    max_chars: int


@dataclass
class BM25Config:
    k1: float
    b: float


@dataclass
class RetrieverConfig:
    encoder: str
    batch_size: int
    index: str
    nlist: int
    nprobe: int
    hnsw_m: int
    ef_search: int
    pq_m: int
    rerank: int
    exact_below: int
    train_sample: int
    encode_chunk: int
    devices: list[str] | None
    bm25: BM25Config
    candidates: int
    weights: dict[str, float]
    rrf_k: float


@dataclass
class ReaderConfig:
    model: str
    num_hidden_layers: int | None
    dropout: float | None  # every dropout of the reader; None = the checkpoint's own
    context_passages: int
    max_length: int
    batch_size: int
    eval_batch_size: int


@dataclass
class RetrievalQAConfig:
    seed: int
    cache_dir: str
    index_store: str
    paths: PathsConfig
    tracking: TrackingConfig
    data: DataConfig
    chunking: ChunkingConfig
    retriever: RetrieverConfig
    reader: ReaderConfig
    optim: OptimConfig
    trainer: TrainerConfig
