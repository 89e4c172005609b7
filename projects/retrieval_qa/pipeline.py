"""Retrieve-then-read, as one object the trainer builds and the registered model carries."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from projects.retrieval_qa.chunking import build_passages
from projects.retrieval_qa.data import question_query, read_corpus
from projects.retrieval_qa.model import encode, ranked_letters, score_options
from projects.retrieval_qa.retrieval import (
    DenseIndex,
    SparseIndex,
    content_key,
    reciprocal_rank_fusion,
    stage_dir,
)
from shared.config import to_dict
from shared.tracking import data_fingerprint


@dataclass
class Retriever:
    """Passages + both indexes + fusion settings."""

    passages: pd.DataFrame
    dense: DenseIndex
    sparse: SparseIndex
    candidates: int
    weights: dict[str, float]
    rrf_k: float

    def rankings(self, queries: list[str]) -> dict[str, np.ndarray]:
        """Passage indices per method (`dense`, `sparse`, `hybrid`), best first."""
        dense = self.dense.search(queries, self.candidates)
        sparse = self.sparse.search(queries, self.candidates)
        hybrid = reciprocal_rank_fusion(
            [dense, sparse],
            [self.weights["dense"], self.weights["sparse"]],
            self.candidates,
            self.rrf_k,
        )
        return {"dense": dense, "sparse": sparse, "hybrid": hybrid}

    def contexts(self, ranking: np.ndarray, k: int) -> list[str]:
        texts = self.passages["text"].to_numpy()
        return [" ".join(texts[p] for p in row[:k] if p >= 0) for row in ranking]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.passages.to_parquet(folder / "passages.parquet", index=False)
        self.dense.save(folder)
        self.sparse.save(folder)
        (folder / "retriever.json").write_text(
            json.dumps(
                {
                    "encoder": self.dense.encoder_name,
                    "index_type": self.dense.index_type,
                    "nprobe": self.dense.nprobe,
                    "ef_search": self.dense.ef_search,
                    "candidates": self.candidates,
                    "weights": self.weights,
                    "rrf_k": self.rrf_k,
                },
                indent=1,
            )
        )

    @classmethod
    def load(cls, folder: Path) -> Retriever:
        meta = json.loads((folder / "retriever.json").read_text())
        dense = DenseIndex(
            meta["encoder"], meta["index_type"], nprobe=meta["nprobe"], ef_search=meta["ef_search"]
        ).load(folder)
        return cls(
            pd.read_parquet(folder / "passages.parquet"),
            dense,
            SparseIndex().load(folder),
            meta["candidates"],
            meta["weights"],
            meta["rrf_k"],
        )


@dataclass
class QAPipeline:
    """Questions in, ranked letters (and the passages used) out."""

    retriever: Retriever
    tokenizer: Any
    reader: Any
    context_passages: int
    max_length: int

    def answer(self, questions: pd.DataFrame) -> tuple[list[list[str]], list[list[int]]]:
        ranking = self.retriever.rankings([question_query(r) for _, r in questions.iterrows()])
        hybrid = ranking["hybrid"]
        ctx = self.retriever.contexts(hybrid, self.context_passages)
        logits = score_options(self.reader, encode(self.tokenizer, questions, ctx, self.max_length))
        used = [[int(p) for p in row[: self.context_passages] if p >= 0] for row in hybrid]
        return ranked_letters(logits), used

    def save(self, folder: Path) -> None:
        self.retriever.save(folder / "retriever")
        self.reader.save_pretrained(folder / "reader")
        self.tokenizer.save_pretrained(folder / "reader")
        (folder / "reader.json").write_text(
            json.dumps({"context_passages": self.context_passages, "max_length": self.max_length})
        )

    @classmethod
    def load(cls, folder: Path) -> QAPipeline:
        from transformers import AutoModelForMultipleChoice, AutoTokenizer

        meta = json.loads((folder / "reader.json").read_text())
        return cls(
            Retriever.load(folder / "retriever"),
            AutoTokenizer.from_pretrained(folder / "reader"),
            AutoModelForMultipleChoice.from_pretrained(folder / "reader"),
            meta["context_passages"],
            meta["max_length"],
        )


def build_retriever(cfg: Any) -> tuple[Retriever, dict]:
    """Passages, dense and sparse indexes, each rebuilt only when its inputs' hash changed."""
    corpus_fp = data_fingerprint([cfg.data.corpus_dir])
    stats: dict = {"corpus_fingerprint": corpus_fp}
    p_key = content_key(corpus_fp, to_dict(cfg.chunking))
    p_dir = stage_dir(cfg.cache_dir, "passages", p_key)
    if (p_dir / "passages.parquet").is_file():
        passages = pd.read_parquet(p_dir / "passages.parquet")
        stats["passages_cached"] = True
    else:
        corpus = read_corpus(cfg.data.corpus_dir)
        passages = build_passages(
            corpus, cfg.chunking.sentences, cfg.chunking.stride, cfg.chunking.max_chars
        )
        p_dir.mkdir(parents=True, exist_ok=True)
        passages.to_parquet(p_dir / "passages.parquet", index=False)
        stats.update(passages_cached=False, n_articles=len(corpus))
    r = cfg.retriever
    dense = DenseIndex(
        r.encoder, r.index, r.nlist, r.nprobe, r.hnsw_m, r.batch_size, ef_search=r.ef_search
    )
    d_dir = stage_dir(
        cfg.cache_dir, "dense", content_key(p_key, r.encoder, r.index, r.nlist, r.hnsw_m)
    )
    t0 = time.perf_counter()
    if (d_dir / "dense.faiss").is_file():
        dense.load(d_dir)
        stats["dense_cached"] = True
    else:
        dense.build(passages["text"].tolist())
        dense.save(d_dir)
        stats.update(
            dense_cached=False,
            dense_build_passages_per_s=len(passages) / (time.perf_counter() - t0),
        )
    sparse = SparseIndex(r.bm25.k1, r.bm25.b)
    s_dir = stage_dir(cfg.cache_dir, "bm25", content_key(p_key, r.bm25.k1, r.bm25.b))
    if (s_dir / "bm25").is_dir():
        sparse.load(s_dir)
        stats["bm25_cached"] = True
    else:
        s_dir.mkdir(parents=True, exist_ok=True)
        sparse.build(passages["text"].tolist()).save(s_dir)
        stats["bm25_cached"] = False
    stats.update(
        n_passages=len(passages),
        index_type=r.index,
        dim=dense.index.d,
        cache_dirs=[str(p_dir), str(d_dir), str(s_dir)],
    )
    retriever = Retriever(passages, dense, sparse, r.candidates, dict(r.weights), r.rrf_k)
    return retriever, stats
