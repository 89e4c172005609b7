"""The FAQ bot: a chat user that answers questions from `faq.yaml` by embedding retrieval.

Each FAQ entry is embedded once with the offline all-MiniLM-L6-v2 sentence-transformer and
stored, L2-normalised, in a FAISS inner-product index (inner product = cosine similarity). By
default the text embedded is the question followed by its answer (`index_text`): users ask in
the answer's words ("pytest", "linter", "GBM") as often as in the question's. An incoming
question gets the answer of its nearest entry when their similarity reaches `threshold`, and
"I don't know." otherwise: a confident wrong answer is worse than none.
The bot answers private messages, and room messages that mention it (@faqbot): answering every
line that ends in "?" would answer people talking to each other.
Its name is reserved: it logs in with the secret the server wrote to `secrets_dir/faqbot.secret`,
so nobody else can log in as the bot. When the server goes away (a restart) the bot reconnects
with exponential back-off (0.5 s doubling to 30 s, jittered) instead of exiting.

    python -m projects.chat.faq_bot [--host H --port P] [threshold=0.5 rooms=[lobby,dev] ...]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from projects.chat.accounts import read_secret
from projects.chat.client import ChatClient, ChatError
from projects.chat.config import BotConfig, ServerConfig, load, repo_path
from shared.cli import expected_errors
from shared.errors import InputError
from shared.logging import get_logger

log = get_logger(__name__)

Encoder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class FaqEntry:
    id: str
    question: str
    answer: str


@dataclass(frozen=True)
class Answer:
    faq_id: str | None  # None: below the threshold
    text: str
    score: float


# What is embedded for one FAQ entry.
INDEX_TEXTS: dict[str, Callable[[FaqEntry], str]] = {
    "question": lambda e: e.question,
    "question_answer": lambda e: f"{e.question} {e.answer}",
}


def load_faq(path: str | Path) -> list[FaqEntry]:
    """The question/answer pairs of a FAQ file; ids must be unique and texts non-empty."""
    rows = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    entries = [FaqEntry(str(r["id"]), str(r["question"]), str(r["answer"])) for r in rows]
    ids = [e.id for e in entries]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"{path}: duplicate FAQ ids {dupes}")
    empty = [e.id for e in entries if not e.question.strip() or not e.answer.strip()]
    if empty:
        raise ValueError(f"{path}: empty question or answer in {empty}")
    return entries


def load_eval_set(path: str | Path, known_ids: set[str]) -> list[tuple[str, str | None]]:
    """(question, FAQ id or None for out of scope) pairs; an id not in the FAQ fails by name."""
    rows = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    out = [(str(r["question"]), None if r["id"] is None else str(r["id"])) for r in rows]
    unknown = sorted({g for _, g in out if g is not None and g not in known_ids})
    if unknown:
        raise ValueError(f"{path}: ids not in the FAQ: {unknown}")
    return out


def load_encoder(model: str) -> Encoder:
    """A function texts -> L2-normalised float32 embeddings (one row per text)."""
    from sentence_transformers import SentenceTransformer

    from shared.pretrained import resolve_model_path

    logging.getLogger("faiss.loader").setLevel(logging.WARNING)

    st = SentenceTransformer(resolve_model_path(model), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        vecs = st.encode(
            texts,
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    return encode


class FaqIndex:
    """FAISS inner-product index over the normalised embeddings of the FAQ questions."""

    def __init__(
        self, entries: list[FaqEntry], encode: Encoder, index_text: str = "question_answer"
    ) -> None:
        import faiss

        if index_text not in INDEX_TEXTS:
            raise ValueError(f"index_text must be one of {sorted(INDEX_TEXTS)}, got {index_text!r}")
        self.entries = entries
        self.encode = encode
        vecs = self._normalised(encode([INDEX_TEXTS[index_text](e) for e in entries]))
        self.index = faiss.IndexFlatIP(vecs.shape[1])
        self.index.add(vecs)

    @staticmethod
    def _normalised(vecs: np.ndarray) -> np.ndarray:
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    def search(self, questions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Top-1 (cosine similarity, entry index) for each question."""
        scores, idx = self.index.search(self._normalised(self.encode(questions)), 1)
        return scores[:, 0], idx[:, 0]

    def answer(self, question: str, threshold: float, dont_know: str = "I don't know.") -> Answer:
        scores, idx = self.search([question])
        score, entry = float(scores[0]), self.entries[int(idx[0])]
        if score < threshold:
            return Answer(None, dont_know, score)
        return Answer(entry.id, entry.answer, score)


