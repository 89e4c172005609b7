"""Fitting and scoring the LightGBM + CatBoost ensemble on a feature matrix.

Kept free of MLflow and Hydra: data in, fitted models and scores out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import catboost
import lightgbm as lgb
import numpy as np
import pandas as pd

MODELS = ("lightgbm", "catboost")


def undersample(y: np.ndarray, neg_ratio: float, seed: int) -> np.ndarray:
    """Indices keeping every positive and `neg_ratio` negatives per positive (0 keeps all)."""
    pos = np.flatnonzero(y == 1)
    neg = np.flatnonzero(y == 0)
    if neg_ratio <= 0 or len(neg) <= neg_ratio * len(pos):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = rng.choice(neg, int(neg_ratio * len(pos)), replace=False)
    return np.sort(np.concatenate([pos, keep]))


def _catboost_frame(X: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    cats = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    out = X.copy()
    for c in cats:
        out[c] = out[c].astype(str)
    return out, cats


@dataclass
class Ensemble:
    """Fitted models plus their weights; `predict` returns the weighted mean probability."""

    lightgbm: lgb.Booster
    catboost: catboost.CatBoostClassifier
    weights: dict[str, float]

    def predict_each(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        Xc, _ = _catboost_frame(X)
        return {
            "lightgbm": self.lightgbm.predict(X),
            "catboost": self.catboost.predict_proba(Xc)[:, 1],
        }

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return blend(self.predict_each(X), self.weights)


def blend(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of the models' probabilities; weights are normalised to sum to 1."""
    total = sum(weights[m] for m in scores)
    if total <= 0:
        raise ValueError(f"ensemble weights must sum to a positive number, got {weights}")
    return sum(weights[m] * scores[m] for m in scores) / total


def fit_ensemble(X: pd.DataFrame, y: np.ndarray, model_cfg: Any, seed: int) -> Ensemble:
    """Undersample negatives, then fit both models on the same rows."""
    idx = undersample(y, model_cfg.neg_ratio, seed)
    Xs, ys = X.iloc[idx], y[idx]
    params = {**dict(model_cfg.lightgbm.params), "seed": seed, "deterministic": True}
    booster = lgb.train(
        params, lgb.Dataset(Xs, ys), num_boost_round=model_cfg.lightgbm.num_boost_round
    )
    Xc, cats = _catboost_frame(Xs)
    cb = catboost.CatBoostClassifier(**dict(model_cfg.catboost.params), random_seed=seed)
    cb.fit(Xc, ys, cat_features=cats)
    return Ensemble(booster, cb, dict(model_cfg.ensemble_weights))


def feature_importance(ens: Ensemble, columns: list[str]) -> pd.DataFrame:
    """Gain importance of LightGBM and CatBoost's own importance, each scaled to sum to 1."""
    lgb_imp = ens.lightgbm.feature_importance("gain")
    cb_imp = ens.catboost.get_feature_importance()
    df = pd.DataFrame(
        {
            "feature": columns,
            "lightgbm": lgb_imp / max(lgb_imp.sum(), 1e-12),
            "catboost": cb_imp / max(cb_imp.sum(), 1e-12),
        }
    )
    df["mean"] = df[["lightgbm", "catboost"]].mean(axis=1)
    return df.sort_values("mean", ascending=False).reset_index(drop=True)
