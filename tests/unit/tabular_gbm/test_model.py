"""Undersampling, blending and the fitted LightGBM + CatBoost ensemble."""

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from projects.tabular_gbm.model import (
    Ensemble,
    bag_seeds,
    best_single_feature,
    blend,
    cv_summary,
    feature_importance,
    fit_ensemble,
    fit_fold,
    undersample,
)
from shared.errors import InputError
from tests.helpers import REPO


def _model_cfg(**overrides):
    cfg = OmegaConf.load(REPO / "configs/tabular_gbm/model/lgbm_catboost.yaml")
    cfg.lightgbm.num_boost_round = 30
    cfg.catboost.params.iterations = 30
    cfg.n_bags = 1
    return OmegaConf.merge(cfg, overrides)


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    X["site"] = pd.Categorical(rng.choice(["arm", "leg", "torso"], size=n))
    y = (X["a"] + 0.3 * rng.normal(size=n) > 1.2).astype(int).to_numpy()
    return X, y


def test_undersampling_keeps_every_positive_and_the_asked_ratio():
    y = np.array([1] * 10 + [0] * 500)
    idx = undersample(y, neg_ratio=5, seed=0)
    assert (y[idx] == 1).sum() == 10
    assert (y[idx] == 0).sum() == 50
    assert np.array_equal(idx, np.sort(idx))
    assert not np.array_equal(idx, undersample(y, 5, seed=1))  # another seed, other negatives


def test_undersampling_keeps_everything_when_negatives_are_few_or_ratio_is_zero():
    y = np.array([1] * 10 + [0] * 30)
    assert len(undersample(y, neg_ratio=5, seed=0)) == 40
    assert len(undersample(np.array([1] * 10 + [0] * 500), neg_ratio=0, seed=0)) == 510


def test_blend_is_the_normalised_weighted_mean():
    scores = {"lightgbm": np.array([0.2, 0.8]), "catboost": np.array([0.4, 0.0])}
    out = blend(scores, {"lightgbm": 3.0, "catboost": 1.0})
    assert out == pytest.approx([0.25, 0.6])
    with pytest.raises(ValueError, match="positive"):
        blend(scores, {"lightgbm": 0.0, "catboost": 0.0})


def test_fitted_ensemble_ranks_positives_first_and_predicts_the_blend():
    X, y = _data()
    ens = fit_ensemble(X, y, _model_cfg(), seed=0)
    assert isinstance(ens, Ensemble)
    each = ens.predict_each(X)
    assert set(each) == {"lightgbm", "catboost"}
    assert np.allclose(ens.predict(X), 0.5 * each["lightgbm"] + 0.5 * each["catboost"])
    p = ens.predict(X)
    assert p[y == 1].mean() > p[y == 0].mean() + 0.3


def test_bags_draw_other_negatives_and_average_their_models():
    X, y = _data()
    ens = fit_ensemble(X, y, _model_cfg(n_bags=3, neg_ratio=2), seed=7)
    assert len(ens.lightgbm) == len(ens.catboost) == 3
    # Each bag saw its own draw of the negatives (and its own model seed)...
    seeds = bag_seeds(7, 3)
    assert seeds[0] == 7 and len(set(seeds)) == 3  # bag 0 is the single-draw model
    draws = [set(undersample(y, 2, s)) for s in seeds]
    assert draws[0] != draws[1] and draws[1] != draws[2]
    each = [b.predict(X) for b in ens.lightgbm]
    assert not np.allclose(each[0], each[1])
    # ...and the ensemble scores with the mean over the bags.
    assert np.allclose(ens.predict_each(X)["lightgbm"], np.mean(each, axis=0))
    single = fit_ensemble(X, y, _model_cfg(n_bags=1, neg_ratio=2), seed=7)
    assert np.allclose(single.lightgbm[0].predict(X), each[0])
    imp = feature_importance(ens, list(X.columns))
    assert imp["feature"].iloc[0] == "a" and imp["lightgbm"].sum() == pytest.approx(1.0)


def test_zero_bags_is_a_config_error():
    with pytest.raises(InputError, match="model.n_bags"):
        bag_seeds(0, 0)


