"""LLM Science Exam questions and a Wikipedia-style parquet corpus, read and checked."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from shared.config import require_dir
from shared.errors import DataNotFoundError, InputError
from shared.logging import get_logger

log = get_logger(__name__)

LETTERS = ["A", "B", "C", "D", "E"]
QUESTION_COLUMNS = ["id", "prompt", *LETTERS]
HOW_TO_GET = (
    "Download the questions with `kaggle competitions download -c kaggle-llm-science-exam` and "
    "a STEM Wikipedia parquet dump (title, text columns) into <data.dir>/corpus/."
)


class BadQuestionError(InputError, ValueError):
    """A question row cannot be used; the message names the row."""


def _blank(value: Any) -> bool:
    return (
        value is None or (not isinstance(value, str) and pd.isna(value)) or not str(value).strip()
    )


def extra_option_columns(columns: Iterable[Any]) -> list[str]:
    """Columns named like options past E (`F`, `G`, ...): the public format has exactly five
    options, and the reader scores A-E only, so such a column would be dropped unread."""
    return [str(c) for c in columns if re.fullmatch(r"[F-Z]", str(c).strip())]


def check_questions(df: pd.DataFrame, source: str) -> None:
    """Every row has a prompt and five non-empty options (not blank, not NaN/None), else a
    BadQuestionError naming the first bad row: a missing option must not be ranked. Option
    columns past E are refused, naming them (they would be silently left unread)."""
    extra = extra_option_columns(df.columns)
    if extra:
        raise BadQuestionError(
            f"{source} has option column(s) {', '.join(extra)} beyond A-E: the LLM Science "
            "Exam format has exactly five options (id, prompt, A, B, C, D, E[, answer]); "
            "drop the extra options or keep five per question"
        )
    fields = ["prompt", *LETTERS]
    missing = [c for c in fields if c not in df.columns]
    if missing:
        raise BadQuestionError(
            f"{source} lacks column(s) {missing}: every question needs a prompt and five "
            "options A-E"
        )
    for i, values in enumerate(df[fields].itertuples(index=False)):
        empty = [c for c, v in zip(fields, values) if _blank(v)]
        if empty:
            qid = f" (id {df['id'].iloc[i]})" if "id" in df.columns else ""
            raise BadQuestionError(
                f"{source} row {i}{qid}: empty {', '.join(empty)}; five options needed"
            )


def read_questions(path: str | Path, require_answer: bool) -> pd.DataFrame:
    """train.csv / test.csv: `id, prompt, A..E[, answer]`, checked row by row; an empty file
    or one with a header but no rows is refused, naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"question file not found: {path.resolve()}. {HOW_TO_GET}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise BadQuestionError(f"question file {path} is empty: no header, no rows") from None
    if "id" not in df.columns:
        raise BadQuestionError(f"{path.name} lacks the 'id' column")
    check_questions(df.reset_index(drop=True), path.name)
    if df.empty:
        raise BadQuestionError(
            f"question file {path} has a header ({', '.join(map(str, df.columns))}) but no rows"
        )
    if require_answer or "answer" in df.columns:
        if "answer" not in df.columns:
            raise BadQuestionError(f"{path.name} has no 'answer' column")
        bad = df.index[~df["answer"].isin(LETTERS)]
        if len(bad):
            i = bad[0]
            raise BadQuestionError(
                f"{path.name} row {i} (id {df.at[i, 'id']}): answer {df.at[i, 'answer']!r} is not "
                f"one of A-E ({len(bad)} such rows)"
            )
    return df.reset_index(drop=True)


def corpus_files(corpus_dir: str | Path) -> list[Path]:
    """The corpus's parquet files, sorted (the passage order), each checked for its columns."""
    import pyarrow.parquet as pq

    root = require_dir(corpus_dir, "retrieval corpus folder", HOW_TO_GET)
    files = sorted(root.rglob("*.parquet"))
    if not files:
        raise ValueError(f"corpus folder {root.resolve()} holds no .parquet files. {HOW_TO_GET}")
    for f in files:
        if not {"title", "text"} <= set(pq.ParquetFile(f).schema_arrow.names):
            raise ValueError(f"{f} lacks the 'title' and 'text' columns")
    return files


