"""The chat's settings: typed dataclasses whose values live in `configs/chat/*.yaml`.

A wrong key or type fails at start-up naming the key (`shared.config.validate`); command lines
override any value as `key=value` (OmegaConf dotlist), e.g. `port=0 db_path=/tmp/h.sqlite3`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from shared import REPO_ROOT
from shared.config import load_yaml

CONFIG_DIR = REPO_ROOT / "configs" / "chat"
T = TypeVar("T")


@dataclass
class ServerConfig:
    host: str
    port: int
    max_frame_bytes: int
    max_outbuf_bytes: int
    db_path: str
    replay_last: int
    history_page_max: int
    default_room: str
    max_name_len: int
    backlog: int


@dataclass
class BotConfig:
    name: str
    rooms: list[str]
    faq_path: str
    eval_path: str
    model: str
    index_text: str  # or "question": what is embedded per FAQ entry
    threshold: float  # used by the bot; faq_eval picks one on its tuning half and reports it
    eval_seed: int  # faq_eval: the seeded split of the held-out set into tuning and test halves
    dont_know: str
    experiment: str
    run_name: str


def load(name: str, schema: type[T], overrides: list[str] | None = None) -> T:
    """`configs/chat/<name>.yaml` merged with `key=value` overrides, checked against `schema`."""
    return load_yaml(CONFIG_DIR / f"{name}.yaml", schema, overrides)


def repo_path(path: str | Path) -> Path:
    """A config path: absolute as given, relative ones from the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p
