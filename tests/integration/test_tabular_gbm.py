"""The tabular_gbm smoke pipeline end to end on a tiny generated set, into a temporary store."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from projects.tabular_gbm import predict as predict_mod
from projects.tabular_gbm.data import join_image_oof
from projects.tabular_gbm.train import run
from shared.datasets.isic2024 import load_training_frame


@pytest.fixture(scope="module")
def tiny_run(tiny):
    cfg = tiny("tabular_gbm")
    return cfg, run(cfg), tiny


def test_smoke_pipeline_logs_metrics_and_registers_the_model(tiny_run):
    cfg, metrics, _ = tiny_run
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("tabular_gbm")
    runs = client.search_runs([exp.experiment_id], order_by=["start_time DESC"])
    parent = next(r for r in runs if r.data.tags.get("experiment") == "smoke")
    m = parent.data.metrics
    for key in (
        "oof_pauc",
        "lightgbm_oof_pauc",
        "catboost_oof_pauc",
        "ensemble_fold_pauc_std",
        "ensemble_fold_roc_auc_mean",
        "oracle_pauc",
        "oracle_ratio",
        "best_single_feature_pauc",
    ):
        assert key in m
    assert 0.0 < m["oof_pauc"] <= 0.2
    assert m["oof_pauc"] == pytest.approx(metrics["oof_pauc"])
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(folds) == 5
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "oof.csv",
        "roc_curve.png",
        "feature_importance.png",
        "features.txt",
        "config.yaml",
    } <= arts
    champion = client.get_model_version_by_alias("tabular_gbm-isic2024-smoke", "champion")
    assert champion.run_id == parent.info.run_id


def test_pipeline_beats_the_best_single_feature(tiny_run):
    _, metrics, _ = tiny_run
    assert metrics["oof_pauc"] > metrics["best_single_feature_pauc"]


def test_predict_writes_a_kaggle_submission_with_unseen_values(tiny_run, tmp_path):
    cfg, _, _ = tiny_run
    test_csv = tmp_path / "test-metadata.csv"
    test = pd.read_csv(f"{cfg.data.dir}/test-metadata.csv")
    test.loc[0, "anatom_site_general"] = "never seen"
    test.loc[1, "age_approx"] = np.nan
    test.to_csv(test_csv, index=False)
    out = predict_mod.main(
        [
            "--input",
            str(test_csv),
            "--output",
            str(tmp_path / "sub.csv"),
            "--model-uri",
            "models:/tabular_gbm-isic2024-smoke@champion",
        ]
    )
    sub = pd.read_csv(out)
    assert list(sub.columns) == ["isic_id", "target"]
    assert len(sub) == len(test) and sub["target"].between(0, 1).all()


def test_image_oof_with_other_folds_fails_clearly(tiny_run, tmp_path):
    cfg, _, _ = tiny_run
    df = load_training_frame(cfg.data)
    oof = pd.DataFrame({"isic_id": df.isic_id, "fold": df.fold, "score": 0.5})
    ok = join_image_oof(df, _write(oof, tmp_path / "ok.csv"))
    assert "image_score" in ok.columns
    oof["fold"] = (oof["fold"] + 1) % 5
    with pytest.raises(ValueError, match="disagree"):
        join_image_oof(df, _write(oof, tmp_path / "bad.csv"))
    with pytest.raises(ValueError, match="no score"):
        join_image_oof(df, _write(oof.iloc[:-3], tmp_path / "short.csv"))


def _write(df, path):
    df.to_csv(path, index=False)
    return path


def test_results_table_reads_the_latest_smoke_run(tiny_run):
    from shared.report import latest_runs

    _, metrics, _ = tiny_run
    rows = [r for r in latest_runs("smoke") if r["project"] == "tabular_gbm"]
    assert rows and rows[0]["metric"] == "oof_pauc"
    assert rows[0]["value"] == pytest.approx(metrics["oof_pauc"])
    assert rows[0]["status"] == "FINISHED"


def test_same_seed_config_and_data_give_the_same_metrics(tiny_run):
    _, metrics, tiny = tiny_run
    again = run(tiny("tabular_gbm", "tracking.register=false"))
    assert again["oof_pauc"] == metrics["oof_pauc"]
    assert again["catboost_oof_roc_auc"] == metrics["catboost_oof_roc_auc"]
