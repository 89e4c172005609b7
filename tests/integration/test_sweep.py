"""Sweeps: search spaces name real config keys, the pruning hook, nested selection, and a
killed sweep resumes (its dead trial's runs KILLED, the re-run reported)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from shared import pruning
from shared.config import ConfigError, compose
from tests.helpers import REPO
from tools import sweep, sweep_space, sweep_storage

SPACES = sorted(REPO.glob("configs/*/hparams_search/*.yaml"))
TINY = ["experiment=smoke", "debug=tiny"]  # the one tiny config every test composes


@pytest.mark.parametrize("path", SPACES, ids=lambda p: f"{p.parts[-3]}-{p.stem}")
def test_every_search_space_names_real_config_keys(path):
    project = path.parts[-3]
    space = sweep_space.load_space(project, path.stem)
    study = optuna.create_study(direction=space.direction)
    values = sweep_space.suggest(study.ask(), space.params)
    overrides = [f"{k}={sweep_space.hydra_value(v)}" for k, v in values.items()]
    cfg = compose(project, [*space.overrides, *overrides])
    for key, value in values.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == value


def test_search_spaces_cover_the_gbm_and_a_torch_project():
    assert {"tabular_gbm", "image_classifier"} <= {p.parts[-3] for p in SPACES}


def test_a_misspelt_space_key_fails_naming_it():
    with pytest.raises(ConfigError, match="lightgbm.num_leavez"):
        compose("tabular_gbm", ["model.lightgbm.num_leavez=3"])


def test_report_is_a_no_op_outside_a_sweep():
    assert pruning._ACTIVE is None
    pruning.report(0.1, 0)
    pruning.report({"val_pauc": 0.1}, 0)


def test_report_prunes_a_trial_below_the_median():
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    for good in (0.15, 0.16):
        t = study.ask()
        t.report(good, 0)
        t.report(good, 1)
        study.tell(t, good)
    trial = study.ask()
    pruning._ACTIVE = pruning._Active(trial, "val_pauc", set())
    try:
        pruning.report({"val_pauc": 0.12, "val_loss": 9.0}, 0)  # a warm-up step: goes on
        pruning.report({"val_pauc": 0.01}, 0)  # a step already reported (second fold): ignored
        with pytest.raises(optuna.TrialPruned):
            pruning.report(0.01, 1)  # below the other trials' median at step 1
    finally:
        pruning._ACTIVE = None
    assert study.trials[2].intermediate_values == {0: 0.12, 1: 0.01}


def test_hydra_values_round_trip_through_an_override():
    cfg = compose(
        "tabular_gbm",
        [
            f"tracking.run_name={sweep_space.hydra_value(name)}"
            for name in ["it's a b=c"]  # quotes, spaces and '=' survive
        ]
        + [f"data.image_oof={sweep_space.hydra_value(None)}"],
    )
    assert cfg.tracking.run_name == "it's a b=c" and cfg.data.image_oof is None


def _study(storage: str):
    """The sweep's study, read as the sweep opens it (a new SQLite file is created under a lock:
    a bare `load_study` beside the sweep's start raced it on the alembic_version row)."""
    storage = sweep_storage.open_storage(storage)
    return optuna.load_study(study_name="tabular_gbm-default", storage=storage)


