"""Retrieve-then-read, as one object the trainer builds and the registered model carries."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from projects.retrieval_qa import chunking
from projects.retrieval_qa.chunking import PassageStore, iter_passages, passage_column
from projects.retrieval_qa.data import check_questions, iter_corpus, question_query
from projects.retrieval_qa.fusion import reciprocal_rank_fusion
from projects.retrieval_qa.model import encode, ranked_letters, score_options
from projects.retrieval_qa.retrieval import (
    VECTORS_FILE,
    DenseIndex,
    SparseIndex,
    cache_keys,
    encode_devices,
)
from projects.retrieval_qa.store import cached_stage, stage_dir, verify_stage
from shared.config import to_dict
from shared.errors import DataNotFoundError
from shared.pretrained import content_hash, model_fingerprint
from shared.provenance import data_fingerprint

INDEX_STORE_ENV = "RETRIEVAL_QA_INDEX_STORE"
STAGES = ("passages", "dense", "bm25")


class IndexNotFoundError(DataNotFoundError):
    """A registered model's index (named by content hash) is not in the index store."""


@dataclass
class Retriever:
    """Passages + both indexes + fusion settings. `stages` names the index-store folders
    (`<stage>-<content hash>`) it was loaded from: a saved retriever is a small manifest that
    points there, not a copy of gigabytes of passages and indexes."""

    passages: pd.DataFrame | PassageStore
    dense: DenseIndex
    sparse: SparseIndex
    candidates: int
    weights: dict[str, float]
    rrf_k: float
    stages: dict[str, str] | None = None

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
        return [
            " ".join(passage_column(self.passages, "text", [int(p) for p in row[:k] if p >= 0]))
            for row in ranking
        ]

    def save(self, folder: Path) -> None:
        """`retriever.json`: settings plus the manifest (index store, stage folders by hash)."""
        if not self.stages:
            raise ValueError("only a retriever built by build_retriever (in a store) is saved")
        folder.mkdir(parents=True, exist_ok=True)
        store = {Path(p).parent for p in self.stages.values()}
        if len(store) != 1:
            raise ValueError(f"the retriever's stages are in several folders: {sorted(store)}")
        manifest = {
            "index_store": str(store.pop().resolve()),
            "stages": {s: Path(p).name for s, p in self.stages.items()},
        }
        meta = {
            "encoder": self.dense.encoder_name,
            "index_type": self.dense.index_type,
            "nprobe": self.dense.nprobe,
            "ef_search": self.dense.ef_search,
            "rerank": self.dense.rerank,
            "k1": self.sparse.k1,
            "b": self.sparse.b,
            "candidates": self.candidates,
            "weights": self.weights,
            "rrf_k": self.rrf_k,
        }
        (folder / "retriever.json").write_text(json.dumps({**meta, **manifest}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> Retriever:
        """The retriever a manifest names, from `$RETRIEVAL_QA_INDEX_STORE` when set (a serving
        machine with the store elsewhere), else the store path recorded at training. Each stage
        folder is verified against its own manifest first (sizes, sha256): a damaged one is
        refused (`StoreDamagedError` naming the folder and file), never served."""
        meta = json.loads((folder / "retriever.json").read_text())
        store = Path(os.environ.get(INDEX_STORE_ENV) or meta["index_store"])
        stages = {s: store / name for s, name in meta["stages"].items()}
        missing = [str(p) for p in stages.values() if not p.is_dir()]
        if missing:
            raise IndexNotFoundError(
                f"the model's index is not in the index store: missing {', '.join(missing)}. "
                f"Copy those folders (named by content hash) from the training machine's "
                f"store ({meta['index_store']}) into {store}, or set {INDEX_STORE_ENV} to a "
                "folder that holds them."
            )
        for path in stages.values():
            verify_stage(path)
        dense = DenseIndex(
            meta["encoder"],
            meta["index_type"],
            nprobe=meta["nprobe"],
            ef_search=meta["ef_search"],
            rerank=meta["rerank"],
        ).load(stages["dense"])
        return cls(
            PassageStore(stages["passages"]),
            dense,
            SparseIndex(meta["k1"], meta["b"]).load(stages["bm25"]),
            meta["candidates"],
            meta["weights"],
            meta["rrf_k"],
            {s: str(p) for s, p in stages.items()},
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
        logits, used = self.score(questions)
        return ranked_letters(logits), used

    def score(
        self, questions: pd.DataFrame, where: str = "input"
    ) -> tuple[np.ndarray, list[list[int]]]:
        """The reader's (n, 5) option logits and, per question, the passage ids it read (hybrid
        retrieval's top `context_passages`). Bad rows fail naming `where` and the row."""
        check_questions(questions, where)
        ranking = self.retriever.rankings([question_query(r) for _, r in questions.iterrows()])
        hybrid = ranking["hybrid"]
        ctx = self.retriever.contexts(hybrid, self.context_passages)
        logits = score_options(self.reader, encode(self.tokenizer, questions, ctx, self.max_length))
        used = [[int(p) for p in row[: self.context_passages] if p >= 0] for row in hybrid]
        return logits, used

    def passages(self, ids: list[int]) -> pd.DataFrame:
        """Title and text of passages `ids` (the store is memory-mapped: only these are read)."""
        store = self.retriever.passages
        return pd.DataFrame({c: store.column(c, ids) for c in ("title", "text")})

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
    dense_keys = ("index", "nlist", "hnsw_m", "pq_m", "exact_below", "train_sample")
    return {
        "corpus_fingerprint": data_fingerprint([cfg.data.corpus_dir]),
        "chunking": to_dict(cfg.chunking),
        "chunking_code": content_hash(chunking.__file__),
        "encoder_fingerprint": model_fingerprint(r.encoder),
        "dense": {"encoder": r.encoder, **{k: getattr(r, k) for k in dense_keys}},
        "bm25": to_dict(r.bm25),
        "bm25s_version": importlib.metadata.version("bm25s"),
    }


def build_retriever(cfg: Any) -> tuple[Retriever, dict]:
    """Passages, dense and sparse indexes in the index store (`cache_dir`), each rebuilt only
    when its inputs' hash changed. Everything streams: articles by parquet row group, passages
    to a memory-mapped store, embeddings chunk by chunk to a float16 memmap, FAISS from it."""
    inputs = cache_inputs(cfg)
    keys = cache_keys(**inputs)
    stats: dict = {"corpus_fingerprint": inputs["corpus_fingerprint"], "cache_keys": keys}
    c, r = cfg.chunking, cfg.retriever

    def make_passages(folder: Path) -> PassageStore:
        articles = iter_corpus(cfg.data.corpus_dir, cfg.data.corpus_batch_rows)
        PassageStore.write(folder, iter_passages(articles, c.sentences, c.stride, c.max_chars))
        return PassageStore(folder)

    passages, stats["passages_cached"] = cached_stage(
        cfg.cache_dir, "passages", keys["passages"], make_passages, PassageStore
    )

    def dense_index() -> DenseIndex:
        return DenseIndex(
            r.encoder,
            r.index,
            r.nlist,
            r.nprobe,
            r.hnsw_m,
            r.batch_size,
            ef_search=r.ef_search,
            pq_m=r.pq_m,
            rerank=r.rerank,
            exact_below=r.exact_below,
            train_sample=r.train_sample,
        )

    def make_dense(folder: Path) -> DenseIndex:
        t0 = time.perf_counter()
        dense = dense_index()
        devices = encode_devices(r.devices)
        dense.encode_to_file(
            passages.batches(r.encode_chunk), len(passages), folder / VECTORS_FILE, devices
        )
        stats["dense_encode_devices"] = devices or ["default"]
        dense.build_from_file(folder / VECTORS_FILE)
        stats["dense_build_passages_per_s"] = len(passages) / (time.perf_counter() - t0)
        dense.save(folder)
        return dense

    dense, stats["dense_cached"] = cached_stage(
        cfg.cache_dir, "dense", keys["dense"], make_dense, lambda f: dense_index().load(f)
    )

    def make_sparse(folder: Path) -> SparseIndex:
        texts = (t for _, t in passages.batches(r.encode_chunk))
        scratch = folder / "scratch"  # word ids and score arrays on disk while building
        SparseIndex(r.bm25.k1, r.bm25.b).build_batches(texts, scratch).save(folder)
        shutil.rmtree(scratch)
        return SparseIndex(r.bm25.k1, r.bm25.b).load(folder)  # memory-mapped, as served

    sparse, stats["bm25_cached"] = cached_stage(
        cfg.cache_dir,
        "bm25",
        keys["bm25"],
        make_sparse,
        lambda f: SparseIndex(r.bm25.k1, r.bm25.b).load(f),
    )
    stages = {s: str(stage_dir(cfg.cache_dir, s, keys[s])) for s in STAGES}
    stats.update(
        n_passages=len(passages),
        index_type=dense.index_type,
        dim=dense.index.d,
        cache_dirs=list(stages.values()),
    )
    retriever = Retriever(passages, dense, sparse, r.candidates, dict(r.weights), r.rrf_k, stages)
    return retriever, stats
