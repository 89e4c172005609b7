"""What a restarted run needs: its folder, config, MLflow run ids and which folds are done.

Kept in `run_dir/state.json`, written (atomically) by rank 0 after each change, so
`resume=true` continues finished folds, the interrupted fold's `last.ckpt` and the same MLflow
runs, and refuses when the config is not the interrupted run's. A plain re-run of an
interrupted config says how to continue it instead of silently starting a second run.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.errors import InputError
from shared.lightning import is_rank_zero
from shared.logging import get_logger
from shared.provenance import flatten

log = get_logger(__name__)

IGNORED_KEYS = ("resume", "run_dir")  # may differ between an interrupted run and its resume


class RestartError(InputError):
    """A run would clash with an interrupted or finished one, or resume it with another config."""


def resolve_run_dir(run_dir: str | None, output_dir: str, project: str) -> Path:
    """`run_dir` from config, else Hydra's output folder, else a fresh timestamped one."""
    if run_dir:
        return Path(run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return Path(output_dir) / project / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old -> new` for every flattened key that differs, `resume` and `run_dir` aside."""
    a, b = flatten(old), flatten(new)
    keys = sorted(k for k in a.keys() | b.keys() if k not in IGNORED_KEYS and a.get(k) != b.get(k))
    return [f"{k}: {a.get(k, '<absent>')} -> {b.get(k, '<absent>')}" for k in keys]


def _alive(data: dict[str, Any]) -> bool:
    """Whether the process that wrote a state is still running (on this host)."""
    if data.get("host") != platform.node() or not data.get("pid"):
        return False
    try:
        os.kill(int(data["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_interrupted(root: Path, config: dict[str, Any]) -> Path | None:
    """A run folder under `root` holding an unfinished run of `config` whose process is gone."""
    for path in sorted([*root.glob("*/state.json"), *root.glob("*/*/state.json")]):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("finished") or "config" not in data or _alive(data):
            continue
        if not config_diff(data["config"], config):
            return path.parent
    return None


class RunState:
    """`{"config", "run_id", "finished", "pid", "host", "folds": {"0": {"run_id", "done"}}}`."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if resume and path.is_file() else {"folds": {}}

    def fold(self, k: int) -> dict:
        return self.data["folds"].setdefault(str(k), {})

    def save(self) -> None:
        if is_rank_zero():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(json.dumps(self.data, indent=1))
            os.replace(tmp, self.path)  # a kill mid-write leaves the previous state whole


def open_state(
    run_dir: Path, config: dict[str, Any], resume: bool, scan_root: Path | None
) -> RunState:
    """The run's state, after refusing what would lose or mix work (rank 0 checks).

    - `resume=false` and `run_dir` already holds a state: refuse (an interrupted run is
      continued with `resume=true`; a finished one is never overwritten).
    - `resume=false`, no `run_dir` given (`scan_root` set): refuse when an interrupted run of
      the same config lies under `scan_root`, naming its folder.
    - `resume=true`: refuse when the stored config differs (naming the keys) or the run is done.
    """
    path = run_dir / "state.json"
    if is_rank_zero() and not resume and path.is_file():
        old = json.loads(path.read_text())
        if old.get("finished"):
            raise RestartError(
                f"run_dir={run_dir} already holds a finished run (MLflow run "
                f"{old.get('run_id')}); choose another run_dir"
            )
        raise RestartError(
            f"run_dir={run_dir} holds an unfinished run (MLflow run {old.get('run_id')}, "
            f"process {old.get('pid')} on {old.get('host')}): `resume=true run_dir={run_dir}` "
            "continues it (if that process is still running, wait for it instead); choose "
            "another run_dir to start afresh"
        )
    if is_rank_zero() and not resume and scan_root is not None:
        found = find_interrupted(scan_root, config)
        if found is not None:
            raise RestartError(
                f"an interrupted run of this config is in {found}: add `resume=true "
                f"run_dir={found}` to continue it, or pass a new run_dir=... to start afresh"
            )
    if resume and not path.is_file():
        log.warning("resume=true but %s has no state.json: starting afresh", run_dir)
    state = RunState(path, resume)
    if is_rank_zero() and resume and "config" in state.data:
        if state.data.get("finished"):
            raise RestartError(f"the run in {run_dir} is finished: there is nothing to resume")
        diff = config_diff(state.data["config"], config)
        if diff:
            raise RestartError(
                f"resume=true, but the config differs from the interrupted run's in {run_dir} "
                f"(stored in state.json): {'; '.join(diff)}. Resume with the same config, or "
                "start afresh in another run_dir"
            )
    state.data.update(config=config, finished=False, pid=os.getpid(), host=platform.node())
    return state
