"""Retrieve-then-read, as one object the trainer builds and the registered model carries."""

from __future__ import annotations

import importlib.metadata
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from projects.retrieval_qa import chunking
from projects.retrieval_qa.chunking import build_passages
from projects.retrieval_qa.data import check_questions, question_query, read_corpus
from projects.retrieval_qa.model import encode, ranked_letters, score_options
from projects.retrieval_qa.retrieval import (
    DenseIndex,
    SparseIndex,
    cache_keys,
    cached_stage,
    reciprocal_rank_fusion,
    stage_dir,
)
from shared.config import to_dict
from shared.models import content_hash, model_fingerprint
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
        """Ranked letters per question; a row with an empty or missing (NaN) prompt or option
        is refused (BadQuestionError naming the row) rather than ranked."""
        check_questions(questions, "input")
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


def cache_inputs(cfg: Any) -> dict[str, Any]:
    """Everything that shapes the cached passages and indexes (`retrieval.cache_keys`)."""
    r = cfg.retriever
    return {
        "corpus_fingerprint": data_fingerprint([cfg.data.corpus_dir]),
        "chunking": to_dict(cfg.chunking),
        "chunking_code": content_hash(chunking.__file__),
        "encoder_fingerprint": model_fingerprint(r.encoder),
        "dense": {"encoder": r.encoder, "index": r.index, "nlist": r.nlist, "hnsw_m": r.hnsw_m},
        "bm25": to_dict(r.bm25),
        "bm25s_version": importlib.metadata.version("bm25s"),
    }


def build_retriever(cfg: Any) -> tuple[Retriever, dict]:
    """Passages, dense and sparse indexes, each rebuilt only when its inputs' hash changed."""
    inputs = cache_inputs(cfg)
    keys = cache_keys(**inputs)
    stats: dict = {"corpus_fingerprint": inputs["corpus_fingerprint"], "cache_keys": keys}
    c, r = cfg.chunking, cfg.retriever

    def make_passages(folder: Path) -> pd.DataFrame:
        corpus = read_corpus(cfg.data.corpus_dir)
        stats["n_articles"] = len(corpus)
        passages = build_passages(corpus, c.sentences, c.stride, c.max_chars)
        passages.to_parquet(folder / "passages.parquet", index=False)
        return passages

    passages, stats["passages_cached"] = cached_stage(
        cfg.cache_dir,
        "passages",
        keys["passages"],
        make_passages,
        lambda folder: pd.read_parquet(folder / "passages.parquet"),
    )
    texts = passages["text"].tolist()

    def dense_index() -> DenseIndex:
        return DenseIndex(
            r.encoder, r.index, r.nlist, r.nprobe, r.hnsw_m, r.batch_size, ef_search=r.ef_search
        )

    def make_dense(folder: Path) -> DenseIndex:
        t0 = time.perf_counter()
        dense = dense_index().build(texts)
        stats["dense_build_passages_per_s"] = len(texts) / (time.perf_counter() - t0)
        dense.save(folder)
        return dense

    dense, stats["dense_cached"] = cached_stage(
        cfg.cache_dir, "dense", keys["dense"], make_dense, lambda f: dense_index().load(f)
    )

    def make_sparse(folder: Path) -> SparseIndex:
        sparse = SparseIndex(r.bm25.k1, r.bm25.b).build(texts)
        sparse.save(folder)
        return sparse

    sparse, stats["bm25_cached"] = cached_stage(
        cfg.cache_dir,
        "bm25",
        keys["bm25"],
        make_sparse,
        lambda f: SparseIndex(r.bm25.k1, r.bm25.b).load(f),
    )
    stats.update(
        n_passages=len(passages),
        index_type=r.index,
        dim=dense.index.d,
        cache_dirs=[
            str(stage_dir(cfg.cache_dir, s, keys[s])) for s in ("passages", "dense", "bm25")
        ],
    )
    retriever = Retriever(passages, dense, sparse, r.candidates, dict(r.weights), r.rrf_k)
    return retriever, stats
