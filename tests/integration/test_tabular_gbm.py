"""The tabular_gbm smoke pipeline end to end on a tiny generated set, into a temporary store."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from projects.tabular_gbm import predict as predict_mod
from projects.tabular_gbm.data import join_image_oof
from projects.tabular_gbm.features import build_features
from projects.tabular_gbm.train import run
from shared.datasets import isic2024 as isic
from shared.datasets.isic2024_training import load_training_frame
from shared.errors import InputError

CHANCE_PAUC = 0.02  # a random ranking: the triangle above 80% TPR, 0.2 * 0.2 / 2
MARGIN = 0.02


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
    assert m["oof_pauc"] == pytest.approx(metrics["oof_pauc"])
    assert m["bad_values_total"] == 0
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


def test_pipeline_learns_well_above_the_best_single_feature_and_chance(tiny_run):
    _, metrics, _ = tiny_run
    assert metrics["oof_pauc"] > metrics["best_single_feature_pauc"] + MARGIN
    assert metrics["oof_pauc"] > 3 * CHANCE_PAUC
    assert metrics["oracle_ratio"] > 0.6


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


def test_image_oof_joins_on_the_real_folds_and_other_folds_fail(tiny_run, tmp_path):
    cfg, _, _ = tiny_run
    df = load_training_frame(cfg.data)
    oof = pd.DataFrame({"isic_id": df.isic_id, "fold": df.fold, "score": 0.5})
    ok = join_image_oof(df, _write(oof, tmp_path / "ok.csv"))
    assert "image_score" in ok.columns and len(ok) == len(df)
    oof["fold"] = (oof["fold"] + 1) % 5
    with pytest.raises(InputError, match="disagree"):
        join_image_oof(df, _write(oof, tmp_path / "bad.csv"))


def test_predict_with_image_scores_fails_naming_a_lesion_without_one(tiny_run, tmp_path):
    cfg, _, _ = tiny_run
    test = pd.read_csv(f"{cfg.data.dir}/test-metadata.csv")
    scores = pd.DataFrame({"isic_id": test.isic_id, "image_score": 0.5})
    argv = ["--input", f"{cfg.data.dir}/test-metadata.csv", "--output", str(tmp_path / "s.csv")]
    argv += ["--model-uri", "models:/tabular_gbm-isic2024-smoke@champion"]
    with pytest.raises(InputError, match=f"no score for 1 of {len(test)} .*{test.isic_id[0]}"):
        predict_mod.main(
            [*argv, "--image-scores", str(_write(scores.iloc[1:], tmp_path / "i.csv"))]
        )
    assert not (tmp_path / "s.csv").exists()


def _write(df, path):
    df.to_csv(path, index=False)
    return path


def test_results_table_reads_the_latest_smoke_run(tiny_run):
    from tools.results import latest_runs

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


def _other_data_set(root, n_patients=60, mean_lesions=20, seed=7):
    """An ISIC-format folder from another generating process: every column is independent
    noise except that malignancy rises with lesion size and falls with nevus confidence,
    through one smooth monotone function of the two; other category values, no oracle."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(mean_lesions // 2, mean_lesions * 3 // 2, n_patients)
    patient = np.repeat([f"P{p:04d}" for p in range(n_patients)], sizes)
    n = len(patient)
    df = pd.DataFrame({c: rng.normal(50, 10, n) for c in isic.NUMERIC})
    df["age_approx"] = rng.integers(3, 18, n) * 5.0
    size, nevus = rng.normal(0, 1, n), rng.normal(0, 1, n)
    df["clin_size_long_diam_mm"] = np.exp(1.2 + 0.4 * size).round(2)
    df["tbp_lv_nevi_confidence"] = 100 / (1 + np.exp(-nevus))
    logit = 2.5 * (size - nevus) - 5.0
    df[isic.TARGET] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df[isic.ID] = [f"LES{i:06d}" for i in rng.permutation(n)]
    df[isic.PATIENT] = patient
    for c in isic.CATEGORICAL:
        df[c] = rng.choice([f"{c}_a", f"{c}_b", f"{c}_c"], n)
    folder = root / "other"
    folder.mkdir()
    df.to_csv(folder / isic.TRAIN_CSV, index=False, na_rep="NA")
    return folder, df


