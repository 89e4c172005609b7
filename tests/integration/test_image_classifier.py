"""Short fits of image_classifier via Hydra compose into a temporary store: epoch selection that
never sees the scored fold, interrupt + resume equal to an uninterrupted run, partial runs, and
the OOF file that tabular_gbm reads."""

import json
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from projects.image_classifier.config import ImageClassifierConfig
from projects.image_classifier.data import load_lesions
from projects.image_classifier.model import with_backbone_preprocessing
from projects.image_classifier.module import fit_fold
from projects.image_classifier.state import RestartError
from projects.image_classifier.train import run
from shared import tracking
from shared.config import validate
from shared.datasets.isic2024 import read_metadata
from shared.folds import assign_folds
from shared.seed import seed_everything
from tests.helpers import REPO, store_env, tiny_train_command

MODEL = "image_classifier-isic2024-smoke"


class CtrlCAtFold1(Callback):
    """Ctrl-C as fold 1's second epoch starts: its first epoch's last.ckpt exists."""

    def __init__(self):
        self.fits = 0

    def on_fit_start(self, trainer, pl_module):
        self.fits += 1

    def on_train_epoch_start(self, trainer, pl_module):
        if self.fits == 2 and trainer.current_epoch == 1:
            raise KeyboardInterrupt


def _client():
    return mlflow.MlflowClient()


def _fold_run(parent_id, k):
    parent = _client().get_run(parent_id)
    runs = _client().search_runs(
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_id}' and tags.fold = '{k}'",
    )
    assert len(runs) == 1  # an interrupted fold continues its own nested run
    return runs[0]


def _history(run_id, key):
    hist = _client().get_metric_history(run_id, key)
    return [(m.step, m.value) for m in sorted(hist, key=lambda m: (m.step, m.timestamp))]


def _versions_of(run_id):
    return _client().search_model_versions(f"name = '{MODEL}' and run_id = '{run_id}'")


def _snapshot(path):
    p = Path(path)
    return p.read_bytes() if p.is_file() else None


@pytest.mark.parametrize("selection", ["inner", "fixed"])
def test_the_chosen_epoch_never_depends_on_the_scored_fold(tiny, tmp_path, selection):
    """Permuting fold 0's labels changes nothing about which weights score fold 0."""
    raw = tiny("image_classifier", "trainer.max_epochs=3", f"cv.selection={selection}")
    cfg = with_backbone_preprocessing(validate(raw, ImageClassifierConfig))
    frame, _, images = load_lesions(cfg.data, cfg.loader, cfg.paths.cache_dir)
    heldout = frame["fold"] == 0
    shuffled = frame.copy()
    rng = np.random.default_rng(0)
    shuffled.loc[heldout, "target"] = rng.permutation(frame.loc[heldout, "target"].to_numpy())
    assert (shuffled.target != frame.target).any()
    chosen = []
    for name, df in (("true", frame), ("permuted", shuffled)):
        seed_everything(cfg.seed)
        with tracking.start_run("image_classifier", run_name=f"select-{name}"):
            _, path = fit_fold(cfg, df, images, 0, tmp_path / name, None)
        chosen.append(torch.load(path, map_location="cpu", weights_only=False))
    (a, b) = chosen
    assert a["epoch"] == b["epoch"]
    if selection == "fixed":
        assert a["epoch"] == 2  # the last of trainer.max_epochs
    score = [
        next(v["best_model_score"] for k, v in c["callbacks"].items() if "ModelCheckpoint" in k)
        for c in chosen
    ]
    assert score[0] == score[1]  # the monitored value is not computed on fold 0
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tiny, tmp_path):
    """Ctrl-C in fold 1 ends the runs KILLED; a plain re-run points to resume=true; the resumed
    run equals an uninterrupted one exactly (CPU), and as a run on 2 of 5 folds it keeps out of
    the shared OOF file and the registry."""
    # a subset of folds is partial on its own; the held-out curves are compared below
    overrides = ("partial=false", "cv.tta=false", "cv.heldout_curves=true")
    whole = tiny("image_classifier", f"run_dir={tmp_path / 'whole'}", *overrides)
    shared_oof = _snapshot(whole.oof_file)
    expected = run(whole)
    whole_id = pd.read_json(tmp_path / "whole" / "state.json", typ="series")["run_id"]

    cut = tmp_path / "cut"
    cfg = tiny("image_classifier", f"run_dir={cut}", *overrides)
    with pytest.raises(SystemExit):  # Lightning turns the KeyboardInterrupt into exit(1)
        run(cfg, callbacks=[CtrlCAtFold1()])
    parent_id = pd.read_json(cut / "state.json", typ="series")["run_id"]
    assert _client().get_run(parent_id).info.status == "KILLED"
    assert _fold_run(parent_id, 1).info.status == "KILLED"
    assert (cut / "fold_1" / "checkpoints" / "last.ckpt").is_file()
    with pytest.raises(RestartError, match="resume=true"):
        run(cfg)  # a plain re-run would orphan the interrupted one
    with pytest.raises(RestartError, match=r"trainer.max_epochs: 2 -> 3"):
        run(tiny("image_classifier", f"run_dir={cut}", "resume=true", "trainer.max_epochs=3"))

    resumed = run(tiny("image_classifier", f"run_dir={cut}", "resume=true", *overrides))
    assert resumed == expected
    parent = _client().get_run(parent_id)
    assert parent.info.status == "FINISHED" and "error" not in parent.data.tags
    fold1, whole1 = _fold_run(parent_id, 1), _fold_run(whole_id, 1)
    assert "error" not in fold1.data.tags
    for key in ("train_loss", "val_pauc", "heldout_pauc", "heldout_loss"):
        assert _history(fold1.info.run_id, key) == _history(whole1.info.run_id, key), key
    assert [s for s, _ in _history(fold1.info.run_id, "val_pauc")] == [0, 1]
    pd.testing.assert_frame_equal(
        pd.read_csv(cut / "oof.csv"), pd.read_csv(tmp_path / "whole/oof.csv")
    )

    assert _snapshot(whole.oof_file) == shared_oof  # partial: the shared file is untouched
    assert parent.data.tags["partial"] == "true" and not _versions_of(parent_id)