def iter_corpus(corpus_dir: str | Path, batch_rows: int = 65536) -> Iterator[pd.DataFrame]:
    """`title, text` frames of at most `batch_rows` articles, read by parquet row groups
    (only those two columns), so memory follows the batch, not the corpus; rows without text
    are dropped. A corpus with no text at all fails once every file has been read."""
    import pyarrow.parquet as pq

    root = Path(corpus_dir)
    seen = False
    for f in corpus_files(root):
        for batch in pq.ParquetFile(f).iter_batches(
            batch_size=batch_rows, columns=["title", "text"]
        ):
            part = batch.to_pandas().dropna(subset=["text"])
            part = part[part["text"].astype(str).str.strip() != ""]
            if len(part):
                seen = True
                yield part.reset_index(drop=True)
    if not seen:
        raise ValueError(f"corpus under {root.resolve()} is empty: no row has any text")


def read_corpus(corpus_dir: str | Path) -> pd.DataFrame:
    """Every parquet file under `corpus_dir` -> one `title, text` frame (small corpora; the
    index build streams `iter_corpus` instead)."""
    return pd.concat(list(iter_corpus(corpus_dir)), ignore_index=True)


def question_query(row: pd.Series) -> str:
    """The retrieval query of a question: its prompt followed by its five options."""
    return " ".join([row["prompt"], *(str(row[c]) for c in LETTERS)])


def split_train_val(
    df: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random `fraction` of the labelled questions held out for validation."""
    val = df.sample(frac=fraction, random_state=seed)
    return df.drop(val.index).reset_index(drop=True), val.reset_index(drop=True)


def question_files(data: Any) -> list[Path]:
    """The question files a run reads: train, test and every `data.extra_train` file."""
    root = Path(data.dir)
    return [root / data.train_file, root / data.test_file, *(root / f for f in data.extra_train)]


def normalised_prompt(prompt: str) -> str:
    """A question's text as duplicates are recognised: Unicode NFKC, lower case, letters and
    digits only, single spaces ("What is X?" and "what is  x" are one question)."""
    text = unicodedata.normalize("NFKC", str(prompt)).casefold()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def load_splits(data: Any, seed: int) -> tuple[dict[str, pd.DataFrame], int]:
    """(`train`/`val` (a seeded split of train.csv), `test`; how many extra rows were dropped).

    The `data.extra_train` files (same layout, paths relative to data.dir or absolute) join
    training only, so validation stays the one held-out sample of train.csv; an extra question
    whose normalised prompt is also a validation or test question is dropped (public extra
    sets are scraped from the same sources: training on it would score val on seen questions).
    """
    root = Path(data.dir)
    labelled = read_questions(root / data.train_file, require_answer=True)
    train, val = split_train_val(labelled, data.val_fraction, seed)
    test = read_questions(root / data.test_file, False)
    held = set(map(normalised_prompt, pd.concat([val["prompt"], test["prompt"]])))
    cols = [*QUESTION_COLUMNS, "answer"]
    extra = pd.concat(
        [read_questions(root / f, require_answer=True)[cols] for f in data.extra_train]
        or [pd.DataFrame(columns=cols)],
        ignore_index=True,
    )
    seen = extra["prompt"].map(normalised_prompt).isin(held)
    if seen.any():
        log.info(
            "data.extra_train: %d of %d questions dropped (in val or test)", seen.sum(), len(extra)
        )
    train = pd.concat([train, extra[~seen]], ignore_index=True) if len(extra) else train
    return {"train": train, "val": val, "test": test}, int(seen.sum())


GOLD_CSV = "smoke-gold.csv"


def read_gold_titles(data_dir: str | Path) -> pd.Series | None:
    """`id -> source article title` written by the smoke generator; None for real data."""
    path = Path(data_dir) / GOLD_CSV
    if not path.is_file():
        return None
    gold = pd.read_csv(path).set_index("id")["title"]
    gold.index = gold.index.astype(str)
    return gold
