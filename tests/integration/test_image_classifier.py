"""A short fit of image_classifier via Hydra compose into a temporary store; resume; OOF file."""

import mlflow
import pandas as pd
import pytest
from lightning.pytorch.callbacks import Callback

from projects.image_classifier.train import run


class CrashOnFold1(Callback):
    """Simulates a killed job: fold 1 dies as its second epoch starts (last.ckpt exists)."""

    def __init__(self):
        self.fits = 0

    def on_fit_start(self, trainer, pl_module):
        self.fits += 1

    def on_train_epoch_start(self, trainer, pl_module):
        if self.fits == 2 and trainer.current_epoch == 1:
            raise RuntimeError("simulated crash")


def test_interrupted_run_is_marked_failed_then_resumes_the_same_run(tiny, tmp_path):
    cfg = tiny("image_classifier", f"run_dir={tmp_path}")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cfg, callbacks=[CrashOnFold1()])
    client = mlflow.MlflowClient()
    state = pd.read_json(tmp_path / "state.json", typ="series")
    parent_id = state["run_id"]
    assert client.get_run(parent_id).info.status == "FAILED"
    assert (tmp_path / "fold_1" / "checkpoints" / "last.ckpt").is_file()

    resumed = tiny("image_classifier", f"run_dir={tmp_path}", "resume=true")
    metrics = run(resumed)
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["n_folds_done"] == 2
    assert 0.0 <= metrics["oof_roc_auc"] <= 1.0
    fold1 = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}' and tags.fold = '1'"
    )
    assert len(fold1) == 1  # the interrupted fold continued its own nested run
    steps = sorted(m.step for m in client.get_metric_history(fold1[0].info.run_id, "val_roc_auc"))
    assert steps == [0, 1]
    champion = client.get_model_version_by_alias("image_classifier-isic2024-smoke", "champion")
    assert champion.run_id == parent_id


def test_oof_file_matches_the_shared_folds_and_feeds_tabular_gbm(tiny, tmp_path):
    from projects.tabular_gbm.config import TabularGBMConfig
    from projects.tabular_gbm.data import join_image_oof
    from shared.config import validate
    from shared.datasets.isic2024 import load_training_frame

    cfg = tiny(
        "image_classifier",
        f"run_dir={tmp_path}",
        "cv.folds=null",
        "trainer.max_epochs=1",
        "cv.tta=false",
        "tracking.register=false",
    )
    run(cfg)
    oof = pd.read_csv(cfg.oof_file)
    assert list(oof.columns) == ["isic_id", "fold", "score"]
    assert oof["score"].between(0, 1).all()
    folds = pd.read_csv(cfg.data.folds_file)  # the same file tabular_gbm reads
    merged = oof.merge(folds, on="isic_id", suffixes=("", "_shared"))
    assert len(merged) == len(oof) == len(folds)
    assert (merged["fold"] == merged["fold_shared"]).all()
    tab = validate(tiny("tabular_gbm"), TabularGBMConfig)
    assert tab.data.folds_file == cfg.data.folds_file
    df = join_image_oof(load_training_frame(tab.data), cfg.oof_file)
    assert df["image_score"].notna().all()
