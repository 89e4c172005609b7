"""The multiple-choice reader: (retrieved context, question + option) pairs -> one score each.

Truncation trims only the context, so the question and the option always reach the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from projects.retrieval_qa.data import LETTERS
from shared.metrics import map_at_k
from shared.models import resolve_model_path


def load_reader(name: str, num_hidden_layers: int | None = None):
    """(tokenizer, AutoModelForMultipleChoice); the choice head is new when `name` lacks one."""
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    path = resolve_model_path(name)
    kwargs = {"num_hidden_layers": num_hidden_layers} if num_hidden_layers else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForMultipleChoice.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise RuntimeError(
            f"reader model '{name}' could not be loaded ({exc}). Offline? Download it into the "
            "Hugging Face cache first, or point reader.model at a local folder."
        ) from exc
    return tokenizer, model


def encode(tokenizer, questions: pd.DataFrame, contexts: list[str], max_length: int) -> dict:
    """Tensors of shape (n_questions, 5, max_length) for the reader."""
    first, second = [], []
    for (_, q), ctx in zip(questions.iterrows(), contexts):
        for letter in LETTERS:
            first.append(ctx if ctx else "")
            second.append(f"{q['prompt']} {tokenizer.sep_token or ''} {q[letter]}")
    enc = tokenizer(
        first,
        second,
        truncation="only_first",
        max_length=max_length,
        padding="max_length",
        return_tensors="pt",
    )
    return {k: v.view(len(questions), len(LETTERS), -1) for k, v in enc.items()}


def as_dataset(enc: dict, questions: pd.DataFrame) -> TensorDataset:
    labels = torch.tensor([LETTERS.index(a) for a in questions["answer"]])
    keys = sorted(enc)
    return TensorDataset(*(enc[k] for k in keys), labels)


def ranked_letters(logits: np.ndarray, k: int = 3) -> list[list[str]]:
    """Highest scores first: the LLM Science Exam prediction `D B E` as a list."""
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return [[LETTERS[i] for i in row] for row in order]


@torch.no_grad()
def score_options(model, enc: dict, batch_size: int = 16) -> np.ndarray:
    """(n_questions, 5) logits from the reader in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    n = next(iter(enc.values())).shape[0]
    out = []
    for i in range(0, n, batch_size):
        batch = {k: v[i : i + batch_size].to(device) for k, v in enc.items()}
        out.append(model(**batch).logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(LETTERS)))


def map3(model, tokenizer, questions: pd.DataFrame, contexts: list[str], cfg: Any) -> float:
    """MAP@3 of the reader on labelled questions, each read with its context ('' = none)."""
    enc = encode(tokenizer, questions, contexts, cfg.max_length)
    logits = score_options(model, enc, cfg.eval_batch_size)
    return map_at_k(questions["answer"].tolist(), ranked_letters(logits))
