"""What a restarted run needs: its folder, MLflow run ids and which folds are done.

Kept in `run_dir/state.json`, written by rank 0 after each change, so `resume=true` continues
finished folds, the interrupted fold's `last.ckpt` and the same MLflow runs.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from shared.lightning import is_rank_zero


def resolve_run_dir(run_dir: str | None, output_dir: str, project: str) -> Path:
    """`run_dir` from config, else Hydra's output folder, else a fresh timestamped one."""
    if run_dir:
        return Path(run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path(output_dir) / project / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


class RunState:
    """`{"run_id": ..., "folds": {"0": {"run_id", "done", "best_checkpoint", ...}}}`."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if resume and path.is_file() else {"folds": {}}

    def fold(self, k: int) -> dict:
        return self.data["folds"].setdefault(str(k), {})

    def save(self) -> None:
        if is_rank_zero():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=1))
