"""The schema of `configs/report/portfolio.yaml` (`make report`): what each section of the page
shows and where its numbers come from. A misspelt key, an unknown project or data kind, or a
comparison with a section that does not exist fails at load time, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared import REPO_ROOT
from shared.config import ConfigError, load_yaml
from tools.registry import ML_PROJECTS

CONFIG_FILE = REPO_ROOT / "configs" / "report" / "portfolio.yaml"
DATA_KINDS = ("full", "smoke")


@dataclass
class ModelRef:
    experiment: str  # "full" or "smoke": composed with experiment=<this>; labels the section
    suffix: str  # appended to the config's tracking.model_name ("-stacked": the stacked GBM)


@dataclass
class RocSpec:
    artifact: str | None  # OOF csv with the label column; null: show `logged_png` only
    target: str
    scores: list[str]
    min_tpr_param: str  # the run's param holding the scored TPR band's lower edge
    logged_png: str | None  # the run's own ROC figure, when the OOF file cannot be redrawn


@dataclass
class Reference:
    label: str
    metric: str  # our run metric shown beside it (full-data runs only)
    value: float
    dataset: str  # the public data set the reference was measured on
    split: str  # and its split ("Karpathy test", "private leaderboard")
    source: str  # the README that cites it (it must hold the value)


@dataclass
class Baseline:
    label: str  # may name the run's params / tags: `{tag.best_single_feature}`
    metric: str  # ours
    baseline: str  # the same run's baseline metric, on the same split
    split: str


@dataclass
class Image:
    artifact: str  # a PNG artifact of the run, shown when `table` is not logged
    title: str  # its heading on the page
    table: str | None = None  # a CSV of the run to redraw it from (bars of `column`)
    column: str = "mean"
    top: int = 25


@dataclass
class SectionConfig:
    key: str
    project: str  # whose config names the registered models (tools.registry.ML_PROJECTS)
    title: str  # the project and its task: claims nothing about the model
    heading: str  # the model line, filled from the champion's logged params (portfolio_card.fill)
    readme: str
    make_target: str
    models: list[ModelRef]
    metrics: list[str]
    config_keys: list[str]  # param prefixes shown in the config summary
    roc: RocSpec | None
    images: list[Image]  # PNG artifacts of the run embedded as they are
    recall_prefix: str | None  # metrics `<prefix><k>_<method>` drawn as recall@k bars
    captions: bool  # examples from the run's captions.html
    baselines: list[Baseline]  # every run: ours beside the same run's own baselines
    references: list[Reference]  # public numbers: shown beside full-data runs only
    compare_to: str | None = None  # another section's key: which of the two scores higher
    compare_feature: str = "the extra feature"  # what this section adds over `compare_to`


@dataclass
class PortfolioConfig:
    output: str
    title: str
    max_curves: int
    caption_examples: int
    max_folds_columns: int
    skip_metrics: list[str]  # logged per epoch but neither a learning curve nor a fold column
    integer_metrics: list[str]  # fnmatch patterns of counts and epochs: printed without decimals
    seed_ignore: list[str]  # params that may differ between seeds of one config
    latency_calls: int
    sections: list[SectionConfig]


def load_config(path: str | Path = CONFIG_FILE, overrides: list[str] | None = None):
    """The report config, schema-checked (an unknown key or a bad data kind fails, named)."""
    cfg: PortfolioConfig = load_yaml(path, PortfolioConfig, overrides)
    for i, section in enumerate(cfg.sections):
        if section.project not in ML_PROJECTS:
            raise ConfigError(
                f"config key 'sections[{i}].project': '{section.project}' is not one of "
                f"{', '.join(ML_PROJECTS)} ({path})"
            )
        keys = [s.key for s in cfg.sections]
        if section.compare_to is not None and section.compare_to not in keys:
            raise ConfigError(
                f"config key 'sections[{i}].compare_to': '{section.compare_to}' is not a "
                f"section key ({', '.join(keys)}) ({path})"
            )
        for j, ref in enumerate(section.models):
            if ref.experiment not in DATA_KINDS:
                raise ConfigError(
                    f"config key 'sections[{i}].models[{j}].experiment': '{ref.experiment}' is "
                    f"not one of {', '.join(DATA_KINDS)} ({path})"
                )
    return cfg
