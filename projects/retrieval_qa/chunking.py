"""Articles -> passages: windows of whole sentences with overlap, each prefixed by its title."""

from __future__ import annotations

import re

import pandas as pd

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def split_sentences(text: str) -> list[str]:
    """Split where sentence-ending punctuation is followed by a capital letter or a digit."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def sentence_windows(sentences: list[str], size: int, stride: int) -> list[str]:
    """Windows of `size` sentences every `stride` sentences; the tail is always covered."""
    if size < 1 or stride < 1:
        raise ValueError("window size and stride must be at least 1")
    if len(sentences) <= size:
        return [" ".join(sentences)] if sentences else []
    starts = list(range(0, len(sentences) - size + 1, stride))
    if starts[-1] + size < len(sentences):
        starts.append(len(sentences) - size)
    return [" ".join(sentences[s : s + size]) for s in starts]


def passage_text(title: str, window: str, max_chars: int) -> str:
    """`Title: window`, cut at max_chars: a mid-article window ("Its atomic weight is 87.62.")
    still names its subject for the dense encoder, BM25 and the reader."""
    return f"{title}: {window}"[:max_chars] if title else window[:max_chars]


def build_passages(corpus: pd.DataFrame, size: int, stride: int, max_chars: int) -> pd.DataFrame:
    """`title, text` articles -> `passage_id, title, text` passages; `text` starts with the title
    (the `title` column stays for reports and scoring)."""
    rows = []
    for title, text in zip(corpus["title"], corpus["text"]):
        title = "" if pd.isna(title) else str(title).strip()
        for window in sentence_windows(split_sentences(str(text)), size, stride):
            rows.append((title, passage_text(title, window, max_chars)))
    passages = pd.DataFrame(rows, columns=["title", "text"])
    passages.insert(0, "passage_id", range(len(passages)))
    return passages
