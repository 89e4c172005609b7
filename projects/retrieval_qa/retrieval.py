"""Dense (sentence-transformers + FAISS), sparse (BM25) and hybrid (rank fusion) retrieval.

Each index is cached under a content hash of everything that shapes it (`cache_keys`): the
corpus, the chunking code and settings, the encoder's weights, the index and BM25 settings and
the bm25s version, so a changed input builds a new index instead of silently reusing a stale
one. How a stage is built, sealed with a manifest, verified and published: `store.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from projects.retrieval_qa.chunking import PassageStore, passage_column
from projects.retrieval_qa.fusion import recall_at_k
from shared.device import select_device
from shared.pretrained import resolve_model_path

# How SparseIndex turns text into BM25 terms; part of the BM25 cache key.
SPARSE_TOKENIZER = "bm25s.tokenization.Tokenizer(stopwords=en, lower) ids"


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


# The index kinds that keep only compressed codes: their candidates are re-scored exactly from
# the float16 vectors on disk (`DenseIndex.rerank`).
COMPRESSED = ("ivfpq",)
VECTORS_FILE = "vectors.f16.npy"


def encode_devices(devices: Sequence[str] | None) -> list[str]:
    """The devices corpus embedding is spread over: `devices` as given, else every visible GPU
    when there are several; [] means one process on the default device."""
    if devices:
        return list(devices)
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(n)] if n > 1 else []


class DenseIndex:
    """Normalised sentence embeddings in FAISS (inner product = cosine). At scale the corpus is
    encoded chunk by chunk into a float16 memory-mapped file (`encode_to_file`), and the FAISS
    index is built from that file (`build_from_file`)."""

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
        pq_m: int = 48,
        rerank: int = 1,
        exact_below: int = 0,
        train_sample: int = 262144,
    ) -> None:
        self.encoder_name = encoder
        self.index_type, self.nlist, self.nprobe, self.hnsw_m = index_type, nlist, nprobe, hnsw_m
        self.ef_search, self.pq_m, self.rerank = ef_search, pq_m, rerank
        self.exact_below, self.train_sample = exact_below, train_sample
        self.batch_size = batch_size
        self.device = device
        self._encoder = None
        self.index = None
        self.vectors: np.ndarray | None = None  # float16 (n, dim), memory-mapped when loaded

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

    def embed(self, texts: Sequence[str], pool: dict | None = None) -> np.ndarray:
        """Normalised float32 embeddings; with a multi-process `pool`, the texts are cut into
        one shard per process (device) and the shards come back in input order."""
        shard = -(-len(texts) // len(pool["processes"])) if pool else None
        vecs = self.encoder.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
            pool=pool,
            chunk_size=shard,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_to_file(
        self,
        batches: Iterable[tuple[int, Sequence[str]]],
        n: int,
        path: Path,
        devices: Sequence[str] = (),
    ) -> np.ndarray:
        """Embed `(first id, texts)` batches into a float16 `.npy` memmap of shape (n, dim) at
        `path`; more than one device starts sentence-transformers' multi-process pool."""
        dim = self.encoder.get_embedding_dimension()
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
        pool = self.encoder.start_multi_process_pool(list(devices)) if len(devices) > 1 else None
        try:
            for start, texts in batches:
                out[start : start + len(texts)] = self.embed(texts, pool)
        finally:
            if pool is not None:
                self.encoder.stop_multi_process_pool(pool)
        out.flush()
        return out

    def kind_for(self, n: int) -> str:
        """`index_type`, or exact `flat` for a corpus smaller than `exact_below` passages."""
        return "flat" if n < self.exact_below else self.index_type

    def build_from_file(self, path: Path) -> DenseIndex:
        """The FAISS index of the float16 vectors at `path`, added chunk by chunk."""
        self.vectors = np.load(path, mmap_mode="r")
        self.index_type = self.kind_for(len(self.vectors))
        self.index = build_faiss_index(
            self.vectors, self.index_type, self.nlist, self.hnsw_m, self.pq_m, self.train_sample
        )
        return self

    def build(self, texts: Sequence[str]) -> DenseIndex:
        """In-memory build (tests, small lists): embed all texts, then index them."""
        vectors = self.embed(texts)
        self.vectors = vectors.astype(np.float16)
        self.index_type = self.kind_for(len(vectors))
        self.index = build_faiss_index(
            vectors, self.index_type, self.nlist, self.hnsw_m, self.pq_m, self.train_sample
        )
        return self

    def search(self, queries: Sequence[str], k: int) -> np.ndarray:
        """(n_queries, k) passage indices, best first (-1 where fewer than k exist)."""
        return self.search_vectors(self.embed(queries), k)

    def search_vectors(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """`search` on query embeddings, with this index's nprobe / efSearch applied; compressed
        kinds fetch `k * rerank` candidates and re-score them exactly from `self.vectors`."""
        import faiss

        if self.index_type in ("ivf", *COMPRESSED):
            faiss.extract_index_ivf(self.index).nprobe = self.nprobe
        elif self.index_type == "hnsw":
            self.index.hnsw.efSearch = self.ef_search
        q = np.ascontiguousarray(vectors, dtype=np.float32)
        rerank = self.index_type in COMPRESSED and self.rerank > 1 and self.vectors is not None
        _, idx = self.index.search(q, k * self.rerank if rerank else k)
        return exact_rerank(self.vectors, q, idx, k) if rerank else idx

    def save(self, folder: Path) -> None:
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / "dense.faiss"))
        (folder / "dense.json").write_text(json.dumps({"index_type": self.index_type}))
        if self.vectors is not None and not (folder / VECTORS_FILE).exists():
            np.save(folder / VECTORS_FILE, np.asarray(self.vectors, dtype=np.float16))

    def load(self, folder: Path) -> DenseIndex:
        import faiss

        self.index = faiss.read_index(str(folder / "dense.faiss"))
        if (folder / "dense.json").is_file():  # the kind actually built (exact below a size)
            self.index_type = json.loads((folder / "dense.json").read_text())["index_type"]
        vectors = folder / VECTORS_FILE
        self.vectors = np.load(vectors, mmap_mode="r") if vectors.is_file() else None
        if self.vectors is not None and len(self.vectors) != self.index.ntotal:
            raise ValueError(f"{vectors}: {len(self.vectors)} rows, index has {self.index.ntotal}")
        return self


