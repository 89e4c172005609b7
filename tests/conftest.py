"""Shared fixtures: a temporary MLflow store and composing a project's real Hydra config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


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


def compose(project: str, overrides: list[str] | None = None):
    """The project's real config, composed as `python -m projects.<project>.train` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "configs" / project), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides or [])
