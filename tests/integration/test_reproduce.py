"""Reproducing a run from its record: refusals, and a smoke run re-created to the same metric."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared import provenance, tracking
from shared.errors import InputError
from tests.helpers import REPO
from tools import reproduce


def _fake_run(tmp_path: Path, **tags: str) -> str:
    """A logged run with a config, a data file and the given tags over the usual ones."""
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    mlflow = tracking.get_mlflow()
    exp = tracking.get_or_create_experiment("reproduce-refusals")
    base = {
        "git_sha": "0" * 40,
        "git_dirty": "false",
        "data_paths": json.dumps([str(data)]),
        "data_fingerprint": provenance.data_fingerprint([data]),
    }
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.set_tags({**base, **tags})
        mlflow.log_dict({"tracking": {"headline_metric": "score"}}, "config.yaml")
        mlflow.log_metric("score", 0.5)
    return run.info.run_id


def test_a_run_from_uncommitted_changes_is_refused(mlflow_store, tmp_path):
    run_id = _fake_run(tmp_path, git_dirty="true")
    with pytest.raises(InputError, match="uncommitted changes"):
        reproduce.read_record(run_id, "tabular_gbm")


def test_a_run_whose_data_changed_is_refused(mlflow_store, tmp_path):
    run_id = _fake_run(tmp_path)
    (tmp_path / "train.csv").write_text("a,b\n1,3\n")
    with pytest.raises(InputError, match="data of run .* changed"):
        reproduce.read_record(run_id, "tabular_gbm")


def test_a_run_without_data_paths_is_refused(mlflow_store, tmp_path):
    run_id = _fake_run(tmp_path, data_paths="")
    client = tracking.get_mlflow().MlflowClient()
    client.delete_tag(run_id, "data_paths")
    with pytest.raises(InputError, match="did not record its data"):
        reproduce.read_record(run_id, "tabular_gbm")


def test_a_commit_missing_from_the_clone_is_refused(mlflow_store, tmp_path):
    record = reproduce.read_record(_fake_run(tmp_path), "tabular_gbm")
    with pytest.raises(InputError, match="is not in"):
        reproduce.rerun(record)


def test_the_cli_prints_one_error_line(mlflow_store, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        reproduce.main([_fake_run(tmp_path, git_dirty="true")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: run ")


def test_a_reproduction_writes_into_its_own_folder():
    """Never into the original run's folder, nor over the OOF file tabular_gbm stacks on."""
    config = {
        "paths": {"output_dir": "/runs/outputs"},
        "run_dir": "/runs/outputs/image_classifier/2026-12-06_14-14-52",
        "resume": True,
        "oof_file": "/data/oof/image_classifier_isic2024-smoke.csv",
    }
    out = reproduce.own_outputs(config, "3bbc3b75751d4f93")
    base = "/runs/outputs/reproduce/3bbc3b75"
    assert out["paths"]["output_dir"] == f"{base}/outputs"
    assert (out["run_dir"], out["resume"]) == (f"{base}/run", False)
    assert out["oof_file"] == f"{base}/oof.csv"
    assert "run_dir" not in reproduce.own_outputs({"paths": {"output_dir": "/o"}}, "ab")


def test_tolerances_per_metric_and_package_versions_that_changed():
    assert reproduce.parse_tolerances([]) == (0.0, {})
    assert reproduce.parse_tolerances(["0.001", "val_map3=0.02"]) == (0.001, {"val_map3": 0.02})
    for bad in ("x", "val_map3=", "-1"):
        with pytest.raises(InputError, match="--tolerance"):
            reproduce.parse_tolerances([bad])
    now = provenance.package_versions()
    tags = {"version.torch": "0.0.1", "version.numpy": now["version.numpy"], "git_sha": "x"}
    assert reproduce.version_changes(tags) == [f"torch: 0.0.1 -> {now['version.torch']}"]


def test_an_untracked_file_makes_the_tree_dirty(tmp_path):
    """An untracked module can change what a run does and no commit holds it."""
    _git("init", "--quiet", cwd=tmp_path)
    (tmp_path / ".gitignore").write_text("ignored.txt\n")
    _git("add", ".gitignore", cwd=tmp_path)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "x", cwd=tmp_path)
    assert provenance.git_state(tmp_path)[1] is False
    (tmp_path / "ignored.txt").write_text("scratch")
    assert provenance.git_state(tmp_path)[1] is False  # ignored files do not count
    (tmp_path / "helper.py").write_text("X = 1\n")
    assert provenance.git_state(tmp_path)[1] is True


def test_a_pipeline_run_records_where_its_data_is(mlflow_store, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x\n")
    with tracking.start_run("reproduce-tags", data_paths=[data]) as run:
        pass
    tags = tracking.get_mlflow().MlflowClient().get_run(run.info.run_id).data.tags
    assert json.loads(tags["data_paths"]) == [str(data.resolve())]
    assert tags["cwd"] == os.getcwd()


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.slow
def test_a_recorded_smoke_run_reproduces_to_the_same_metric(tmp_path):
    """A clean clone of HEAD records a run; reproducing it re-creates the identical pAUC."""
    clone = tmp_path / "repo"
    _git("clone", "--quiet", "--no-checkout", str(REPO), str(clone), cwd=tmp_path)
    _git("checkout", "--quiet", "--detach", _git("rev-parse", "HEAD", cwd=REPO), cwd=clone)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        # -P keeps the current folder off sys.path: the clone's code, not this checkout's
        "PYTHONPATH": os.pathsep.join([str(clone), *sys.path]),
    }
    recorded = subprocess.run(
        [
            *(sys.executable, "-P", "-m", "projects.tabular_gbm.train"),
            *("experiment=smoke", "debug=tiny"),
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.output_dir={tmp_path / 'outputs'}",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    assert recorded.returncode == 0, recorded.stderr[-3000:]
    run_id = re.search(r"run ([0-9a-f]{32})", recorded.stdout).group(1)
    original = float(re.search(r"oof_pauc = ([0-9.]+)", recorded.stdout).group(1))

    cmd = [sys.executable, "-P", "-m", "tools.reproduce", run_id]
    done = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    row = re.search(r"^oof_pauc\s+([0-9.]+)\s+([0-9.]+)\s+(\S+) \*$", done.stdout, re.M)
    assert row, done.stdout[-3000:]
    assert float(row.group(1)) == pytest.approx(original, abs=1e-4)
    assert float(row.group(1)) == float(row.group(2))  # identical, not merely close
    assert "oof_pauc: " in done.stdout and ": reproduced (code from " in done.stdout
    code = re.search(r"code from (\S+)\)", done.stdout).group(1)
    assert "reproduce-" in code and not code.startswith(str(clone))  # the commit's worktree
    assert _git("worktree", "list", cwd=clone).count("\n") == 0  # the worktree is gone

    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("tabular_gbm")
    again = client.search_runs([exp.experiment_id], f"tags.reproduces = '{run_id}'")
    assert len(again) == 1
    first = client.get_run(run_id)
    assert again[0].data.metrics["oof_pauc"] == first.data.metrics["oof_pauc"]
    assert again[0].data.tags["git_sha"] == first.data.tags["git_sha"]
    assert again[0].data.tags["git_dirty"] == "false"

    # the data changes: the same run is now refused, naming the fingerprints
    (folder,) = (tmp_path / "data" / "smoke").glob("isic2024-*")  # keyed by its settings
    csv = folder / "train-metadata.csv"
    csv.write_text(csv.read_text() + csv.read_text().splitlines()[-1] + "\n")
    refused = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: the data of run {run_id} changed")