class StopAfterFirstEpoch(Callback):
    """Early stopping's decision after each fold's first epoch; counts the epochs trained."""

    def __init__(self):
        self.epochs = 0

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs += 1
        trainer.should_stop = True


def test_a_fold_stopped_early_and_killed_before_scoring_resumes_without_training(
    tiny, tmp_path, monkeypatch
):
    """last.ckpt keeps early stopping's counters, not its decision: a fold that stopped and
    was killed while being scored must not train on when resumed (max_epochs is 2 here)."""
    whole = run(tiny("image_classifier", f"run_dir={tmp_path / 'whole'}"), [StopAfterFirstEpoch()])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with monkeypatch.context() as m:
        m.setattr("projects.image_classifier.module.predict_scores", killed)
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            run(tiny("image_classifier", f"run_dir={cut}"), [StopAfterFirstEpoch()])
    assert (cut / "fold_0" / "fit_done.json").is_file()
    resumed_stop = StopAfterFirstEpoch()
    resumed = run(tiny("image_classifier", f"run_dir={cut}", "resume=true"), [resumed_stop])
    assert resumed == whole
    assert resumed_stop.epochs == 1  # fold 1's first epoch; fold 0 trained nothing more


def test_only_a_complete_run_replaces_the_shared_oof_file(tiny, tmp_path):
    """With 2 folds in all: `partial=true` writes its run folder only and registers nothing;
    the complete run writes the shared file (folds equal to an independent assignment) that
    tabular_gbm joins, and registers."""
    from projects.tabular_gbm.config import TabularGBMConfig
    from projects.tabular_gbm.data import join_image_oof
    from shared.datasets.isic2024_training import load_training_frame

    data = ["data.n_folds=2", f"data.folds_file={tmp_path / 'folds.csv'}"]
    common = [*data, "cv.folds=null", "trainer.max_epochs=1", "cv.tta=false"]
    quick = tiny("image_classifier", f"run_dir={tmp_path / 'quick'}", *common, "partial=true")
    shared_oof = Path(quick.oof_file)
    shared_oof.parent.mkdir(parents=True, exist_ok=True)
    shared_oof.write_text("isic_id,fold,score\nsentinel,0,0.5\n")
    run(quick)
    quick_id = pd.read_json(tmp_path / "quick" / "state.json", typ="series")["run_id"]
    assert shared_oof.read_text() == "isic_id,fold,score\nsentinel,0,0.5\n"
    assert len(pd.read_csv(tmp_path / "quick" / "oof.csv")) > 0 and not _versions_of(quick_id)

    cfg = tiny("image_classifier", f"run_dir={tmp_path / 'full'}", *common, "partial=false")
    run(cfg)
    full_id = pd.read_json(tmp_path / "full" / "state.json", typ="series")["run_id"]
    assert len(_versions_of(full_id)) == 1
    assert not list(shared_oof.parent.glob(".*tmp"))  # written through a temporary file
    oof = pd.read_csv(shared_oof)
    assert list(oof.columns) == ["isic_id", "fold", "score"]
    meta = read_metadata(Path(cfg.data.dir) / "train-metadata.csv")
    folds = assign_folds(  # computed here, independently of the fold file both projects read
        meta, id_col="isic_id", group_col="patient_id", target_col="target", n_splits=2, seed=42
    )
    merged = oof.merge(folds, on="isic_id", suffixes=("", "_independent"))
    assert len(merged) == len(oof) == len(meta)
    assert (merged["fold"] == merged["fold_independent"]).all()
    synthetic = [f"data.synthetic.{k}={v}" for k, v in cfg.data.synthetic.items()]
    tab = validate(tiny("tabular_gbm", *data, *synthetic), TabularGBMConfig)
    df = join_image_oof(load_training_frame(tab.data), shared_oof)
    assert df["image_score"].notna().all()


