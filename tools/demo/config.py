"""The demo's settings: typed dataclasses whose values live in `configs/demo/demo.yaml`.

A wrong key or type fails at start-up naming the key (`shared.config.validate`); the command
line overrides any value as `key=value` (OmegaConf dotlist), e.g. `port=0 host=0.0.0.0`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import REPO_ROOT
from shared.config import ConfigError, load_yaml
from tools.registry import ML_PROJECTS

CONFIG_FILE = REPO_ROOT / "configs" / "demo" / "demo.yaml"


@dataclass
class UploadConfig:
    max_bytes: int
    max_pixels: int
    extensions: list[str]
    cache_delete: list[int]  # [frequency_s, age_s] for Gradio's temp-file cleanup


@dataclass
class ProjectTab:
    name: str
    title: str
    make_target: str


@dataclass
class ImageConfig:
    gradcam_alpha: float
    colormap: str
    display_size: int  # smaller images are enlarged to this many pixels (long side) for show


@dataclass
class TabularConfig:
    top_contributions: int
    form_fields: dict[str, str]  # column -> label with its unit, in form order


@dataclass
class RetrievalConfig:
    highlight_min_chars: int
    stopwords: list[str]


@dataclass
class DemoConfig:
    host: str
    port: int
    title: str
    experiments: list[str]
    uploads: UploadConfig
    projects: list[ProjectTab]
    image: ImageConfig
    tabular: TabularConfig
    retrieval: RetrievalConfig


def load(overrides: list[str] | None = None) -> DemoConfig:
    """`configs/demo/demo.yaml` merged with `key=value` overrides, checked against the schema."""
    out = load_yaml(CONFIG_FILE, DemoConfig, overrides)
    for tab in out.projects:
        if tab.name not in ML_PROJECTS:
            raise ConfigError(
                f"config key 'projects': unknown project '{tab.name}' ({', '.join(ML_PROJECTS)})"
            )
    if len(out.uploads.cache_delete) != 2:
        raise ConfigError("config key 'uploads.cache_delete': give [frequency_s, age_s]")
    return out
