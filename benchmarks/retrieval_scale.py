"""retrieval_qa end to end at millions of passages (issue 25): the project's own build of each
stage (passage store, dense index, BM25) and its own search path, on a generated corpus.

python benchmarks/retrieval_scale.py --passages N [--queries 1000] [--workdir DIR]
    [--recall-queries 200] [--override retriever.exact_below=0 ...]

Why: `benchmarks/retrieval_qa.py` measures the FAISS index alone on generated vectors and BM25
alone on generated word lists. Here every stage runs through `pipeline.build_retriever`, the
code `train` runs, from a parquet corpus in the public layout (`corpus/wiki-stem-*.parquet`,
`title, text`), so the streaming of articles, chunking, the memory-mapped passage store, the
float16 vector memmap, FAISS, bm25s and the stage manifests (sha256 of every file) are all in
the figures. Each stage is built in its own process, so its peak RSS is its own: getrusage's
peak (mapped file pages included: the conservative figure) and the peak of anonymous memory
(heap, sampled from /proc at 20 Hz: what cannot be paged back to a file).

Two things are not the real ones, on purpose:
- the corpus: generated, deterministic from `--seed`, written streaming (one batch of articles
  in memory). Sentences of 12-32 words: 40% English stop words (bm25s's list, removed by the
  tokenizer as in real text), 30% words of the article's topic (one of 1,000 topics of 1,000
  words), 30% from a 2M-word vocabulary with Zipf-Mandelbrot frequencies (the vocabulary grows
  with the corpus as a real one does). Articles have 1-6 passages at the config's chunking
  (3 sentences every 2), so the corpus chunks into exactly N passages (~430 characters each).
- the dense encoder: a hashing-trick bag of words (sklearn's murmur3 HashingVectorizer, 2^14
  buckets) times a fixed seeded random projection to 384 dimensions (bge-small-en-v1.5's size),
  normalised. It is plugged in through the interface `DenseIndex` calls on a
  sentence-transformers model (`encode`, `get_embedding_dimension`), so the rest of the stage
  (memmap, FAISS training, adds, exact re-rank) is the real one. The real model's encoding
  speed is a GPU figure (`benchmarks/retrieval_qa.py --embed N`); here the encoder costs
  ~nothing.

Queries (`--queries`, default 1,000): a window of 12 words of a random passage (the "prompt")
followed by five 3-word "options", one from that passage and four from other passages of its
article, the shape of `data.question_query`. Each is searched alone through
`Retriever.rankings` (dense, sparse and their reciprocal rank fusion) and each retriever alone,
for p50/p95 latency; recall@10 of the dense index (IVF-PQ + re-rank above
`retriever.exact_below` passages, else flat) is measured against exact brute-force search of
the same query vectors over every passage's float16 vector, on `--recall-queries` of them, at
the configured nprobe and at `--nprobes`. Aims (issue 25): peak RSS < 8 GiB at 6M passages,
recall@10 >= 0.95, p95 < 50 ms.

One file of ~550 lines: the corpus generator, the encoder and the per-stage runner serve this
benchmark only, and read in order.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks._util import machine  # noqa: E402
from benchmarks.retrieval_qa import exact_top_k, peak_rss_gib  # noqa: E402
from projects.retrieval_qa.synthetic import SYLLABLES  # noqa: E402

STAGES = ("passages", "dense", "bm25")  # build order of pipeline.build_retriever
STEPS = ("corpus", *STAGES, "queries")
ENCODER_NAME = "benchmark-hashing-bow-384"  # only a cache-key part: never loaded
DIM = 384
BUCKETS = 2**14
N_TOPICS, TOPIC_WORDS, GLOBAL_WORDS = 1000, 1000, 2_000_000
ARTICLES_PER_BATCH, ARTICLES_PER_FILE = 20_000, 400_000


# --- the cheap deterministic encoder -------------------------------------------------------


class HashingEncoder:
    """What `DenseIndex` uses of a SentenceTransformer, as a hashed bag of words (English stop
    words dropped, log term counts) times a fixed random projection: deterministic across
    processes (murmur3, seeded matrix), ~0 cost."""

    def __init__(self, dim: int = DIM, buckets: int = BUCKETS, seed: int = 0) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectorizer = HashingVectorizer(
            n_features=buckets, alternate_sign=False, norm=None, stop_words="english"
        )
        rng = np.random.default_rng(seed)
        self.projection = rng.standard_normal((buckets, dim), dtype=np.float32)

    def get_embedding_dimension(self) -> int:
        return self.projection.shape[1]

    def encode(self, texts: list[str], normalize_embeddings: bool = True, **_: Any) -> np.ndarray:
        counts = self.vectorizer.transform(texts).astype(np.float32)
        counts.data = np.log1p(counts.data)  # damp repeated words
        x = np.asarray(counts @ self.projection, dtype=np.float32)
        if normalize_embeddings:
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x


def plug_encoder(encoder: HashingEncoder) -> None:
    """Every `DenseIndex` in this process encodes with `encoder` instead of loading the
    configured sentence-transformers model (its `encoder` property is the one place it loads)."""
    from projects.retrieval_qa.retrieval import DenseIndex

    DenseIndex.encoder = property(lambda self: encoder)


# --- the generated corpus ------------------------------------------------------------------


def pseudo_words(ids: np.ndarray) -> list[str]:
    """A distinct lower-case word for each id: its digits in base len(SYLLABLES), as syllables."""
    base, out = len(SYLLABLES), []
    for i in ids.tolist():
        parts = []
        while True:
            i, r = divmod(i, base)
            parts.append(SYLLABLES[r])
            if i == 0:
                break
        out.append("".join(parts) + ("x" if len(parts) == 1 else ""))  # 2+ syllables a word
    return out


class CorpusWriter:
    """Articles whose chunking gives exactly `n` passages, as parquet row groups."""

    def __init__(self, sentences: int, stride: int, seed: int) -> None:
        from bm25s.stopwords import STOPWORDS_EN

        self.stop = np.array(STOPWORDS_EN, dtype=object)
        n_content = GLOBAL_WORDS + N_TOPICS * TOPIC_WORDS
        self.words = np.array(pseudo_words(np.arange(n_content)), dtype=object)
        self.sentences, self.stride, self.seed = sentences, stride, seed

    @staticmethod
    def zipf_mandelbrot(rng: np.random.Generator, size: int, n: int, q: float) -> np.ndarray:
        """Ranks 0..n-1 with P(r) ~ 1/(r + 1 + q) (inverse CDF of the continuous form)."""
        u = rng.random(size)
        r = q * ((n + q) / q) ** u - q
        return np.minimum(r.astype(np.int64), n - 1)

    def articles(self, n_passages: int) -> Iterator[tuple[list[str], list[str]]]:
        """(titles, texts) batches; an article of p passages has s + stride * (p - 1)
        sentences, which `chunking.sentence_windows` cuts into exactly p windows."""
        rng = np.random.default_rng(self.seed)
        done, article = 0, 0
        while done < n_passages:
            p = rng.integers(1, 7, ARTICLES_PER_BATCH)
            ends = np.cumsum(p)
            keep = int(np.searchsorted(ends, n_passages - done, side="left")) + 1
            p = p[:keep]
            p[-1] -= max(0, int(p.sum()) - (n_passages - done))
            p = p[p > 0]
            m = self.sentences + self.stride * (p - 1)  # sentences an article
            topics = rng.integers(N_TOPICS, size=len(p))
            lengths = rng.integers(12, 33, int(m.sum()))  # words a sentence
            n_words = int(lengths.sum())
            kind = rng.random(n_words)
            word_topic = np.repeat(np.repeat(topics, m), lengths)
            ids = self.zipf_mandelbrot(rng, n_words, GLOBAL_WORDS, 10.0)
            topical = kind >= 0.70
            ids[topical] = (
                GLOBAL_WORDS
                + word_topic[topical] * TOPIC_WORDS
                + self.zipf_mandelbrot(rng, int(topical.sum()), TOPIC_WORDS, 2.0)
            )
            words = self.words[ids]
            stop = kind < 0.40
            words[stop] = self.stop[rng.integers(len(self.stop), size=int(stop.sum()))]
            words = words.tolist()
            starts = np.concatenate([[0], np.cumsum(lengths)]).tolist()
            sentences = [" ".join(words[a:b]) for a, b in zip(starts[:-1], starts[1:])]
            sentences = [s[0].upper() + s[1:] + "." for s in sentences]
            bounds = np.concatenate([[0], np.cumsum(m)]).tolist()
            texts = [" ".join(sentences[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
            heads = self.words[GLOBAL_WORDS + topics * TOPIC_WORDS].tolist()
            names = pseudo_words(np.arange(article, article + len(p)) + 7 * GLOBAL_WORDS)
            titles = [f"{h.capitalize()} {w}" for h, w in zip(heads, names)]
            done += int(p.sum())
            article += len(p)
            yield titles, texts

    def write(self, corpus_dir: Path, n_passages: int) -> int:
        """`wiki-stem-NNN.parquet` files of `title, text`, one row group per batch."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        corpus_dir.mkdir(parents=True, exist_ok=True)
        writer, n_files, in_file, n_articles = None, 0, 0, 0
        schema = pa.schema([("title", pa.string()), ("text", pa.string())])
        try:
            for titles, texts in self.articles(n_passages):
                if writer is None or in_file >= ARTICLES_PER_FILE:
                    if writer is not None:
                        writer.close()
                    path = corpus_dir / f"wiki-stem-{n_files:03d}.parquet"
                    writer, n_files, in_file = pq.ParquetWriter(path, schema), n_files + 1, 0
                writer.write_table(pa.table({"title": titles, "text": texts}, schema=schema))
                in_file += len(texts)
                n_articles += len(texts)
        finally:
            if writer is not None:
                writer.close()
        return n_articles


