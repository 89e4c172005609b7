"""Retrieve-then-read, as one object the trainer builds and the registered model carries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from projects.retrieval_qa.data import question_query
from projects.retrieval_qa.reader import encode, ranked_letters, score_options
from projects.retrieval_qa.retrieval import DenseIndex, SparseIndex, reciprocal_rank_fusion


@dataclass
class Retriever:
    """Passages + both indexes + fusion settings."""

    passages: pd.DataFrame
    dense: DenseIndex
    sparse: SparseIndex
    candidates: int
    weights: dict[str, float]
    rrf_k: float

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
        texts = self.passages["text"].to_numpy()
        return [" ".join(texts[p] for p in row[:k] if p >= 0) for row in ranking]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.passages.to_parquet(folder / "passages.parquet", index=False)
        self.dense.save(folder)
        self.sparse.save(folder)
        (folder / "retriever.json").write_text(
            json.dumps(
                {
                    "encoder": self.dense.encoder_name,
                    "index_type": self.dense.index_type,
                    "nprobe": self.dense.nprobe,
                    "ef_search": self.dense.ef_search,
                    "candidates": self.candidates,
                    "weights": self.weights,
                    "rrf_k": self.rrf_k,
                },
                indent=1,
            )
        )

    @classmethod
    def load(cls, folder: Path) -> Retriever:
        meta = json.loads((folder / "retriever.json").read_text())
        dense = DenseIndex(
            meta["encoder"], meta["index_type"], nprobe=meta["nprobe"], ef_search=meta["ef_search"]
        ).load(folder)
        return cls(
            pd.read_parquet(folder / "passages.parquet"),
            dense,
            SparseIndex().load(folder),
            meta["candidates"],
            meta["weights"],
            meta["rrf_k"],
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
        ranking = self.retriever.rankings([question_query(r) for _, r in questions.iterrows()])
        hybrid = ranking["hybrid"]
        ctx = self.retriever.contexts(hybrid, self.context_passages)
        logits = score_options(self.reader, encode(self.tokenizer, questions, ctx, self.max_length))
        used = [[int(p) for p in row[: self.context_passages] if p >= 0] for row in hybrid]
        return ranked_letters(logits), used

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
