"""Config schema check at start-up and the config groups every project composes.

Each project declares its config as dataclasses; `validate` merges the composed Hydra config
into that schema, so an unknown key or a wrong type fails before any work, naming the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from shared.errors import DataNotFoundError, InputError

T = TypeVar("T")


class ConfigError(InputError, ValueError):
    """The composed config does not fit the project's schema."""


def settings_key(settings: Any) -> str:
    """8 hex digits naming a generator's settings: `${settings_key:${data.synthetic}}` in a
    smoke config keys its data folder, so other settings (`debug=tiny`) get another folder
    instead of replacing the data set, fold file and OOF scores earlier runs refer to."""
    import hashlib
    import json

    if isinstance(settings, DictConfig):
        settings = OmegaConf.to_container(settings, resolve=True)
    text = json.dumps(_numbers_as_floats(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _numbers_as_floats(value: Any) -> Any:
    """25 and 25.0 name the same setting (YAML gives one, the typed schema the other)."""
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


OmegaConf.register_new_resolver("settings_key", settings_key, replace=True)


@dataclass
class PathsConfig:
    root_dir: str
    data_dir: str
    output_dir: str
    cache_dir: str


@dataclass
class CardSplit:
    pattern: str  # fnmatch pattern of metric names
    split: str  # the data those metrics were measured on, in words


@dataclass
class ModelCardConfig:
    """What the model card says beyond the run's own record (`shared.model_card`)."""

    intended_use: str
    limitations: list[str]
    splits: list[CardSplit]  # the longest matching pattern names a metric's split


@dataclass
class TrackingConfig:
    experiment: str
    run_name: str | None
    headline_metric: str  # validation (or out-of-fold) metric: announced and chosen on
    test_metric: str | None  # recorded on the registered version, never used to choose
    model_name: str  # the registered model: <project>-<data set name>
    register: bool
    tags: dict[str, str]
    card: ModelCardConfig


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay (`shared.lightning.adamw_warmup_cosine`)."""

    lr: float
    weight_decay: float
    warmup_fraction: float
    min_lr_factor: float


@dataclass
class TrainerConfig:
    """The Lightning Trainer arguments we set (configs/common/trainer); a typo fails at start-up."""

    accelerator: str
    precision: str
    devices: Any  # an int, a list of ids or "auto": Lightning's own types
    strategy: str
    num_nodes: int
    max_epochs: int
    accumulate_grad_batches: int
    gradient_clip_val: float | None
    log_every_n_steps: int
    num_sanity_val_steps: int
    enable_progress_bar: bool
    deterministic: bool
    sync_batchnorm: bool


def validate(cfg: DictConfig, schema: type[T]) -> T:
    """Return `cfg` merged into `schema` (typed, read-only), or raise ConfigError naming the key."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        OmegaConf.resolve(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        msg = getattr(exc, "msg", str(exc)).splitlines()[0]
        raise ConfigError(f"config key '{key}': {msg}") from None
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(f"config key(s) without a value: {', '.join(missing)}")
    check_ranges(OmegaConf.to_container(merged))
    OmegaConf.set_readonly(merged, True)
    return merged  # type: ignore[return-value]


# Bounds by a key's last name, for every project at once: a value out of range fails at start-up
# naming the key (`batch_size=0`, `trainer.max_epochs=-1` and `seed=-1` failed deep inside a run).
_AT_LEAST_1 = [
    *("batch_size", "eval_batch_size", "max_epochs", "beam_size", "accumulate_grad_batches"),
    *("num_boost_round", "iterations", "n_bags", "image_size", "max_len", "max_length"),
    *("n_embd", "n_head", "n_layer", "n_positions", "candidates", "context_passages"),
    *("encode_chunk", "num_nodes", "vocab_size", "log_every_n_steps", "neg_per_pos"),
]
_AT_LEAST_0 = [
    *("seed", "fold_seed", "num_workers", "early_stopping_patience", "freeze_epochs"),
    *("weight_decay", "dropout", "label_smoothing", "gradient_clip_val", "warmup_fraction"),
]
LOWER_BOUNDS: dict[str, tuple[float, bool]] = {  # name -> (bound, bound allowed)
    **dict.fromkeys(_AT_LEAST_1, (1, True)),
    "n_folds": (2, True),
    **dict.fromkeys(_AT_LEAST_0, (0, True)),
    **dict.fromkeys(("lr", "learning_rate"), (0, False)),
}


def check_ranges(tree: Any, prefix: str = "") -> None:
    """Raise ConfigError for the first number below its `LOWER_BOUNDS` (None is left alone)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            check_ranges(value, f"{prefix}{key}.")
        return
    name = prefix[:-1].rsplit(".", 1)[-1]
    if name not in LOWER_BOUNDS or isinstance(tree, bool) or not isinstance(tree, int | float):
        return
    bound, inclusive = LOWER_BOUNDS[name]
    if tree < bound or (tree == bound and not inclusive):
        need = f"at least {bound}" if inclusive else f"above {bound}"
        raise ConfigError(f"config key '{prefix[:-1]}': must be {need}, got {tree}")


def require_dir(path: str | Path, what: str, how_to_get: str) -> Path:
    """Return `path` if it is a folder, else fail saying where we looked and how to get it."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataNotFoundError(
            f"{what} not found: looked in {p.resolve()}.\n{how_to_get}\n"
            "Point the project at it with data.dir=PATH."
        )
    return p


def load_yaml(path: str | Path, schema: type[T], overrides: Sequence[str] | None = None) -> T:
    """A YAML config file merged with `key=value` overrides, checked against `schema`: the one
    loader of the tools' and systems projects' configs (the pipelines compose with Hydra).
    A missing file, bad YAML, an override without `=`, an unknown key or a wrong type fails in
    one line naming it."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"config file not found: {path.resolve()}")
    bad = [o for o in overrides or [] if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must be key=value, got {bad}")
    try:
        raw = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides or [])))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
    return validate(raw, schema)


def compose(project: str, overrides: Sequence[str] = ()) -> DictConfig:
    """`configs/<project>/train.yaml` composed with `overrides`, as `python -m
    projects.<project>.train` composes it (tests, sweeps and the demo all come here). A typo in
    a key or a group fails as a ConfigError naming it, in one line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from shared import REPO_ROOT

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(
            config_dir=str(REPO_ROOT / "configs" / project), version_base="1.3"
        ):
            return hydra_compose(config_name="train", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"{project}: {exc}".splitlines()[0]) from None


def to_dict(cfg: Any) -> dict:
    """A plain dict of a config node (resolved)."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


__all__ = [
    "ConfigError",
    "PathsConfig",
    "TrackingConfig",
    "TrainerConfig",
    "OptimConfig",
    "validate",
    "compose",
    "load_yaml",
    "require_dir",
    "to_dict",
    "field",
]
