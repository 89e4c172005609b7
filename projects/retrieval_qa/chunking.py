"""Articles -> passages: windows of whole sentences with overlap, each prefixed by its title."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
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
    titles, texts = [], []
    for t, x in iter_passages([corpus], size, stride, max_chars):
        titles += t
        texts += x
    passages = pd.DataFrame({"title": titles, "text": texts}, dtype=object)
    passages.insert(0, "passage_id", range(len(passages)))
    return passages


def iter_passages(
    articles: Iterable[pd.DataFrame], size: int, stride: int, max_chars: int
) -> Iterator[tuple[list[str], list[str]]]:
    """The streaming `build_passages`: one `(titles, texts)` batch per batch of articles, so a
    corpus of millions of passages never sits in memory as one frame."""
    for batch in articles:
        titles, texts = [], []
        for title, text in zip(batch["title"], batch["text"]):
            title = "" if pd.isna(title) else str(title).strip()
            for window in sentence_windows(split_sentences(str(text)), size, stride):
                titles.append(title)
                texts.append(passage_text(title, window, max_chars))
        if texts:
            yield titles, texts


class PassageStore:
    """Passages on disk as UTF-8 blobs plus int64 offsets, memory-mapped: passage `i` is read
    in O(1) without loading the other millions (`text.bin`, `text.idx.npy`, same for title)."""

    COLUMNS = ("title", "text")

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._blobs = {c: _map_bytes(self.folder / f"{c}.bin") for c in self.COLUMNS}
        self._offsets = {
            c: np.load(self.folder / f"{c}.idx.npy", mmap_mode="r") for c in self.COLUMNS
        }
        if len(self._offsets["title"]) != len(self._offsets["text"]):
            raise ValueError(f"passage store {self.folder}: title and text counts differ")

    def __len__(self) -> int:
        return len(self._offsets["text"]) - 1

    def column(self, name: str, ids: Iterable[int]) -> list[str]:
        """The `name` ('title' or 'text') of each passage id, in order."""
        blob, off = self._blobs[name], self._offsets[name]
        return [bytes(blob[off[i] : off[i + 1]]).decode() for i in ids]

    def batches(self, size: int) -> Iterator[tuple[int, list[str]]]:
        """(first id, texts) of consecutive passages, `size` at a time: the encoders' input."""
        for start in range(0, len(self), size):
            yield start, self.column("text", range(start, min(start + size, len(self))))

    def to_frame(self) -> pd.DataFrame:
        """`passage_id, title, text` of every passage (small corpora and reports only)."""
        ids = range(len(self))
        return pd.DataFrame(
            {
                "passage_id": ids,
                "title": self.column("title", ids),
                "text": self.column("text", ids),
            }
        )

    @classmethod
    def write(cls, folder: str | Path, batches: Iterable[tuple[list[str], list[str]]]) -> int:
        """Append `(titles, texts)` batches to a new store in `folder`; returns the count."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ends: dict[str, list[np.ndarray]] = {c: [np.zeros(1, np.int64)] for c in cls.COLUMNS}
        pos = dict.fromkeys(cls.COLUMNS, 0)
        files = {c: open(folder / f"{c}.bin", "wb") for c in cls.COLUMNS}  # noqa: SIM115
        try:
            for titles, texts in batches:
                for name, values in (("title", titles), ("text", texts)):
                    encoded = [v.encode() for v in values]
                    files[name].write(b"".join(encoded))
                    lengths = np.fromiter((len(e) for e in encoded), np.int64, len(encoded))
                    ends[name].append(pos[name] + np.cumsum(lengths))
                    pos[name] += int(lengths.sum())
        finally:
            for f in files.values():
                f.close()
        for name in cls.COLUMNS:
            np.save(folder / f"{name}.idx.npy", np.concatenate(ends[name]))
        return sum(len(e) for e in ends["text"]) - 1


def _map_bytes(path: Path) -> np.ndarray:
    """A file's bytes, memory-mapped (an empty file, e.g. no titles at all, cannot be mapped)."""
    return np.memmap(path, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)


def passage_column(passages: pd.DataFrame | PassageStore, name: str, ids: Iterable[int]) -> list:
    """`name` of each passage id, from a store or (tests, small corpora) a passages frame."""
    if isinstance(passages, PassageStore):
        return passages.column(name, ids)
    values = passages[name].to_numpy()
    return [values[i] for i in ids]