# --- measuring one process -----------------------------------------------------------------


class AnonPeak:
    """Peak anonymous RSS (RssAnon in /proc/self/status), sampled every `every` seconds."""

    def __init__(self, every: float = 0.05) -> None:
        self.peak_kib, self.every = 0, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def now_kib() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self.now_kib())
            time.sleep(self.every)

    def stop(self) -> float:
        """The peak in GiB."""
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self.now_kib())
        return self.peak_kib / 2**20


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def project_config(args: argparse.Namespace) -> Any:
    """The full experiment's config (IVF-PQ, chunking 3/2, bge-small's 384 dims) pointed at the
    generated corpus and a cache in the work folder; `--override`s last."""
    from projects.retrieval_qa.config import RetrievalQAConfig
    from shared.config import compose, validate

    work = Path(args.workdir).resolve()
    overrides = [
        "experiment=full",
        f"data.dir={work / 'data'}",
        f"cache_dir={work / 'cache'}",
        f"retriever.encoder={ENCODER_NAME}",
        *args.override,
    ]
    return validate(compose("retrieval_qa", overrides), RetrievalQAConfig)


class StageBuilt(Exception):  # noqa: N818 (a signal, not an error)
    """Raised once the measured stage is built: the later stages are other processes' work."""


def build_one_stage(target: str, cfg: Any) -> dict[str, Any]:
    """`pipeline.build_retriever(cfg)` up to and including `target`: the passage store is
    loaded from the cache when a later stage needs it, the stages `target` does not need are
    skipped, `target` is built (into a temporary folder, sealed with its manifest, renamed)."""
    from projects.retrieval_qa import pipeline
    from projects.retrieval_qa.store import cached_stage, stage_dir

    figures: dict[str, Any] = {}

    def measured(root: Path, stage: str, key: str, build: Callable, load: Callable) -> Any:
        if stage == target:
            t0 = time.perf_counter()
            result, cached = cached_stage(root, stage, key, build, load)
            figures["seconds"] = time.perf_counter() - t0
            folder = stage_dir(root, stage, key)
            figures.update(cached=cached, bytes=folder_bytes(folder), folder=str(folder))
            if stage == "passages":
                figures["n_passages"] = len(result)
            if stage == "dense":
                figures["index_type"] = result.index_type
            if stage == "bm25":
                figures["nnz"] = int(len(result.bm25.scores["data"]))
                figures["vocab"] = len(result.tokenizer.get_vocab_dict())
            raise StageBuilt
        if stage == "passages":
            return cached_stage(root, stage, key, build, load)
        return None, True  # a stage `target` does not read

    pipeline.cached_stage = measured
    with contextlib.suppress(StageBuilt):
        pipeline.build_retriever(cfg)
    return figures