def exact_rerank(vectors: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int):
    """The top `k` of each query's candidate ids by exact inner product with `vectors` (only
    the candidates' rows are read from the memory-mapped file); -1 pads missing candidates."""
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for i, (q, cand) in enumerate(zip(queries, candidates)):
        cand = cand[cand >= 0]
        if len(cand) == 0:
            continue
        order = np.sort(cand)  # sorted reads of the memmap
        scores = np.asarray(vectors[order], dtype=np.float32) @ q
        best = order[np.argsort(-scores, kind="stable")[:k]]
        out[i, : len(best)] = best
    return out


def build_faiss_index(
    vectors: np.ndarray,
    index_type: str,
    nlist: int = 1024,
    hnsw_m: int = 32,
    pq_m: int = 48,
    train_sample: int = 262144,
    add_chunk: int = 65536,
    seed: int = 0,
):
    """Flat (exact) for small corpora; IVF-Flat, IVF-PQ (`pq_m` bytes a vector) or HNSW for
    millions. `vectors` may be a float16 memmap: IVF trains on an evenly spread sample of
    `train_sample` rows and every kind adds `add_chunk` rows at a time as float32, so memory
    holds the index, not a float32 copy of the corpus."""
    import faiss

    n, dim = vectors.shape
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type in ("ivf", "ivfpq"):
        nlist = max(1, min(nlist, n // 39))  # FAISS wants ~39 points per centroid
        quantizer = faiss.IndexFlatIP(dim)
        if index_type == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            if dim % pq_m:
                raise ValueError(f"retriever.pq_m={pq_m} must divide the embedding size {dim}")
            nbits = 8 if n >= 256 * 39 else 4  # PQ training wants ~39 points per code
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        rows = np.random.default_rng(seed).choice(n, min(n, train_sample), replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(rows)], dtype=np.float32))
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"retriever.index must be flat, ivf, ivfpq or hnsw, got {index_type!r}")
    for start in range(0, n, add_chunk):
        index.add(np.ascontiguousarray(vectors[start : start + add_chunk], dtype=np.float32))
    return index


