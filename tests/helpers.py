"""What several test modules need that is not a fixture: the repository root, a subprocess's
own MLflow store, a tiny training command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def store_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment with an MLflow store of its own under `tmp_path`."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
    }


def tiny_train_command(project: str, tmp_path: Path, *overrides: str) -> list[str]:
    """`python -m projects.<project>.train experiment=smoke debug=tiny`, data and outputs under
    `tmp_path`, as a subprocess runs it (with `store_env(tmp_path)`)."""
    return [
        sys.executable,
        "-m",
        f"projects.{project}.train",
        "experiment=smoke",
        "debug=tiny",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.output_dir={tmp_path / 'outputs'}",
        *overrides,
    ]