# --- the steps, each its own process -------------------------------------------------------


def step_corpus(args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    corpus_dir = Path(cfg.data.corpus_dir)
    if corpus_dir.is_dir() and (corpus_dir / "DONE").is_file():
        done = json.loads((corpus_dir / "DONE").read_text())
        if done["passages"] == args.passages and done["seed"] == args.seed:
            return {**done, "cached": True}
        raise SystemExit(f"{corpus_dir} holds another corpus ({done}): use another --workdir")
    t0 = time.perf_counter()
    writer = CorpusWriter(cfg.chunking.sentences, cfg.chunking.stride, args.seed)
    n_articles = writer.write(corpus_dir, args.passages)
    done = {
        "passages": args.passages,
        "seed": args.seed,
        "articles": n_articles,
        "seconds": time.perf_counter() - t0,
        "bytes": folder_bytes(corpus_dir),
    }
    (corpus_dir / "DONE").write_text(json.dumps(done))
    return {**done, "cached": False}


def make_queries(store: Any, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Question-shaped queries (a 12-word prompt + five 3-word options, one of them from the
    same passage, four from the same article) and the passage each was drawn from."""
    rng = np.random.default_rng((seed, 1))
    source = rng.choice(len(store), n, replace=False)
    queries = []
    for src, text in zip(source.tolist(), store.column("text", source.tolist())):
        words = text.split()
        a = int(rng.integers(max(1, len(words) - 15)))
        options = [words[a + 12 : a + 15]]
        # wrong options from the same article's other passages (real distractors are facts of
        # the same kind), else from the passage itself
        near = list(range(max(0, src - 6), min(len(store), src + 7)))
        title = store.column("title", [src])[0]
        same = [p for p, t in zip(near, store.column("title", near)) if t == title and p != src]
        for other in store.column("text", rng.choice(same or [src], 4).tolist()):
            w = other.split()
            b = int(rng.integers(max(1, len(w) - 3)))
            options.append(w[b : b + 3])
        order = rng.permutation(5)
        queries.append(" ".join(words[a : a + 12] + [" ".join(options[j]) for j in order]))
    return queries, source


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def step_queries(args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    """Load the built retriever as `train` does (every stage verified against its manifest),
    then one query at a time through each retriever and through `Retriever.rankings`."""
    import faiss

    from projects.retrieval_qa.pipeline import build_retriever

    faiss.omp_set_num_threads(args.query_threads)  # one query at a time: threads only contend
    t0 = time.perf_counter()
    retriever, _ = build_retriever(cfg)
    load_s = time.perf_counter() - t0
    rss_loaded = peak_rss_gib()
    k = cfg.retriever.candidates
    queries, source = make_queries(retriever.passages, args.queries, args.seed)
    timings: dict[str, list[float]] = {"dense": [], "sparse": [], "fused": []}
    hits = dict.fromkeys(("dense", "sparse", "hybrid"), 0)
    searches = {"dense": retriever.dense.search, "sparse": retriever.sparse.search}
    for q, src in zip(queries, source):
        for name, search in searches.items():
            t1 = time.perf_counter()
            search([q], k)
            timings[name].append((time.perf_counter() - t1) * 1000)
        t1 = time.perf_counter()
        ranked = retriever.rankings([q])
        timings["fused"].append((time.perf_counter() - t1) * 1000)
        for name in hits:
            hits[name] += int(src in ranked[name][0, :10])
    rss_served = peak_rss_gib()
    # recall@10 of the (approximate) dense index against exact search of the same vectors
    dense, n_recall = retriever.dense, min(args.recall_queries, len(queries))
    vectors = dense.embed(queries[:n_recall])
    t1 = time.perf_counter()
    truth = exact_top_k(dense.vectors, vectors, 10, 65536)
    exact_s = time.perf_counter() - t1
    r = cfg.retriever
    recall = {}  # "nprobe/rerank" -> (recall@10, p50, p95 ms of one query's search_vectors)
    grid = [(p, x) for p in sorted({r.nprobe, *args.nprobes}) for x in sorted({r.rerank, 32})]
    for nprobe, rerank in grid if dense.index_type == "ivfpq" else grid[:1]:
        dense.nprobe, dense.rerank = nprobe, rerank
        found, ms = [], []
        for v in vectors:
            t1 = time.perf_counter()
            found.append(dense.search_vectors(v[None], 10)[0])
            ms.append((time.perf_counter() - t1) * 1000)
        hit = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
        recall[f"{nprobe}/{rerank}"] = (float(hit), *percentiles(ms))
    return {
        "load_seconds": load_s,
        "rss_loaded_gib": rss_loaded,
        "rss_served_gib": rss_served,
        "latency_ms": {name: percentiles(ms) for name, ms in timings.items()},
        "source_in_top10": {name: h / len(queries) for name, h in hits.items()},
        "recall_at_10": recall[f"{r.nprobe}/{r.rerank}"],
        "recall_by_nprobe": recall,
        "recall_queries": n_recall,
        "exact_search_seconds": exact_s,
        "exact_source_in_top10": float(np.mean([a in b for a, b in zip(source, truth)])),
        "index_type": dense.index_type,
        "query_threads": args.query_threads,
        "settings": {
            "candidates": k,
            "nlist": r.nlist,
            "nprobe": r.nprobe,
            "pq_m": r.pq_m,
            "rerank": r.rerank,
            "exact_below": r.exact_below,
        },
    }


def run_step(args: argparse.Namespace) -> None:
    """Child process: one step, its figures written as JSON beside the others."""
    anon = AnonPeak()
    cfg = project_config(args)
    plug_encoder(HashingEncoder())
    if args.step == "corpus":
        figures = step_corpus(args, cfg)
    elif args.step == "queries":
        figures = step_queries(args, cfg)
    else:
        figures = build_one_stage(args.step, cfg)
    figures.update(peak_rss_gib=peak_rss_gib(), peak_anon_gib=anon.stop())
    out = Path(args.workdir) / "results" / f"{args.step}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))


# --- the parent: one process per step, then the table --------------------------------------


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**28 else f"{n_bytes / 2**20:.1f} MiB"


def table(run: dict[str, Any], res: dict[str, dict]) -> str:
    """The markdown figures of one run (`run`: its command, date, load; `res`: each step's)."""
    q = res["queries"]
    s = q["settings"]
    kind = q["index_type"]
    if kind == "ivfpq":
        kind += (
            f" (nlist {s['nlist']} capped at n/39, nprobe {s['nprobe']}, {s['pq_m']} B a vector,"
            f" re-rank {10 * s['rerank']} from float16)"
        )
    lines = [
        f"### retrieval_qa at {run['passages']:,} generated passages",
        "",
        f"`{run['command']}`",
        "",
        f"{machine()}; {run['date']}; load average {run['load'][0]} at start, "
        f"{run['load'][1]} at end; python {platform.python_version()}.",
        f"Dense index: {kind}; hashing-trick encoder ({DIM} dims), not the real model; "
        f"builds on every core, queries with {q['query_threads']} FAISS thread(s).",
        "",
        "| step | seconds | on disk | peak RSS (getrusage) | peak anonymous RSS |",
        "|---|---|---|---|---|",
    ]
    c = res["corpus"]
    names = {
        "corpus": f"generate corpus ({c['articles']:,} articles, parquet; not project code)",
        "passages": "passage store (stream parquet, chunk, write)",
        "dense": "dense (encode to float16 memmap, FAISS train + add)",
        "bm25": f"BM25 (tokenise to ids, bm25s index, save; {res['bm25']['vocab']:,} words, "
        f"{res['bm25']['nnz']:,} (word, passage) scores)",
    }
    for step, name in names.items():
        r = res[step]
        secs = f"{r['seconds']:.1f}" + (" (cached)" if r.get("cached") else "")
        lines.append(
            f"| {name} | {secs} | {gib(r['bytes'])} | {r['peak_rss_gib']:.2f} GiB "
            f"| {r['peak_anon_gib']:.2f} GiB |"
        )
    lines += [
        f"| load all stages (verify manifests, open) | {q['load_seconds']:.1f} | | "
        f"{q['rss_loaded_gib']:.2f} GiB | |",
        f"| serve {run['queries']:,} queries | | | {q['rss_served_gib']:.2f} GiB "
        f"| {q['peak_anon_gib']:.2f} GiB (incl. exact search) |",
        "",
        f"| one query, top {s['candidates']} | p50 ms | p95 ms | source passage in top 10 |",
        "|---|---|---|---|",
    ]
    top10 = q["source_in_top10"]
    for name, label, hit in (
        ("dense", "dense (encode + search + re-rank)", "dense"),
        ("sparse", "BM25", "sparse"),
        ("fused", "hybrid (`Retriever.rankings`: both + RRF)", "hybrid"),
    ):
        p50, p95 = q["latency_ms"][name]
        lines.append(f"| {label} | {p50:.2f} | {p95:.2f} | {top10[hit]:.3f} |")
    lines += [
        "",
        f"Dense recall@10 against exact search (brute force over the float16 vectors, "
        f"{q['recall_queries']} queries, {q['exact_search_seconds']:.1f} s):",
        "",
        "| nprobe | exact re-rank of | recall@10 vs exact | search only, p50 / p95 ms |",
        "|---|---|---|---|",
    ]
    for key, (recall, p50, p95) in q["recall_by_nprobe"].items():
        nprobe, rerank = (int(v) for v in key.split("/"))
        mark = " (config)" if (nprobe, rerank) == (s["nprobe"], s["rerank"]) else ""
        cells = f"{nprobe}{mark} | {10 * rerank}" if q["index_type"] == "ivfpq" else "— | —"
        lines.append(f"| {cells} | {recall:.3f} | {p50:.2f} / {p95:.2f} |")
    lines.append(
        f"\nSource passage in the exact top 10 (the encoder's own ceiling): "
        f"{q['exact_source_in_top10']:.3f} of these {q['recall_queries']} queries."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, required=True)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--workdir", default=None, help="default: /tmp/rq-scale-<passages>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--nprobes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[64, 128],
        help="recall@10 also at these nprobe values (IVF kinds)",
    )
    parser.add_argument(
        "--query-threads", type=int, default=1, help="FAISS threads while serving single queries"
    )
    parser.add_argument(
        "--override", action="append", default=[], help="a Hydra override, e.g. retriever.nprobe=64"
    )
    parser.add_argument(
        "--report", action="store_true", help="print the table of the run in --workdir again"
    )
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # child processes
    args = parser.parse_args()
    args.workdir = args.workdir or f"/tmp/rq-scale-{args.passages}"
    if args.step:
        return run_step(args)
    results_dir = Path(args.workdir) / "results"
    if not args.report:
        # the encoder name is a cache-key part only: never ask the hub for it
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        run = {
            "command": shlex.join(["python", "benchmarks/retrieval_scale.py", *sys.argv[1:]]),
            "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "load": [f"{os.getloadavg()[0]:.1f}"],
            "passages": args.passages,
            "queries": args.queries,
        }
        for step in STEPS:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--step", step], check=True)
            print(f"[{step}] {time.perf_counter() - t0:.1f} s wall", file=sys.stderr, flush=True)
        run["load"].append(f"{os.getloadavg()[0]:.1f}")
        (results_dir / "run.json").write_text(json.dumps(run, indent=1))
    run = json.loads((results_dir / "run.json").read_text())
    results = {step: json.loads((results_dir / f"{step}.json").read_text()) for step in STEPS}
    print(table(run, results))


if __name__ == "__main__":
    main()