def question_in(event: dict[str, Any], bot: str) -> str | None:
    """The question an event asks the bot, or None when the bot should stay quiet."""
    kind = event.get("type")
    if event.get("from") in (None, bot) or kind not in ("message", "private"):
        return None
    text = str(event.get("text", "")).strip()
    if kind == "private":
        return text or None
    mention = re.compile(rf"@{re.escape(bot)}\b[:,]?", re.IGNORECASE)
    if mention.search(text):
        return mention.sub("", text).strip() or None
    return None


def serve(client: Any, index: FaqIndex, cfg: BotConfig, stop: Callable[[], bool]) -> None:
    """Answer questions arriving at `client` until `stop()` or the server hangs up."""
    for room in cfg.rooms:
        client.join(room)
    while not stop():
        event = client.recv(timeout=0.2)
        if event is None:
            continue
        if event["type"] == "disconnected":
            return
        question = question_in(event, cfg.name)
        if question is None:
            continue
        answer = index.answer(question, cfg.threshold, cfg.dont_know)
        log.info("%r -> %s (%.3f)", question, answer.faq_id, answer.score)
        if event["type"] == "private":
            client.pm(event["from"], answer.text)
        else:
            client.say(event["room"], f"@{event['from']} {answer.text}")


BACKOFF_S = (0.5, 30.0)
FATAL_CODES = {"claimed", "bad_secret", "bad_name"}  # retrying cannot help


def run_forever(
    connect: Callable[[], ChatClient],
    index: FaqIndex,
    cfg: BotConfig,
    stop: Callable[[], bool],
    backoff: tuple[float, float] = BACKOFF_S,
) -> None:
    """`serve` on a fresh connection whenever the last one ends, with exponential back-off
    between failed attempts, until `stop()`; a refused name raises ChatError at once."""
    delay = backoff[0]
    while not stop():
        try:
            client = connect()
        except (OSError, ChatError) as exc:
            if isinstance(exc, ChatError) and exc.reply.get("code") in FATAL_CODES:
                raise
            wait = delay * random.uniform(0.8, 1.2)
            log.warning("cannot reach the chat (%s): retrying in %.1f s", exc, wait)
            end = time.monotonic() + wait
            while time.monotonic() < end and not stop():
                time.sleep(min(0.1, max(end - time.monotonic(), 0)))
            delay = min(delay * 2, backoff[1])
            continue
        delay = backoff[0]
        with client:
            log.info("%s connected, rooms %s", cfg.name, list(cfg.rooms))
            serve(client, index, cfg, stop)


def bot_secret(server: ServerConfig, name: str) -> str | None:
    """The secret the server wrote for a reserved `name`, if it did."""
    path = repo_path(server.secrets_dir) / f"{name}.secret"
    return read_secret(path) if path.is_file() else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The FAQ bot: joins the chat like a user.")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("overrides", nargs="*", help="bot config overrides: threshold=0.6 ...")
    args = parser.parse_args(argv)
    with expected_errors():
        cfg = load("bot", BotConfig, args.overrides)
        server = load("server", ServerConfig)
        index = FaqIndex(load_faq(repo_path(cfg.faq_path)), load_encoder(cfg.model), cfg.index_text)
        host, port = args.host or server.host, args.port or server.port
        secret = bot_secret(server, cfg.name)

        def fresh() -> ChatClient:
            return ChatClient(host, port, cfg.name, p2p=False, secret=secret)

        try:  # the first attempt fails fast; later ones (after a restart) are retried
            pending = [fresh()]
        except (OSError, ChatError) as exc:
            raise InputError(f"cannot join the chat at {host}:{port}: {exc}") from None

        def connect() -> ChatClient:
            return pending.pop() if pending else fresh()

        print(f"{cfg.name} joined {host}:{port}, rooms {list(cfg.rooms)}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            try:
                run_forever(connect, index, cfg, stop=lambda: False)
            except ChatError as exc:
                raise InputError(f"the chat refused {cfg.name!r}: {exc}") from None


if __name__ == "__main__":
    main()