@pytest.fixture(scope="module")
def other_data(tiny):
    return _other_data_set(tiny.root)


def test_a_new_data_set_from_another_process_is_learned(tiny, other_data):
    """Issue 10's "done when": the same public format, another signal; with one unreadable
    age, read as missing under data.on_bad_values=warn and counted in the run's metrics."""
    folder, df = other_data
    assert 0.04 < df[isic.TARGET].mean() < 0.15
    typo = df.astype({"age_approx": object})
    typo.loc[4, "age_approx"] = "sixty"  # row 4: line 6 of the file
    typo.to_csv(folder / isic.TRAIN_CSV, index=False, na_rep="NA")
    base = ["data.generate=false", f"data.dir={folder}", "tracking.register=false"]
    with pytest.raises(InputError, match=r"age_approx: 1 \(line 6: 'sixty'\)"):
        run(tiny("tabular_gbm", *base))
    with pytest.warns(isic.BadValuesWarning):
        metrics = run(tiny("tabular_gbm", *base, "data.on_bad_values=warn"))
    assert metrics["bad_values_age_approx"] == 1 and metrics["bad_values_total"] == 1
    assert metrics["oof_pauc"] > metrics["best_single_feature_pauc"] + MARGIN
    assert metrics["oof_pauc"] > 4 * CHANCE_PAUC
    runs = mlflow.MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("tabular_gbm").experiment_id],
        order_by=["start_time DESC"],
    )
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["bad_values_age_approx"] == 1


def _patients_frame(cfg) -> pd.DataFrame:
    """The training lesions in the public test format (every lesion of each patient)."""
    df = pd.read_csv(f"{cfg.data.dir}/{isic.TRAIN_CSV}", dtype={isic.ID: str})
    return df[isic.REQUIRED_TEST].reset_index(drop=True)


def _assert_batch_independent(model, rows: pd.DataFrame) -> None:
    """A patient's predictions alone, among all patients and with rows shuffled, agree."""
    every = pd.Series(np.asarray(model.predict(rows)), index=rows[isic.ID])
    shuffled = rows.sample(frac=1, random_state=3)
    again = pd.Series(np.asarray(model.predict(shuffled)), index=shuffled[isic.ID])
    np.testing.assert_allclose(again.loc[every.index], every, rtol=0, atol=1e-9)
    patients = rows[isic.PATIENT].unique()
    for some in ([patients[0]], list(patients[1:4])):
        part = rows[rows[isic.PATIENT].isin(some)]
        alone = pd.Series(np.asarray(model.predict(part)), index=part[isic.ID])
        np.testing.assert_allclose(alone, every.loc[alone.index], rtol=0, atol=1e-9)


def test_a_patients_predictions_do_not_depend_on_other_patients_or_row_order(tiny_run):
    cfg, _, _ = tiny_run
    model = mlflow.pyfunc.load_model("models:/tabular_gbm-isic2024-smoke@champion")
    rows = _patients_frame(cfg)
    _assert_batch_independent(model, rows)
    # the patient features are real: a patient's lesions scored one by one differ
    first = rows[rows[isic.PATIENT] == rows[isic.PATIENT].iloc[0]]
    whole = np.asarray(model.predict(first))
    single = np.concatenate([np.asarray(model.predict(first.iloc[[i]])) for i in range(len(first))])
    assert not np.allclose(whole, single)


@pytest.fixture(scope="module")
def stacked_run(tiny_run, tmp_path_factory):
    """A stacked GBM on an image OOF file whose scores follow the target (real folds)."""
    cfg, _, tiny = tiny_run
    df = load_training_frame(cfg.data)
    rng = np.random.default_rng(0)
    score = np.clip(0.3 * df[isic.TARGET] + rng.normal(0.2, 0.1, len(df)), 0, 1)
    path = tmp_path_factory.mktemp("stacked") / "image_oof.csv"
    pd.DataFrame({isic.ID: df[isic.ID], "fold": df["fold"], "score": score}).to_csv(
        path, index=False
    )
    run(tiny("tabular_gbm", f"data.image_oof={path}"))
    return cfg, df, path