def _distinct_pairs(
    ids: np.ndarray, lengths: np.ndarray, n_vocab: int, counts: bool = False
) -> tuple[np.ndarray, ...]:
    """The distinct (passage, word) pairs of consecutive passages' word ids, ordered by
    passage then word: (passage index within the batch, word id[, count])."""
    doc = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    keys = np.unique(doc * n_vocab + ids, return_counts=counts)
    keys, tf = keys if counts else (keys, None)
    doc, word = np.divmod(keys, n_vocab)
    return (doc, word, tf.astype(np.float32)) if counts else (doc, word)


class _Spill:
    """Files in a scratch folder for a streamed BM25 build: the word ids of every batch,
    appended to one file and read back memory-mapped, and the CSC arrays (.npy memmaps)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ids = folder / "word_ids.int32"
        self.ids.write_bytes(b"")
        self.n = 0

    def append(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return ids
        with open(self.ids, "ab") as f:
            f.write(ids.tobytes())
        view = np.memmap(self.ids, np.int32, "r", offset=4 * self.n, shape=(len(ids),))
        self.n += len(ids)
        return view

    def array(self, name: str, dtype: type, n: int) -> np.ndarray:
        return np.lib.format.open_memmap(self.folder / f"{name}.npy", "w+", dtype, (n,))


class SparseIndex:
    """BM25 over lower-cased word tokens with English stop words removed (bm25s), tokenised to
    integer ids chunk by chunk (no per-corpus lists of strings) and loaded memory-mapped."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.bm25 = None
        self.tokenizer = self._new_tokenizer()

    @staticmethod
    def _new_tokenizer():
        from bm25s.tokenization import Tokenizer

        return Tokenizer(lower=True, stopwords="en")

    def build_batches(
        self, batches: Iterable[Sequence[str]], scratch: Path | None = None
    ) -> SparseIndex:
        """Index text batches in order: the index `bm25s.BM25.index` builds (same scores, same
        CSC layout, its default `lucene` BM25), built in two streamed passes so that memory
        holds the vocabulary and one batch, not the corpus. Pass 1 tokenises each batch to
        int32 word ids and counts document frequencies; pass 2 scores each batch's distinct
        (passage, word) pairs and scatters them into their word's column. With `scratch` (a
        folder), the word ids and the CSC arrays are files there, memory-mapped: bm25s's own
        build holds ~36 bytes per (passage, word) pair at once (scores, ids, a sort key and
        its argsort), ~10 GB at 6M passages. `save` copies the arrays out of `scratch`."""
        import bm25s

        spill = None if scratch is None else _Spill(Path(scratch))
        chunks, lengths, df = [], [], np.zeros(0, np.int64)
        for texts in batches:  # pass 1: word ids, passage lengths, document frequencies
            out = self.tokenizer.tokenize(
                list(texts), update_vocab=True, return_as="ids", show_progress=False
            )
            ids = np.fromiter((t for doc in out for t in doc), np.int32)
            n = np.fromiter((len(doc) for doc in out), np.int64, len(out))
            vocab_size = len(self.tokenizer.get_vocab_dict())
            df = np.concatenate([df, np.zeros(vocab_size - len(df), np.int64)])
            df += np.bincount(_distinct_pairs(ids, n, vocab_size)[1], minlength=vocab_size)
            chunks.append((spill.append(ids) if spill else ids, len(n)))
            lengths.append(n)
        vocab = self.tokenizer.get_vocab_dict()
        n_vocab, lengths = len(vocab), np.concatenate(lengths or [np.zeros(0, np.int64)])
        n_docs, avg_len = len(lengths), lengths.mean() if len(lengths) else np.float64(0)
        df = np.concatenate([df, np.zeros(n_vocab - len(df), np.int64)])
        idf = np.zeros(n_vocab, np.float32)  # bm25s's lucene idf, of words that occur
        seen = df > 0
        idf[seen] = np.log(1 + (n_docs - df[seen] + 0.5) / (df[seen] + 0.5))
        indptr = np.zeros(n_vocab + 1, np.int64)
        np.cumsum(df, out=indptr[1:])
        nnz = int(indptr[-1])
        data = spill.array("data", np.float32, nnz) if spill else np.empty(nnz, np.float32)
        indices = spill.array("indices", np.int32, nnz) if spill else np.empty(nnz, np.int32)
        filled, first = np.zeros(n_vocab, np.int64), 0
        for ids, n_batch in chunks:  # pass 2: scores, into their columns in passage order
            n = lengths[first : first + n_batch]
            doc, word, tf = _distinct_pairs(np.asarray(ids), n, n_vocab, counts=True)
            dl = n[doc].astype(np.float64)
            tfc = tf / (self.k1 * ((1 - self.b) + self.b * dl / avg_len) + tf)
            order = np.argsort(word, kind="stable")  # by word, passages ascending within
            word_sorted = word[order]
            rank = np.arange(len(word)) - np.searchsorted(word_sorted, word_sorted)
            pos = indptr[word_sorted] + filled[word_sorted] + rank
            data[pos] = (idf[word_sorted] * tfc[order]).astype(np.float32)
            indices[pos] = (doc[order] + first).astype(np.int32)
            filled += np.bincount(word, minlength=n_vocab)
            first += len(n)
        if "" not in vocab:  # as bm25s.BM25.index does
            vocab[""] = max(vocab.values()) + 1
        self.bm25 = bm25s.BM25(k1=self.k1, b=self.b)
        self.bm25.scores = {
            "data": data,
            "indices": indices,
            "indptr": indptr,
            "num_docs": n_docs,
        }
        self.bm25.vocab_dict = vocab
        self.bm25.nonoccurrence_array = None
        self.bm25.unique_token_ids_set = set(vocab.values())
        return self

    def build(self, texts: Sequence[str]) -> SparseIndex:
        return self.build_batches([texts])

    def search(self, queries: Sequence[str], k: int) -> np.ndarray:
        """(n_queries, k) passage indices, best first; -1 where fewer than k passages share a
        word with the query (a query with no known word has no sparse hits at all)."""
        empty = self.tokenizer.get_vocab_dict().get("")
        ids = self.tokenizer.tokenize(
            list(queries), update_vocab=False, return_as="ids", show_progress=False
        )
        tokens = [[t for t in q if t != empty] for q in ids]  # unknown words are dropped
        out = np.full((len(tokens), k), -1, dtype=np.int64)
        for i, query in enumerate(tokens):
            if not query:
                continue
            # bm25s's own scores, then the top k among the passages that share a word with
            # the query: `BM25.retrieve` ranks every passage through a thread pool, ~47 ms a
            # query at 1M passages (2 shared cores), growing with the corpus
            scores = self.bm25.get_scores_from_ids(query)
            hits = np.flatnonzero(scores > 0)
            if len(hits) > k:
                hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
            best = hits[np.lexsort((hits, -scores[hits]))]  # best first, ties by passage id
            out[i, : len(best)] = best
        return out

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder / "bm25"), show_progress=False)
        self.tokenizer.save_vocab(str(folder / "bm25"))

    def load(self, folder: Path) -> SparseIndex:
        import bm25s

        self.bm25 = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False)
        self.tokenizer = self._new_tokenizer()
        self.tokenizer.load_vocab(str(folder / "bm25"))
        return self


def passage_hits(
    passages: pd.DataFrame | PassageStore,
    ranking: np.ndarray,
    questions: pd.DataFrame,
    gold_titles: pd.Series | None,
) -> np.ndarray:
    """(n, K) True where the passage holds the correct option's text (and, when the data set
    names it, comes from the question's source article); only the ranked passages are read."""
    hits = np.zeros(ranking.shape, dtype=bool)
    for i, (_, q) in enumerate(questions.iterrows()):
        answer = str(q[q["answer"]]).lower()
        ids = [int(p) for p in ranking[i] if p >= 0]
        found = zip(passage_column(passages, "text", ids), passage_column(passages, "title", ids))
        for j, (text, title) in enumerate(found):
            if answer in text.lower():
                hits[i, j] = gold_titles is None or title == gold_titles.get(q["id"])
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
