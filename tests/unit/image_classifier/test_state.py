"""state.json: resume refuses another config naming the keys; a plain re-run of an interrupted
config (same run_dir, or found under the outputs) says how to continue it."""

import json
import os
import platform
import subprocess

import pytest

from projects.image_classifier.state import RestartError, open_state

CFG = {"seed": 42, "resume": False, "run_dir": None, "trainer": {"max_epochs": 10}, "cv": {}}


def _interrupted(run_dir, cfg=CFG, pid=None):
    """A state.json as a killed run leaves it: not finished, its process gone."""
    if pid is None:
        dead = subprocess.Popen(["true"])
        dead.wait()
        pid = dead.pid
    state = open_state(run_dir, cfg, resume=False, scan_root=None)
    state.data.update(run_id="abc", pid=pid)
    state.save()
    return state


def test_resume_with_another_config_fails_naming_the_keys(tmp_path):
    _interrupted(tmp_path)
    other = {**CFG, "resume": True, "run_dir": str(tmp_path), "trainer": {"max_epochs": 12}}
    with pytest.raises(RestartError, match=r"trainer.max_epochs: 10 -> 12") as err:
        open_state(tmp_path, other, resume=True, scan_root=None)
    assert "resume:" not in str(err.value) and "run_dir:" not in str(err.value)
    same = {**CFG, "resume": True, "run_dir": str(tmp_path)}
    assert open_state(tmp_path, same, resume=True, scan_root=None).data["run_id"] == "abc"


def test_a_plain_rerun_in_the_same_run_dir_points_to_resume(tmp_path):
    _interrupted(tmp_path)
    with pytest.raises(RestartError, match=rf"resume=true run_dir={tmp_path}"):
        open_state(tmp_path, CFG, resume=False, scan_root=None)


def test_a_plain_rerun_finds_the_interrupted_run_of_its_config(tmp_path):
    root = tmp_path / "outputs" / "image_classifier"
    _interrupted(root / "2024-01-01_00-00-00")
    with pytest.raises(RestartError, match=r"resume=true run_dir=.*2024-01-01_00-00-00"):
        open_state(root / "new", CFG, resume=False, scan_root=root)
    other = {**CFG, "seed": 43}  # another config starts afresh
    assert open_state(root / "new2", other, resume=False, scan_root=root).data["folds"] == {}


def test_a_run_still_in_progress_elsewhere_is_not_reported_as_interrupted(tmp_path):
    root = tmp_path / "outputs"
    _interrupted(root / "a", pid=os.getpid())  # alive: this very process
    assert open_state(root / "b", CFG, resume=False, scan_root=root).data["host"] == (
        platform.node()
    )


def test_a_finished_run_is_neither_overwritten_nor_resumed(tmp_path):
    state = _interrupted(tmp_path)
    state.data["finished"] = True
    state.save()
    with pytest.raises(RestartError, match="finished"):
        open_state(tmp_path, CFG, resume=False, scan_root=None)
    with pytest.raises(RestartError, match="nothing to resume"):
        open_state(tmp_path, CFG, resume=True, scan_root=None)
    assert json.loads((tmp_path / "state.json").read_text())["finished"] is True