def test_the_training_image_feature_is_the_percentile_within_its_own_fold(stacked_run):
    from projects.tabular_gbm.data import join_image_oof
    from shared.metrics import reference_percentile

    _, df, path = stacked_run
    oof = pd.read_csv(path, dtype={isic.ID: str})
    joined = join_image_oof(df, path)
    for _, part in oof.groupby("fold"):
        expected = reference_percentile(part["score"], part["score"])
        got = joined.set_index(isic.ID).loc[part[isic.ID], "image_score"]
        np.testing.assert_allclose(got, expected, rtol=0, atol=0)


def test_the_stacked_model_takes_image_score_as_given_and_is_batch_independent(stacked_run):
    cfg, _, _ = stacked_run
    model = mlflow.pyfunc.load_model("models:/tabular_gbm-isic2024-smoke-stacked@champion")
    rows = _patients_frame(cfg)
    rng = np.random.default_rng(1)
    rows["image_score"] = rng.uniform(0, 1, len(rows))
    _assert_batch_independent(model, rows)
    # the feature is an input: changing one lesion's image_score moves that patient only
    moved = rows.copy()
    moved.loc[0, "image_score"] = 1 - moved.loc[0, "image_score"]
    before = pd.Series(np.asarray(model.predict(rows)), index=rows[isic.ID])
    after = pd.Series(np.asarray(model.predict(moved)), index=rows[isic.ID])
    others = rows.loc[rows[isic.PATIENT] != rows[isic.PATIENT].iloc[0], isic.ID]
    np.testing.assert_allclose(after.loc[others], before.loc[others], rtol=0, atol=1e-9)
    # ... and reaches the ensemble's input as given (a tiny GBM may never split on it, so the
    # prediction itself need not move)
    inner = model.unwrap_python_model()
    features = build_features(moved, inner.spec, **inner.feature_options)
    np.testing.assert_allclose(features["image_score"], moved["image_score"], rtol=0, atol=0)


def test_a_full_data_run_registers_under_the_full_name_and_becomes_its_champion(
    tiny_run, project_config
):
    """Issue 12's "done when": the FULL experiment config on data in the public layout (here
    the generated folder, few trees) registers `tabular_gbm-isic2024`, not the smoke name, and
    is that model's champion even with a lower OOF pAUC than the smoke champion, which stays."""
    cfg, smoke_metrics, tiny = tiny_run
    client = mlflow.MlflowClient()
    smoke_before = client.get_model_version_by_alias("tabular_gbm-isic2024-smoke", "champion")
    full_cfg = project_config(
        "tabular_gbm",
        "experiment=full",
        f"paths.data_dir={tiny.root / 'data'}",
        f"paths.output_dir={tiny.root / 'outputs'}",
        f"data.dir={cfg.data.dir}",
        "data.synthetic=null",
        "model.n_bags=1",
        "model.lightgbm.num_boost_round=2",
        "model.lightgbm.params.num_threads=1",
        "model.catboost.params.iterations=2",
        "model.catboost.params.thread_count=1",
    )
    assert full_cfg.data.name == "isic2024" and full_cfg.tracking.tags.experiment == "full"
    metrics = run(full_cfg)
    assert metrics["oof_pauc"] < smoke_metrics["oof_pauc"]  # two trees: a weaker model

    champion = client.get_model_version_by_alias("tabular_gbm-isic2024", "champion")
    full_run = client.get_run(champion.run_id)
    assert full_run.data.tags["experiment"] == "full"
    assert full_run.data.metrics["oof_pauc"] == pytest.approx(metrics["oof_pauc"])
    tags = champion.tags
    assert tags["run_id"] == champion.run_id and tags["experiment"] == "full"
    assert tags["git_sha"] == full_run.data.tags["git_sha"] != "unknown"
    assert tags["data_fingerprint"] == full_run.data.tags["data_fingerprint"] != "unknown"
    assert tags["validation_metric"] == "oof_pauc"
    assert float(tags["oof_pauc"]) == pytest.approx(metrics["oof_pauc"])
    smoke_after = client.get_model_version_by_alias("tabular_gbm-isic2024-smoke", "champion")
    assert smoke_after.version == smoke_before.version  # the smoke champion is left alone
    assert not client.search_model_versions(
        f"name = 'tabular_gbm-isic2024-smoke' and run_id = '{champion.run_id}'"
    )


