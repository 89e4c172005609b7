"""Dense (sentence-transformers + FAISS), sparse (BM25) and hybrid (rank fusion) retrieval.

Each index is cached under a content hash of everything that shapes it (`cache_keys`): the
corpus, the chunking code and settings, the encoder's weights, the index and BM25 settings and
the bm25s version, so a changed input builds a new index instead of silently reusing a stale
one. A stage is built in a temporary folder and renamed into place (`cached_stage`), so an
interrupted build is never found by a later run; a cached stage that fails to load is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from shared.device import select_device
from shared.logging import get_logger
from shared.models import resolve_model_path

log = get_logger(__name__)
T = TypeVar("T")
# How SparseIndex turns text into BM25 terms; part of the BM25 cache key.
SPARSE_TOKENIZER = "bm25s.tokenize(stopwords=en, lower)"


def content_key(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (input fingerprints, config nodes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cache_keys(
    corpus_fingerprint: str,
    chunking: dict[str, Any],
    chunking_code: str,
    encoder_fingerprint: str,
    dense: dict[str, Any],
    bm25: dict[str, Any],
    bm25s_version: str,
) -> dict[str, str]:
    """The cache key of each stage; an index's key includes its passages' key."""
    passages = content_key("passages", corpus_fingerprint, chunking, chunking_code)
    return {
        "passages": passages,
        "dense": content_key("dense", passages, encoder_fingerprint, dense),
        "bm25": content_key("bm25", passages, bm25, bm25s_version, SPARSE_TOKENIZER),
    }


def stage_dir(cache_root: str | Path, stage: str, key: str) -> Path:
    """`cache_root/stage-key`: a stage's outputs live there; a new key means a new folder."""
    return Path(cache_root) / f"{stage}-{key}"


def cached_stage(
    cache_root: str | Path,
    stage: str,
    key: str,
    build: Callable[[Path], T],
    load: Callable[[Path], T],
) -> tuple[T, bool]:
    """(result, from_cache): load `cache_root/stage-key`, or `build(folder)` into a temporary
    folder renamed into place only once complete. A cached folder that fails to load is
    removed and rebuilt, with a warning."""
    final = stage_dir(cache_root, stage, key)
    if final.is_dir():
        try:
            return load(final), True
        except Exception as exc:  # a truncated or foreign file: rebuild rather than fail forever
            log.warning("cached %s at %s failed to load (%s); rebuilding it", stage, final, exc)
            shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        result = build(tmp)
        try:
            os.rename(tmp, final)  # atomic on one file system
        except OSError:  # another run finished the same stage first: keep theirs
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result, False


class DenseIndex:
    """Normalised sentence embeddings in FAISS (inner product = cosine)."""

    def __init__(
        self,
        encoder: str,
        index_type: str = "flat",
        nlist: int = 1024,
        nprobe: int = 16,
        hnsw_m: int = 32,
        batch_size: int = 64,
        device: str | None = None,
        ef_search: int = 64,
    ) -> None:
        self.encoder_name = encoder
        self.index_type, self.nlist, self.nprobe, self.hnsw_m = index_type, nlist, nprobe, hnsw_m
        self.ef_search = ef_search
        self.batch_size = batch_size
        self.device = device
        self._encoder = None
        self.index = None

    @property
    def encoder(self):
        if self._encoder is None:
            from sentence_transformers import SentenceTransformer

            device = self.device or select_device().torch_device
            self._encoder = SentenceTransformer(
                resolve_model_path(self.encoder_name), device=device
            )
            if device == "cuda":
                self._encoder.half()
        return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vecs = self.encoder.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def build(self, texts: Sequence[str]) -> DenseIndex:
        vectors = self.embed(texts)
        self.index = build_faiss_index(vectors, self.index_type, self.nlist, self.hnsw_m)
        return self

    def search(self, queries: Sequence[str], k: int) -> np.ndarray:
        """(n_queries, k) passage indices, best first (-1 where fewer than k exist)."""
        return self.search_vectors(self.embed(queries), k)

    def search_vectors(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """`search` on query embeddings, with this index's nprobe / efSearch applied."""
        import faiss

        if self.index_type == "ivf":
            faiss.extract_index_ivf(self.index).nprobe = self.nprobe
        elif self.index_type == "hnsw":
            self.index.hnsw.efSearch = self.ef_search
        _, idx = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return idx

    def save(self, folder: Path) -> None:
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / "dense.faiss"))

    def load(self, folder: Path) -> DenseIndex:
        import faiss

        self.index = faiss.read_index(str(folder / "dense.faiss"))
        return self


