"""The ML pipelines, in smoke order, and how a tool reaches one: the one list of projects.

`python -m tools.registry` prints the names (the Makefile reads them); stdlib only, so any
Python runs it before the virtual environment exists.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Hydra-configured, MLflow-tracked pipelines with the role files (config data synthetic model
# module train predict pyfunc report). chat and shell are systems projects, not listed here.
ML_PROJECTS: tuple[str, ...] = ("tabular_gbm", "image_classifier", "retrieval_qa", "captioning")


def check_project(name: str) -> str:
    """`name` if it is an ML project, else ValueError listing the ones there are."""
    if name not in ML_PROJECTS:
        raise ValueError(f"unknown project {name!r}; projects: {', '.join(ML_PROJECTS)}")
    return name


def train_module(project: str) -> ModuleType:
    """`projects.<project>.train` (its `run(cfg)` is the pipeline)."""
    return importlib.import_module(f"projects.{check_project(project)}.train")


def model_name(project: str, experiment: str) -> tuple[str, str]:
    """(registered model name, data set name) of `experiment=<experiment>`, from the project's
    own config (`tracking.model_name`, `data.name`): the demo and the report never spell them."""
    from omegaconf import OmegaConf

    from shared.config import compose

    cfg = compose(check_project(project), [f"experiment={experiment}"])
    return str(OmegaConf.select(cfg, "tracking.model_name")), str(cfg.data.name)


if __name__ == "__main__":
    print(" ".join(ML_PROJECTS))