def test_fit_fold_scores_only_the_held_out_fold_and_cv_summary_pools_them():
    X, y = _data()
    folds = np.arange(len(y)) % 3
    cfg = _model_cfg()
    oof = {m: np.zeros(len(y)) for m in ("lightgbm", "catboost", "ensemble")}
    fold_metrics = []
    for k in range(3):
        va, preds, metrics = fit_fold(X, y, folds, k, cfg, seed=k)
        assert np.array_equal(va, np.flatnonzero(folds == k))
        for m in oof:
            oof[m][va] = preds[m]
        fold_metrics.append(metrics)
    summary = cv_summary(y, oof, fold_metrics, 0.8)
    assert summary["oof_pauc"] == summary["ensemble_oof_pauc"]
    assert summary["oof_roc_auc"] > 0.8
    means = [f["ensemble_roc_auc"] for f in fold_metrics]
    assert summary["ensemble_fold_roc_auc_mean"] == pytest.approx(np.mean(means))


def test_best_single_feature_finds_the_informative_column_in_either_direction():
    X, y = _data()
    X["neg_a"] = -X["a"]
    name, score = best_single_feature(X.drop(columns=["a"]), y, ["b", "neg_a"], 0.8)
    assert name == "neg_a" and score > 0.1


def _record_training_rows(monkeypatch) -> list[set[int]]:
    """Replace LightGBM's fit by a recorder: the row labels each booster was given."""
    from projects.tabular_gbm import model as gbm

    seen: list[set[int]] = []
    real = gbm.fit_lightgbm

    def recording(X, y, params, model_cfg):
        seen.append(set(X.index))
        return real(X, y, params, model_cfg)

    monkeypatch.setattr(gbm, "fit_lightgbm", recording)
    return seen


def test_each_fold_trains_on_exactly_the_other_folds(monkeypatch):
    """A fold that also trained on the rows it scores only raises OOF: check the rows."""
    seen = _record_training_rows(monkeypatch)
    X, y = _data()
    folds = np.arange(len(y)) % 3
    for k in range(3):
        fit_fold(X, y, folds, k, _model_cfg(neg_ratio=0), seed=k)  # neg_ratio 0 keeps every row
        assert seen[-1] == set(np.flatnonzero(folds != k)), f"fold {k} trained on other rows"


def test_every_bag_fits_on_its_own_draw_of_the_negatives(monkeypatch):
    seen = _record_training_rows(monkeypatch)
    X, y = _data()
    fit_ensemble(X, y, _model_cfg(n_bags=3, neg_ratio=2), seed=7)
    positives = set(np.flatnonzero(y == 1))
    negatives = [rows - positives for rows in seen]
    assert len(seen) == 3 and all(positives <= rows for rows in seen)
    assert all(len(n) == 2 * len(positives) for n in negatives)
    assert negatives[0] != negatives[1] and negatives[1] != negatives[2] != negatives[0]
    assert negatives == [set(undersample(y, 2, s)) - positives for s in bag_seeds(7, 3)]


def test_best_single_feature_scores_the_median_filled_column_at_the_asked_tpr():
    """The bar is the column's pAUC above the asked min TPR (not the default 0.8), in its
    better direction, with missing values filled by the column's median."""
    from shared.metrics import pauc_above_tpr

    rng = np.random.default_rng(0)
    y = np.r_[np.ones(10), np.zeros(30)].astype(int)
    x = rng.normal(size=40) + 0.8 * y  # both signs, so 1 / x would reorder it
    x[[3, 20]] = np.nan
    filled = pd.Series(x).fillna(np.nanmedian(x)).to_numpy()
    expected = max(pauc_above_tpr(y, filled, 0.5), pauc_above_tpr(y, -filled, 0.5))
    name, score = best_single_feature(pd.DataFrame({"x": x}), y, ["x"], 0.5)
    assert name == "x" and score == pytest.approx(expected)


def test_best_single_feature_keeps_the_first_of_equally_good_columns():
    """Ties go to the first listed column, so the reported bar does not depend on which of
    two copies of one measurement comes last."""
    X, y = _data()
    name, _ = best_single_feature(X.assign(a2=X["a"]), y, ["a", "a2"], 0.8)
    assert name == "a"


def test_best_single_feature_of_no_columns_is_no_bar():
    """With no raw column to compare against, the bar is empty: no name and a pAUC of 0."""
    X, y = _data()
    assert best_single_feature(X, y, [], 0.8) == ("", 0.0)
