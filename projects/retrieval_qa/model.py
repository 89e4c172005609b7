"""The multiple-choice reader: (retrieved context, question + option) pairs -> one score each.

Truncation trims the context first, then the question, never the option (`fit_lengths`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from projects.retrieval_qa.data import LETTERS
from shared.metrics import map_at_k
from shared.pretrained import resolve_model_path


def load_reader(name: str, num_hidden_layers: int | None = None, dropout: float | None = None):
    """(tokenizer, AutoModelForMultipleChoice); the choice head is new when `name` lacks one.

    `dropout` (None = the checkpoint's own) sets every dropout of the reader, backbone and head
    (`set_dropout`)."""
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
    if dropout is not None:
        set_dropout(model, dropout)
    return tokenizer, model


def set_dropout(model: torch.nn.Module, p: float) -> int:
    """Every `nn.Dropout` of `model` (embeddings, attention probabilities, hidden states, the
    choice head) drops with probability `p`; returns how many were set.

    Why the smoke reader needs 0: all-MiniLM-L6-v2 was trained with mean pooling, so its [CLS]
    is an attention sink (in layer 3 it attends ~94% to itself) whose state hardly depends on the
    input; the option moves it by ~2e-4 of its norm. The multiple-choice head reads exactly that
    [CLS] (pooler -> classifier), and dropout's noise in training mode is orders of magnitude
    larger than that difference between the five options, so the loss stays at ln 5."""
    n = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p, n = float(p), n + 1
    return n


def fit_lengths(n_context: int, n_question: int, n_option: int, budget: int) -> tuple[int, ...]:
    """Token counts kept of (context, question, option) within `budget`: the context gives way
    first, then the question; the option is cut only when it alone exceeds the budget."""
    option = min(n_option, budget)
    question = min(n_question, budget - option)
    return min(n_context, budget - option - question), question, option


def encode(tokenizer, questions: pd.DataFrame, contexts: list[str], max_length: int) -> dict:
    """Tensors of shape (n_questions, 5, max_length): `[CLS] context [SEP] question [SEP] option
    [SEP]` in the tokenizer's own pair template, truncated by `fit_lengths` (never an error,
    however long the question or option; an empty context is the no-context ablation)."""
    from tokenizers import Encoding, Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # our own padding state
    backend.no_padding()
    backend.no_truncation()
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=True) - 1  # 1: inner [SEP]
    if budget < 1:
        raise ValueError(f"reader.max_length={max_length} leaves no room for the option")

    def pieces(texts: list[str]) -> list[Encoding]:
        return backend.encode_batch([str(t) for t in texts], add_special_tokens=False)

    ctx = pieces([c or "" for c in contexts])
    prompts = pieces(questions["prompt"].tolist())
    options = {letter: pieces(questions[letter].tolist()) for letter in LETTERS}
    sep = backend.encode(tokenizer.sep_token or "", add_special_tokens=False)
    rows: dict[str, list[list[int]]] = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    for i in range(len(questions)):
        for letter in LETTERS:
            c, q, o = (_copy(e) for e in (ctx[i], prompts[i], options[letter][i]))
            n_c, n_q, n_o = fit_lengths(len(c.ids), len(q.ids), len(o.ids), budget)
            for enc, n in ((c, n_c), (q, n_q), (o, n_o)):
                enc.truncate(n)
            second = Encoding.merge([q, sep, o], growing_offsets=True)
            pair = backend.post_process(c, second, add_special_tokens=True)
            pad = max_length - len(pair.ids)
            rows["input_ids"].append(pair.ids + [tokenizer.pad_token_id] * pad)
            rows["token_type_ids"].append(pair.type_ids + [tokenizer.pad_token_type_id] * pad)
            rows["attention_mask"].append(pair.attention_mask + [0] * pad)
    keys = [k for k in tokenizer.model_input_names if k in rows]
    return {k: torch.tensor(rows[k]).view(len(questions), len(LETTERS), -1) for k in keys}


def _copy(enc):
    """Encodings truncate in place; each (question, option) pair needs its own copy."""
    from tokenizers import Encoding

    return Encoding.merge([enc], growing_offsets=True)


def as_dataset(enc: dict, questions: pd.DataFrame) -> TensorDataset:
    labels = torch.tensor([LETTERS.index(a) for a in questions["answer"]])
    keys = sorted(enc)
    return TensorDataset(*(enc[k] for k in keys), labels)


def ranked_letters(logits: np.ndarray, k: int = 3) -> list[list[str]]:
    """Highest scores first: the LLM Science Exam prediction `D B E` as a list."""
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return [[LETTERS[i] for i in row] for row in order]


def trim_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(B, 5, max_length) inputs cut to the batch's longest row: `encode` pads on the right
    and masks the padding, so the logits change only by float rounding."""
    mask = batch.get("attention_mask")
    if mask is None:
        return batch
    width = int(mask.sum(-1).max())
    return {k: v[..., :width] for k, v in batch.items()}


@torch.no_grad()
def score_options(model, enc: dict, batch_size: int = 16) -> np.ndarray:
    """(n_questions, 5) logits from the reader in eval mode, each batch cut to its longest
    row (`trim_padding`: the no-context ablation's ~20-token rows not run at max_length)."""
    model.eval()
    device = next(model.parameters()).device
    n = next(iter(enc.values())).shape[0]
    out = []
    for i in range(0, n, batch_size):
        batch = trim_padding({k: v[i : i + batch_size].to(device) for k, v in enc.items()})
        out.append(model(**batch).logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(LETTERS)))


def average_precisions(answers: list[str], ranked: list[list[str]], k: int = 3) -> np.ndarray:
    """Per-question AP@k with one correct letter: 1/rank within the first k, else 0 (their mean
    is `shared.metrics.map_at_k`)."""
    return np.array(
        [1.0 / (r[:k].index(a) + 1) if a in r[:k] else 0.0 for a, r in zip(answers, ranked)]
    )


def map3(
    model, tokenizer, questions: pd.DataFrame, contexts: list[str], cfg: Any
) -> tuple[float, float]:
    """(MAP@3, its standard error over questions) of the reader on labelled questions, each
    read with its context ('' = none); the error says how far a small split can be trusted."""
    enc = encode(tokenizer, questions, contexts, cfg.max_length)
    ranked = ranked_letters(score_options(model, enc, cfg.eval_batch_size))
    answers = questions["answer"].tolist()
    ap = average_precisions(answers, ranked)
    se = float(ap.std(ddof=1) / np.sqrt(len(ap))) if len(ap) > 1 else float("nan")
    return map_at_k(answers, ranked), se
