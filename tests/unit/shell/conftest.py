"""Shell test helpers: run `python -m projects.shell` from this checkout in a clean env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO


def shell_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A small, fixed environment: this checkout first on PYTHONPATH, history in tmp_path."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(tmp_path),
        "LC_ALL": "C",
        "PYTHONPATH": str(REPO),
        "PYSHELL_HISTFILE": str(tmp_path / "history"),
        "TERM": "xterm",
    }
    env.update(extra)
    return env


def run_ours(
    script: str, cwd: Path, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess:
    """`python -m projects.shell -c script` (or the script on stdin when `script` is None)."""
    args = [sys.executable, "-m", "projects.shell"] + (["-c", script] if stdin is None else [])
    return subprocess.run(
        args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=20
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work
