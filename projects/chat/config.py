"""The chat's settings: typed dataclasses whose values live in `configs/chat/*.yaml`.

A wrong key or type fails at start-up naming the key (`shared.config.validate`); command lines
override any value as `key=value` (OmegaConf dotlist), e.g. `port=0 db_path=/tmp/h.sqlite3`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from shared import REPO_ROOT
from shared.config import ConfigError, load_yaml

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
    max_text_bytes: int  # a say/pm text, JSON-encoded; every frame built from it must fit
    replay_max_bytes: int  # the replay in `joined` (and a `history` page) stops at this size
    history_max_per_room: int  # older messages of a room are deleted past this many
    history_max_total: int  # and the oldest of all rooms past this many in all
    max_connections: int  # one more is answered `server_full` and closed
    login_timeout_s: float  # a connection that has not said hello by then is closed
    idle_timeout_s: float  # one that sent no complete frame for this long is closed
    rate_per_s: float  # token bucket per connection: frames per second (0 = no limit)
    rate_burst: int  # and the bucket's size
    reserved_names: list[str]  # names that always need their secret (the bot's)
    secrets_dir: str  # where the server writes a reserved name's secret on first start
    allow_remote: bool  # a non-loopback host is refused unless this is true (no encryption)


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


# What a `message` frame adds around its text: type, id, room, from, ts and the length prefix
# (names are at most max_name_len each); checked against max_frame_bytes at start-up.
FRAME_OVERHEAD_BYTES = 160


def load(name: str, schema: type[T], overrides: list[str] | None = None) -> T:
    """`configs/chat/<name>.yaml` merged with `key=value` overrides, checked against `schema`."""
    cfg = load_yaml(CONFIG_DIR / f"{name}.yaml", schema, overrides)
    if isinstance(cfg, ServerConfig):
        check_server(cfg)
    return cfg


def check_server(cfg: ServerConfig) -> None:
    """Limits that must agree with each other, so no frame the server builds is over the limit."""
    biggest = cfg.max_text_bytes + 2 * cfg.max_name_len + FRAME_OVERHEAD_BYTES
    if biggest > cfg.max_frame_bytes:
        raise ConfigError(
            f"config key 'max_text_bytes': {cfg.max_text_bytes} + {biggest - cfg.max_text_bytes}"
            f" bytes of message frame is over max_frame_bytes={cfg.max_frame_bytes}"
        )
    users = cfg.max_connections * (cfg.max_name_len + 3)  # the user list of a `joined`
    if not 0 < cfg.replay_max_bytes <= cfg.max_frame_bytes - users - 2 * FRAME_OVERHEAD_BYTES:
        raise ConfigError(
            f"config key 'replay_max_bytes': {cfg.replay_max_bytes} does not fit a frame of "
            f"{cfg.max_frame_bytes} bytes beside the user list of {cfg.max_connections} users"
        )
    for key in ("max_connections", "history_max_per_room", "history_max_total", "rate_burst"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key '{key}': must be at least 1, got {getattr(cfg, key)}")
    for key in ("login_timeout_s", "idle_timeout_s"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"config key '{key}': must be above 0, got {getattr(cfg, key)}")
    if cfg.rate_per_s < 0:
        raise ConfigError(f"config key 'rate_per_s': must be at least 0, got {cfg.rate_per_s}")


def repo_path(path: str | Path) -> Path:
    """A config path: absolute as given, relative ones from the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p
