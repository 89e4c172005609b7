"""Shared fixtures: a temporary MLflow store, and a project's real Hydra config composed with
`experiment=smoke debug=tiny` into a temporary folder (`configs/<project>/debug/tiny.yaml`
holds the tiny sizes, so tests and a quick manual check run the same thing)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> Path:
    """One temporary SQLite store + artifact folder for the whole session (schema setup is slow)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT")}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_ARTIFACT_ROOT"] = str(root / "artifacts")
    import mlflow

    mlflow.set_tracking_uri(uri)
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _compose(project: str, overrides: list[str]):
    from shared.config import compose

    return compose(project, overrides)


@pytest.fixture(scope="session")
def project_config() -> Callable:
    """`project_config(project, *overrides)`: the real config, as the entry point composes it."""
    return lambda project, *overrides: _compose(project, list(overrides))


@pytest.fixture(scope="module")
def tiny(mlflow_store, tmp_path_factory) -> Callable:
    """`tiny(project, *overrides)`: `experiment=smoke debug=tiny`, data and outputs in one
    temporary folder per test module (`tiny.root`), runs logged to the temporary store."""
    root = tmp_path_factory.mktemp("project")

    def make(project: str, *overrides: str):
        base = [
            "experiment=smoke",
            "debug=tiny",
            f"paths.data_dir={root / 'data'}",
            f"paths.output_dir={root / 'outputs'}",
        ]
        return _compose(project, [*base, *overrides])

    make.root = root
    return make
