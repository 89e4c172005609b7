"""Build (or reuse) passages and indexes, fine-tune the reader, evaluate, log and register.

python -m projects.retrieval_qa.train experiment=smoke|full [data.dir=PATH] [key=value ...]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import hydra
import mlflow
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from projects.retrieval_qa.chunking import build_passages
from projects.retrieval_qa.config import RetrievalQAConfig
from projects.retrieval_qa.data import LETTERS, question_query, read_corpus, read_questions
from projects.retrieval_qa.pipeline import QAPipeline, Retriever
from projects.retrieval_qa.pyfunc import RetrievalQAModel
from projects.retrieval_qa.reader import (
    ReaderModule,
    as_dataset,
    encode,
    load_reader,
    ranked_letters,
    score_options,
)
from projects.retrieval_qa.retrieval import (
    DenseIndex,
    SparseIndex,
    content_key,
    recall_at_k,
    stage_dir,
)
from projects.retrieval_qa.synthetic import ensure_dataset
from shared import tracking
from shared.config import validate
from shared.lightning import build_trainer
from shared.logging import get_logger
from shared.metrics import map_at_k
from shared.seed import seed_everything

log = get_logger(__name__)
RECALL_KS = (1, 3, 5, 10)


def build_retriever(cfg: RetrievalQAConfig) -> tuple[Retriever, dict]:
    """Passages, dense and sparse indexes, each rebuilt only when its inputs' hash changed."""
    corpus_fp = tracking.data_fingerprint([cfg.data.corpus_dir])
    stats: dict = {"corpus_fingerprint": corpus_fp}
    p_key = content_key(corpus_fp, OmegaConf.to_container(cfg.chunking))
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