def _train(tmp_path, *overrides, wait=True):
    """`python -m projects.image_classifier.train experiment=smoke debug=tiny ...` in tmp_path."""
    env = store_env(tmp_path)
    cmd = tiny_train_command(
        "image_classifier", tmp_path, "cv.folds=[0]", "trainer.max_epochs=4", *overrides
    )
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        out, err = proc.communicate(timeout=600)
        return proc.returncode, err.decode()
    return proc


def _kill_after_a_checkpoint(proc, run_root, sig):
    """Send `sig` once fold 0 has written a new last.ckpt (so there is something to resume)."""
    deadline = time.time() + 600
    seen = {p: p.stat().st_mtime_ns for p in run_root.glob("*/fold_0/checkpoints/last.ckpt")}
    while time.time() < deadline and proc.poll() is None:
        now = {p: p.stat().st_mtime_ns for p in run_root.glob("*/fold_0/checkpoints/last.ckpt")}
        if any(seen.get(p) != t for p, t in now.items()):
            proc.send_signal(sig)
            break
        time.sleep(0.1)
    proc.communicate(timeout=600)
    return proc.returncode


@pytest.mark.slow
def test_sigterm_and_kill_9_in_real_processes_then_resume(tmp_path):
    """SIGTERM ends the run KILLED; a plain re-run names the folder to resume; after kill -9 (the
    run left RUNNING) the same; the resumed run finishes without the old error tag."""
    runs = tmp_path / "outputs" / "image_classifier"
    runs.mkdir(parents=True)
    assert _kill_after_a_checkpoint(_train(tmp_path, wait=False), runs, signal.SIGTERM) == 1
    (run_dir,) = [p.parent for p in runs.glob("*/state.json")]
    store = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = json.loads((run_dir / "state.json").read_text())["run_id"]
    assert store.get_run(run_id).info.status == "KILLED"
    assert store.get_run(run_id).data.tags["error"] == "Terminated: SIGTERM"

    rc, err = _train(tmp_path)  # a plain re-run, no run_dir: finds the interrupted one
    assert rc == 2 and f"resume=true run_dir={run_dir}" in err, err[-2000:]

    proc = _train(tmp_path, "resume=true", f"run_dir={run_dir}", wait=False)
    assert _kill_after_a_checkpoint(proc, runs, signal.SIGKILL) == -signal.SIGKILL
    assert store.get_run(run_id).info.status == "RUNNING"  # what kill -9 leaves behind
    rc, err = _train(tmp_path, f"run_dir={run_dir}")
    assert rc == 2 and "resume=true" in err, err[-2000:]

    rc, err = _train(tmp_path, "resume=true", f"run_dir={run_dir}")
    assert rc == 0, err[-3000:]
    finished = store.get_run(run_id)
    assert finished.info.status == "FINISHED" and "error" not in finished.data.tags
    assert json.loads((run_dir / "state.json").read_text())["finished"] is True