def build_faiss_index(vectors: np.ndarray, index_type: str, nlist: int = 1024, hnsw_m: int = 32):
    """Flat (exact) for small corpora; IVF-Flat or HNSW for millions of passages."""
    import faiss

    dim = vectors.shape[1]
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type == "ivf":
        nlist = max(1, min(nlist, len(vectors) // 39))  # FAISS wants ~39 points per centroid
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"retriever.dense.index must be flat, ivf or hnsw, got {index_type!r}")
    index.add(vectors)
    return index


class SparseIndex:
    """BM25 over lower-cased word tokens with English stop words removed (bm25s)."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.bm25 = None

    @staticmethod
    def _tokens(texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)

    def build(self, texts: Sequence[str]) -> SparseIndex:
        import bm25s

        self.bm25 = bm25s.BM25(k1=self.k1, b=self.b)
        self.bm25.index(self._tokens(texts), show_progress=False)
        return self

    def search(self, queries: Sequence[str], k: int) -> np.ndarray:
        """(n_queries, k) passage indices, best first; -1 where fewer than k passages share a
        word with the query (a query with no known word has no sparse hits at all)."""
        vocab = self.bm25.vocab_dict
        tokens = [[t for t in q if t in vocab] for q in self._tokens(queries)]
        out = np.full((len(tokens), k), -1, dtype=np.int64)
        known = [i for i, t in enumerate(tokens) if t]
        if known:
            n = min(k, self.bm25.scores["num_docs"])
            idx, scores = self.bm25.retrieve(
                [tokens[i] for i in known], k=n, show_progress=False, n_threads=1
            )
            out[known, :n] = np.where(np.asarray(scores) > 0, np.asarray(idx), -1)
        return out

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder / "bm25"), show_progress=False)

    def load(self, folder: Path) -> SparseIndex:
        import bm25s

        self.bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
        return self


def reciprocal_rank_fusion(
    rankings: Sequence[np.ndarray], weights: Sequence[float], k: int, rrf_k: float = 60.0
) -> np.ndarray:
    """Fuse per-query rankings: score(p) = sum_i w_i / (rrf_k + rank_i(p)); top k per query."""
    n = rankings[0].shape[0]
    out = np.full((n, k), -1, dtype=np.int64)
    for q in range(n):
        scores: dict[int, float] = {}
        for ranking, w in zip(rankings, weights):
            for rank, pid in enumerate(ranking[q]):
                if pid >= 0:
                    scores[int(pid)] = scores.get(int(pid), 0.0) + w / (rrf_k + rank + 1)
        best = sorted(scores, key=lambda p: (-scores[p], p))[:k]
        out[q, : len(best)] = best
    return out


def recall_at_k(hits: np.ndarray, k: int) -> float:
    """Share of queries with a relevant passage in the first k; `hits` is (n, K) booleans."""
    return float(hits[:, :k].any(axis=1).mean())


def passage_hits(
    passages: pd.DataFrame,
    ranking: np.ndarray,
    questions: pd.DataFrame,
    gold_titles: pd.Series | None,
) -> np.ndarray:
    """(n, K) True where the passage holds the correct option's text (and, when the data set
    names it, comes from the question's source article)."""
    texts = passages["text"].str.lower().to_numpy()
    titles = passages["title"].to_numpy()
    hits = np.zeros(ranking.shape, dtype=bool)
    for i, (_, q) in enumerate(questions.iterrows()):
        answer = str(q[q["answer"]]).lower()
        for j, p in enumerate(ranking[i]):
            if p < 0 or answer not in texts[p]:
                continue
            hits[i, j] = gold_titles is None or titles[p] == gold_titles.get(q["id"])
    return hits


def retrieval_recalls(
    passages: pd.DataFrame,
    rankings: dict[str, dict[str, np.ndarray]],
    splits: dict[str, pd.DataFrame],
    scored: list[str],
    gold_titles: pd.Series | None,
    ks: Sequence[int],
) -> dict[str, float]:
    """`recall_at_{k}_{method}` over the labelled splits `scored`, for every method ranked."""
    out = {}
    for method in rankings[scored[0]]:
        hits = np.concatenate(
            [passage_hits(passages, rankings[s][method], splits[s], gold_titles) for s in scored]
        )
        out.update({f"recall_at_{k}_{method}": recall_at_k(hits, k) for k in ks})
    return out