def _open_storage(url: str, results) -> None:  # a spawned process: top level, picklable
    try:
        sweep_storage.open_storage(url)
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - the test reports what failed
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_one_new_sqlite_study_store_at_once_all_succeed(tmp_path):
    """Four sweeps (or a sweep and a reader) starting on a brand-new SQLite file: without the
    lock two to three of four failed on alembic_version (9 of 20 in 5 rounds, checked)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for round_ in range(2):
        results = ctx.Queue()
        url = f"sqlite:///{tmp_path / f'new{round_}.db'}"
        procs = [ctx.Process(target=_open_storage, args=(url, results)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(120)
        assert [results.get(timeout=10) for _ in procs] == ["ok"] * 4


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_trials_asked_for(tmp_path):
    """4 trials: SIGKILL the driver after 2 (a third running), resume with 2 workers."""
    storage = f"sqlite:///{tmp_path / 'sweeps.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    cmd = [
        *(sys.executable, "-m", "tools.sweep", "--project", "tabular_gbm", "--trials", "4"),
        *("--storage", storage, *TINY),
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.output_dir={tmp_path / 'out'}",
    ]
    first = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.5)
            try:
                trials = _study(storage).trials
            except KeyError:  # the study is not created yet
                continue
            done = [t for t in trials if t.state.is_finished()]
            running = [t for t in trials if t.state == TrialState.RUNNING and t.params]
            if len(done) >= 2 and running:
                break
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and its workers, mid-trial
        first.wait()
    trials = _study(storage).trials
    assert len([t for t in trials if t.state.is_finished()]) == 2
    killed = [t for t in trials if t.state == TrialState.RUNNING]
    assert len(killed) == 1
    # SIGKILL is delivered, not yet done: a loaded machine may take a moment to tear the worker
    # down, and a resume before then rightly leaves a live process's trial alone (CI flaked
    # on that). Resume as a user would, once the killed processes are gone.
    token = killed[0].user_attrs[sweep_storage.WORKER_ATTR]
    deadline = time.monotonic() + 120
    while not sweep_storage.token_is_dead(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sweep_storage.token_is_dead(token), f"worker {token} outlived SIGKILL for 120 s"

    subprocess.run([*cmd[:7], "--n-jobs", "2", *cmd[7:]], cwd=REPO, env=env, check=True)

    study = _study(storage)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [killed[0].number]
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == killed[0].number]
    assert len(retry) == 1 and retry[0].params == killed[0].params
    workers = {t.user_attrs["worker"] for t in finished[2:]}
    assert len(workers) == 2, "the resumed trials ran in two worker processes"
    for t in finished:  # a trial scores the holdout fold (0) only
        assert sorted(t.intermediate_values) == [0]
    best = study.best_trial
    assert best.value == max(t.value for t in finished if t.state == TrialState.COMPLETE)

    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    parent = client.get_run(study.user_attrs[sweep.PARENT_ATTR])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best_trial"] == str(best.number)
    assert parent.data.tags["best_run_id"] == best.user_attrs["mlflow_run_id"]
    # nested selection: chosen on the holdout fold, reported from a re-run that never saw it
    rerun = client.get_run(parent.data.tags["rerun_run_id"])
    assert rerun.info.status == "FINISHED"
    assert rerun.data.params["data.holdout_fold"] == "0"
    metrics = parent.data.metrics
    assert metrics["selection_oof_pauc"] == pytest.approx(best.value)
    assert metrics["reported_oof_pauc"] == pytest.approx(rerun.data.metrics["oof_pauc"])
    assert metrics["optimism_oof_pauc"] == pytest.approx(best.value - metrics["reported_oof_pauc"])
    for key, value in best.params.items():
        assert float(rerun.data.params[key]) == pytest.approx(value)  # every param is a number
    trial_run = client.get_run(best.user_attrs["mlflow_run_id"])
    scored = {
        name: set(pd.read_csv(client.download_artifacts(run_id, "oof.csv", tmp_path))["fold"])
        for name, run_id in (("trial", trial_run.info.run_id), ("rerun", rerun.info.run_id))
    }
    assert scored == {"trial": {0}, "rerun": {1, 2, 3, 4}}
    for key, value in best.params.items():
        assert parent.data.tags[f"best.{key}"] == str(value)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"optimization_history.png", "trials.csv"} <= artifacts
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    counted = {
        int(r.data.tags["optuna_trial"])
        for r in children
        if r.data.tags.get("optuna_state") in ("COMPLETE", "PRUNED")
    }
    assert counted == {t.number for t in finished}
    everything = client.search_runs([parent.info.experiment_id])
    # the killed trial's run (if it had started) and its fold runs end KILLED, none RUNNING
    assert [r.info.run_name for r in everything if r.info.status == "RUNNING"] == []
    for r in children:
        if r.data.tags.get("optuna_trial") == str(killed[0].number):
            assert r.info.status == "KILLED"
    # trials never register or move champions: the one version is the re-run's
    versions = client.search_model_versions("name = 'tabular_gbm-isic2024-smoke'")
    assert [v.run_id for v in versions] == [rerun.info.run_id]


def test_only_trials_of_dead_processes_on_this_host_are_failed_and_requeued(tmp_path):
    storage = sweep_storage.open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    gone = subprocess.Popen(["sleep", "30"])
    dead_token = sweep_storage.process_token(gone.pid)
    gone.kill()
    gone.wait()
    tokens = {
        "dead": dead_token,
        "alive": sweep_storage.process_token(),
        "elsewhere": f"other-host:{os.getpid()}:1",
    }
    for token in tokens.values():
        trial = study.ask()
        trial.set_user_attr(sweep_storage.WORKER_ATTR, token)
        trial.suggest_float("lr", 0.0, 1.0)
    assert sweep_storage.fail_stale_trials(study, storage) == [0]
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.WAITING]
    assert study.trials[3].system_attrs["fixed_params"] == study.trials[0].params  # same values
    assert study.trials[3].user_attrs["retry_of"] == 0


def test_a_killed_worker_left_a_zombie_counts_as_dead():
    """A SIGKILLed sweep's workers are orphans; until some init reaps them, /proc still lists
    them (state Z, same start time). CI failed on that: the killed trial stayed RUNNING."""
    zombie = subprocess.Popen(["sleep", "30"])
    token = sweep_storage.process_token(zombie.pid)
    zombie.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # killed, not reaped (no wait() yet): a zombie
        if Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.01)
    try:
        assert sweep_storage.token_is_dead(token) is True
        assert sweep_storage.token_is_dead(sweep_storage.process_token()) is False
    finally:
        zombie.wait()


def test_a_dead_trials_run_and_its_fold_runs_are_all_marked_killed(tmp_path):
    """A killed sweep leaves the trial's run and its nested fold runs RUNNING; the resume
    ends every one of them KILLED, and leaves finished runs alone."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "art"))
    trial = client.create_run(exp, tags={"sweep": "s", "optuna_trial": "3"}).info.run_id
    fold = client.create_run(exp, tags={"mlflow.parentRunId": trial}).info.run_id
    inner = client.create_run(exp, tags={"mlflow.parentRunId": fold}).info.run_id
    done = client.create_run(exp, tags={"mlflow.parentRunId": trial}).info.run_id
    client.set_terminated(done, "FINISHED")
    other = client.create_run(exp, tags={"sweep": "s", "optuna_trial": "4"}).info.run_id

    killed = sweep._kill_runs(client, exp, "tags.sweep = 's' and tags.optuna_trial = '3'")

    assert sorted(killed) == sorted([trial, fold, inner])
    status = {r: client.get_run(r).info.status for r in (trial, fold, inner, done, other)}
    assert status == {
        trial: "KILLED",
        fold: "KILLED",
        inner: "KILLED",
        done: "FINISHED",
        other: "RUNNING",
    }