def split_train_val(
    df: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    val = df.sample(frac=fraction, random_state=seed)
    return df.drop(val.index).reset_index(drop=True), val.reset_index(drop=True)


def samples_markdown(
    questions: pd.DataFrame,
    ranked: list[list[str]],
    used: list[list[int]],
    passages: pd.DataFrame,
    n: int = 10,
) -> str:
    lines = ["# Sample test questions, retrieved passages and ranked answers\n"]
    for i in range(min(n, len(questions))):
        q = questions.iloc[i]
        lines.append(f"## {q['id']}: {q['prompt']}")
        lines += [f"- {c}: {q[c]}" for c in LETTERS]
        truth = f" (answer: {q['answer']})" if "answer" in q else ""
        lines.append(f"\n**prediction:** {' '.join(ranked[i])}{truth}\n")
        for p in used[i]:
            lines.append(f"> [{passages.title.iloc[p]}] {passages.text.iloc[p]}\n")
    return "\n".join(lines)


def run(raw_cfg: DictConfig) -> dict[str, float]:
    cfg: RetrievalQAConfig = validate(raw_cfg, RetrievalQAConfig)
    seed_everything(cfg.seed, deterministic=False)
    if cfg.data.generate:
        ensure_dataset(cfg.data.dir, **dict(cfg.data.synthetic or {}))
    data_dir = Path(cfg.data.dir)
    train_all = read_questions(data_dir / cfg.data.train_file, require_answer=True)
    test = read_questions(data_dir / cfg.data.test_file, require_answer=False)
    gold_path = data_dir / "smoke-gold.csv"
    gold = pd.read_csv(gold_path).set_index("id")["title"] if gold_path.is_file() else None
    if gold is not None:
        gold.index = gold.index.astype(str)
    train, val = split_train_val(train_all, cfg.data.val_fraction, cfg.seed)
    test_labelled = "answer" in test.columns

    with tracking.start_run(
        cfg.tracking.experiment,
        run_name=cfg.tracking.run_name,
        config=cfg,
        data_paths=[
            data_dir / cfg.data.train_file,
            data_dir / cfg.data.test_file,
            Path(cfg.data.corpus_dir),
        ],
        tags=cfg.tracking.tags,
    ) as run:
        retriever, stats = build_retriever(cfg)
        mlflow.log_dict(stats, "index_stats.json")
        log.info(
            "%d passages (%s)",
            stats["n_passages"],
            "cached" if stats.get("dense_cached") else "built",
        )
        splits = {"train": train, "val": val, "test": test}
        rankings = {
            s: retriever.rankings([question_query(r) for _, r in q.iterrows()])
            for s, q in splits.items()
        }
        metrics: dict[str, float] = {"n_passages": float(stats["n_passages"])}
        scored = [s for s in ("val", "test") if s == "val" or test_labelled]
        for method in ("dense", "sparse", "hybrid"):
            hits = np.concatenate(
                [
                    passage_hits(retriever.passages, rankings[s][method], splits[s], gold)
                    for s in scored
                ]
            )
            for k in RECALL_KS:
                metrics[f"recall_at_{k}_{method}"] = recall_at_k(hits, k)

        k_ctx = cfg.reader.context_passages
        contexts = {s: retriever.contexts(rankings[s]["hybrid"], k_ctx) for s in splits}
        tokenizer, model = load_reader(cfg.reader.model, cfg.reader.num_hidden_layers)
        enc = {s: encode(tokenizer, splits[s], contexts[s], cfg.reader.max_length) for s in splits}
        keys = sorted(enc["train"])
        loaders = {
            "train": DataLoader(
                as_dataset(enc["train"], train), batch_size=cfg.reader.batch_size, shuffle=True
            ),
            "val": DataLoader(as_dataset(enc["val"], val), batch_size=cfg.reader.eval_batch_size),
        }
        model.train()  # from_pretrained returns eval mode; Lightning keeps module modes
        module = ReaderModule(model, keys, OmegaConf.to_container(cfg.optim))
        with tempfile.TemporaryDirectory() as tmp:
            trainer, _ = build_trainer(cfg.trainer, default_root_dir=tmp)
            trainer.fit(module, loaders["train"], loaders["val"])
        model.eval()

        def evaluate(split: str, with_context: bool) -> float:
            q = splits[split]
            e = (
                enc[split]
                if with_context
                else encode(tokenizer, q, [""] * len(q), cfg.reader.max_length)
            )
            logits = score_options(model, e, cfg.reader.eval_batch_size)
            return map_at_k(q["answer"].tolist(), ranked_letters(logits))

        for s in scored:
            metrics[f"{s}_map3"] = evaluate(s, True)
            metrics[f"{s}_map3_no_context"] = evaluate(s, False)
        tracking.log_metrics(metrics)

        pipeline = QAPipeline(retriever, tokenizer, model, k_ctx, cfg.reader.max_length)
        ranked, used = pipeline.answer(test.head(10))
        mlflow.log_text(
            samples_markdown(test.head(10), ranked, used, retriever.passages), "samples.md"
        )
        headline = "test_map3" if test_labelled else "val_map3"
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp) / "bundle"
            pipeline.save(bundle)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=RetrievalQAModel(),
                artifacts={"bundle": str(bundle)},
                input_example=test[["id", "prompt", *LETTERS]].head(2),
                pip_requirements=[
                    "torch",
                    "transformers",
                    "sentence-transformers",
                    "faiss-cpu",
                    "bm25s",
                    "pandas",
                ],
            )
        if cfg.tracking.register:
            version, promoted = tracking.register_if_better(
                info.model_uri, "retrieval_qa", headline, metrics[headline]
            )
            mlflow.set_tags({"model_version": version, "champion": str(promoted).lower()})
        mlflow.set_tag("model_uri", info.model_uri)
        mlflow.log_text(
            json.dumps({k: round(v, 4) for k, v in metrics.items()}, indent=1), "metrics.json"
        )
        tracking.announce(run, headline, metrics[headline])
    return metrics


@hydra.main(version_base="1.3", config_path="../../configs/retrieval_qa", config_name="train")
def main(cfg: DictConfig) -> float:
    metrics = run(cfg)
    return metrics.get("test_map3", metrics.get("val_map3", 0.0))


if __name__ == "__main__":
    main()