def _oof_artifact(run_id: str) -> pd.DataFrame:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="oof.csv")
    return pd.read_csv(path)


def test_a_partial_run_scores_its_folds_only_and_a_holdout_run_never_sees_its_fold(tiny_run):
    """The two halves of a nested sweep: a trial (cv.folds=[0]) scores fold 0 and registers
    nothing; the re-run (data.holdout_fold=0) neither trains on nor scores fold 0's patients."""
    _, _, tiny = tiny_run
    client = mlflow.MlflowClient()
    versions = len(client.search_model_versions("name = 'tabular_gbm-isic2024-smoke'"))

    trial = run(tiny("tabular_gbm", "cv.folds=[0]", "tracking.run_name=partial-0"))
    rerun = run(tiny("tabular_gbm", "data.holdout_fold=0", "tracking.run_name=holdout-0"))

    exp = client.get_experiment_by_name("tabular_gbm").experiment_id
    by_name = {
        r.info.run_name: r
        for r in client.search_runs([exp], order_by=["start_time DESC"], max_results=20)
    }
    trial_oof = _oof_artifact(by_name["partial-0"].info.run_id)
    rerun_oof = _oof_artifact(by_name["holdout-0"].info.run_id)
    assert set(trial_oof["fold"]) == {0}
    assert set(rerun_oof["fold"]) == {1, 2, 3, 4}
    assert trial["oof_pauc"] == pytest.approx(by_name["partial-0"].data.metrics["oof_pauc"])
    assert rerun["n_features"] > 0
    assert by_name["partial-0"].data.tags["partial"] == "true"
    assert "model_uri" not in by_name["partial-0"].data.tags  # no final fit, no model
    assert by_name["holdout-0"].data.params["data.holdout_fold"] == "0"
    # the holdout's patients are gone from the training frame itself
    held = load_training_frame(tiny("tabular_gbm", "data.holdout_fold=0").data)
    assert 0 not in set(held["fold"]) and len(held) == len(rerun_oof)
    after = client.search_model_versions("name = 'tabular_gbm-isic2024-smoke'")
    assert len(after) == versions + 1  # the holdout run registers, the partial one does not


@pytest.mark.parametrize(
    "missing",
    [["age_approx"], ["clin_size_long_diam_mm"], isic.NUMERIC],
    ids=["age", "size", "every-numeric"],
)
def test_a_patient_with_a_feature_missing_on_every_row_is_scored(tiny_run, missing):
    """ISIC 2024 has patients whose age is unknown: a request holding only such a patient
    has a column that is null on every row (crashed as `size_age_interaction: object`)."""
    cfg, _, _ = tiny_run
    model = mlflow.pyfunc.load_model("models:/tabular_gbm-isic2024-smoke@champion")
    rows = _patients_frame(cfg)
    patient = rows[rows[isic.PATIENT] == rows[isic.PATIENT].iloc[0]]
    records = patient.astype(object).where(patient.notna(), None).to_dict(orient="records")
    for r in records:
        r.update(dict.fromkeys(missing))  # JSON null, as a REST request sends it
    scores = np.asarray(model.predict(records), dtype=float)
    assert len(scores) == len(records) and np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    dropped = [{k: v for k, v in r.items() if k not in missing} for r in records]
    np.testing.assert_allclose(model.predict(dropped), scores)  # left out = null
