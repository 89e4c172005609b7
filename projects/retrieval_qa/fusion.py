"""How the dense and sparse rankings become one (reciprocal rank fusion), and recall@k: the
small pure functions the retrieval metrics and the hybrid retriever rest on (and what
`make mutate` mutates of retrieval)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
