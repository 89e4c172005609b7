"""The streamed BM25 build (issue 25: bm25s's own build holds ~36 bytes per (passage, word)
pair at once, ~10 GB at 6M passages) must be the index bm25s builds: same CSC arrays, same
vocabulary, bit for bit, whether its arrays live in memory or in a scratch folder; and the
search over it must rank as `bm25s.BM25.retrieve` does."""

from __future__ import annotations

import bm25s
import numpy as np
import pytest
from bm25s.tokenization import Tokenized, Tokenizer

from projects.retrieval_qa.retrieval import SparseIndex

WORDS = [f"w{i}" for i in range(300)] + ["photosynthesis", "mitochondria", "the", "of", "and"]


def _corpus(n: int = 900, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(WORDS) + 1)  # Zipf-like: some words in many passages
    texts = [" ".join(rng.choice(WORDS, rng.integers(3, 40), p=p / p.sum())) for _ in range(n)]
    return [*texts, "", "the of and", "Zzz zzz unique"]  # empty, stopwords only, a rare word


def _reference(batches: list[list[str]], k1: float, b: float) -> bm25s.BM25:
    """bm25s's own index of the same word ids, tokenised batch by batch as the build does."""
    tok = Tokenizer(lower=True, stopwords="en")
    ids = []
    for batch in batches:
        ids += tok.tokenize(batch, update_vocab=True, return_as="ids", show_progress=False)
    ref = bm25s.BM25(k1=k1, b=b)
    ref.index(Tokenized(ids=ids, vocab=tok.get_vocab_dict()), show_progress=False)
    return ref


@pytest.mark.parametrize("spill", [False, True])
def test_the_streamed_build_is_bm25s_index_bit_for_bit(tmp_path, spill):
    texts = _corpus()
    batches = [texts[i : i + 250] for i in range(0, len(texts), 250)]
    ref = _reference(batches, 1.5, 0.75)
    got = SparseIndex(1.5, 0.75).build_batches(batches, tmp_path / "scratch" if spill else None)
    for key in ("data", "indices", "indptr"):
        a, r = np.asarray(got.bm25.scores[key]), np.asarray(ref.scores[key])
        assert a.dtype == r.dtype and np.array_equal(a, r), key
    assert got.bm25.scores["num_docs"] == ref.scores["num_docs"] == len(texts)
    assert got.bm25.vocab_dict == ref.vocab_dict


def test_the_search_ranks_as_bm25s_retrieve(tmp_path):
    texts = _corpus(seed=1)
    index = SparseIndex(1.2, 0.75).build_batches([texts[:400], texts[400:]], tmp_path / "s")
    index.save(tmp_path / "index")
    served = SparseIndex(1.2, 0.75).load(tmp_path / "index")
    queries = ["photosynthesis w3 w17", "mitochondria", "w250 w251 w5", "zzz", "nothing known"]
    got = served.search(queries, 10)
    ref = _reference([texts[:400], texts[400:]], 1.2, 0.75)
    for row, query in zip(got, queries, strict=True):
        ids = served.tokenizer.tokenize([query], update_vocab=False, return_as="ids")[0]
        ids = [t for t in ids if t != ref.vocab_dict[""]]  # unknown words are dropped
        scores = ref.get_scores(ids) if ids else np.zeros(len(texts))
        hits = np.flatnonzero(scores > 0)
        expected = hits[np.lexsort((hits, -scores[hits]))][:10]
        assert row[: len(expected)].tolist() == expected.tolist(), query
        assert (row[len(expected) :] == -1).all()
    assert got[-1].tolist() == [-1] * 10  # no known word: nothing retrieved
