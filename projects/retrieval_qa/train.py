"""Build (or reuse) passages and indexes, fine-tune the reader, evaluate, log and register.

python -m projects.retrieval_qa.train experiment=smoke|full [data.dir=PATH] [key=value ...]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from projects.retrieval_qa import pyfunc
from projects.retrieval_qa.config import RetrievalQAConfig
from projects.retrieval_qa.data import (
    LETTERS,
    load_splits,
    question_files,
    question_query,
    read_gold_titles,
)
from projects.retrieval_qa.model import load_reader, map3
from projects.retrieval_qa.module import fit_reader
from projects.retrieval_qa.pipeline import QAPipeline, build_retriever
from projects.retrieval_qa.report import samples_markdown
from projects.retrieval_qa.retrieval import retrieval_recalls
from projects.retrieval_qa.store import publish_index
from projects.retrieval_qa.synthetic import ensure_dataset
from shared import tracking
from shared.cli import hydra_entry
from shared.config import to_dict, validate
from shared.logging import get_logger
from shared.seed import seed_everything

log = get_logger(__name__)
RECALL_KS = (1, 3, 5, 10)


def run(raw_cfg: DictConfig) -> dict[str, float]:
    cfg: RetrievalQAConfig = validate(raw_cfg, RetrievalQAConfig)
    seed_everything(cfg.seed, deterministic=False)
    if cfg.data.generate:
        ensure_dataset(cfg.data.dir, **dict(cfg.data.synthetic or {}))
    splits, n_extra_dropped = load_splits(cfg.data, cfg.seed)
    test, gold = splits["test"], read_gold_titles(cfg.data.dir)
    scored = ["val", "test"] if "answer" in test.columns else ["val"]

    data_paths = [*question_files(cfg.data), Path(cfg.data.corpus_dir)]
    with tracking.start_pipeline_run(cfg, data_paths) as run:
        retriever, stats = build_retriever(cfg)
        # The registered model references the index by content hash in the shared store.
        retriever.stages, stats["index_store_copied"] = publish_index(
            retriever.stages, cfg.index_store
        )
        stats["index_store"] = str(Path(cfg.index_store).resolve())
        tracking.get_mlflow().log_dict(stats, "index_stats.json")
        log.info("%d passages (dense index cached: %s)", stats["n_passages"], stats["dense_cached"])
        rankings = {
            s: retriever.rankings([question_query(r) for _, r in q.iterrows()])
            for s, q in splits.items()
        }
        metrics = {"n_passages": float(stats["n_passages"])}
        metrics |= {f"n_{s}": float(len(q)) for s, q in splits.items()}
        metrics["n_extra_train_dropped"] = float(n_extra_dropped)  # duplicates of val / test
        metrics |= retrieval_recalls(retriever.passages, rankings, splits, scored, gold, RECALL_KS)

        r = cfg.reader
        contexts = {
            s: retriever.contexts(rankings[s]["hybrid"], r.context_passages) for s in splits
        }
        tokenizer, model = load_reader(r.model, r.num_hidden_layers, r.dropout)
        # The checkpoint kept is the epoch with the best val MAP@3; test is only reported.
        model, metrics["best_epoch"] = fit_reader(
            model, tokenizer, splits, contexts, r, to_dict(cfg.optim), cfg.trainer
        )
        for s in scored:
            for name, ctx in (("", contexts[s]), ("_no_context", [""] * len(splits[s]))):
                value, se = map3(model, tokenizer, splits[s], ctx, r)
                metrics[f"{s}_map3{name}"], metrics[f"{s}_map3{name}_se"] = value, se
        tracking.log_metrics(metrics)
        tracking.get_mlflow().log_text(
            json.dumps({k: round(v, 4) for k, v in metrics.items()}, indent=1), "metrics.json"
        )

        pipeline = QAPipeline(retriever, tokenizer, model, r.context_passages, r.max_length)
        ranked, used = pipeline.answer(test.head(10))
        sample = samples_markdown(test.head(10), ranked, used, retriever.passages)
        tracking.get_mlflow().log_text(sample, "samples.md")
        with tempfile.TemporaryDirectory() as tmp:
            pipeline.save(Path(tmp) / "bundle")
            tracking.publish(
                run,
                cfg.tracking,
                metrics,
                **pyfunc.package(Path(tmp) / "bundle", test[["id", "prompt", *LETTERS]]),
            )
    return metrics


main = hydra_entry(run, "retrieval_qa")

if __name__ == "__main__":
    main()
