"""Fitting and scoring the LightGBM + CatBoost ensemble on a feature matrix.

Kept free of MLflow and Hydra: data in, fitted models and scores out.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from typing import Any

import catboost
import lightgbm as lgb
import numpy as np
import pandas as pd

from shared.config import ConfigError
from shared.metrics import pauc_above_tpr, roc_auc

MODELS = ("lightgbm", "catboost")
SCORED = (*MODELS, "ensemble")


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
    """One LightGBM and one CatBoost per bag (a draw of the negatives), plus the blend weights.

    `predict_each` averages each model's probability over the bags; `predict` blends them.
    """

    lightgbm: list[lgb.Booster]
    catboost: list[catboost.CatBoostClassifier]
    weights: dict[str, float]

    def predict_each(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        Xc, _ = _catboost_frame(X)
        return {
            "lightgbm": np.mean([b.predict(X) for b in self.lightgbm], axis=0),
            "catboost": np.mean([c.predict_proba(Xc)[:, 1] for c in self.catboost], axis=0),
        }

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return blend(self.predict_each(X), self.weights)


def blend(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of the models' probabilities; weights are normalised to sum to 1."""
    total = sum(weights[m] for m in scores)
    if total <= 0:
        raise ValueError(f"ensemble weights must sum to a positive number, got {weights}")
    return sum(weights[m] * scores[m] for m in scores) / total


BAG_SEED_STEP = 1000  # bag b uses seed + b * step: bag 0 is the single-draw model of old


def bag_seeds(seed: int, n_bags: int) -> list[int]:
    """One seed per bag; each draws its own negatives and seeds its own models."""
    if n_bags < 1:
        raise ConfigError(f"config key 'model.n_bags': must be at least 1, got {n_bags}")
    return [seed + b * BAG_SEED_STEP for b in range(n_bags)]


def fit_ensemble(X: pd.DataFrame, y: np.ndarray, model_cfg: Any, seed: int) -> Ensemble:
    """Per bag: undersample the negatives with the bag's seed, fit both models on those rows.

    With ~0.1% positives most negatives are dropped by any one draw; averaging models fitted on
    `model_cfg.n_bags` different draws uses more of them and lowers the variance of the scores.
    """
    boosters, cats_models = [], []
    for bag_seed in bag_seeds(seed, model_cfg.n_bags):
        idx = undersample(y, model_cfg.neg_ratio, bag_seed)
        Xs, ys = X.iloc[idx], y[idx]
        params = {**dict(model_cfg.lightgbm.params), "seed": bag_seed, "deterministic": True}
        boosters.append(fit_lightgbm(Xs, ys, params, model_cfg))
        Xc, cats = _catboost_frame(Xs)
        cb = catboost.CatBoostClassifier(**dict(model_cfg.catboost.params), random_seed=bag_seed)
        cb.fit(Xc, ys, cat_features=cats)
        cats_models.append(cb)
    return Ensemble(boosters, cats_models, dict(model_cfg.ensemble_weights))


ENGINES = ("local", "dask")
_DASK_CLIENTS: dict[tuple, Any] = {}


def fit_lightgbm(X: pd.DataFrame, y: np.ndarray, params: dict, model_cfg: Any) -> lgb.Booster:
    """One LightGBM booster, on this machine (`model.engine=local`) or data-parallel across a
    Dask cluster's workers (`dask`, `lightgbm.dask`); either way a plain Booster comes back, so
    the ensemble, the pyfunc and prediction do not depend on the engine."""
    rounds = model_cfg.lightgbm.num_boost_round
    if model_cfg.engine == "local":
        return lgb.train(params, lgb.Dataset(X, y), num_boost_round=rounds)
    if model_cfg.engine != "dask":
        raise ConfigError(f"config key 'model.engine': one of {ENGINES}, got {model_cfg.engine!r}")
    import dask.dataframe as dd
    from lightgbm.dask import DaskLGBMClassifier

    client = dask_client(model_cfg.dask)
    parts = max(1, min(len(client.scheduler_info()["workers"]), len(X)))
    model = DaskLGBMClassifier(client=client, n_estimators=rounds, **params)
    model.fit(dd.from_pandas(X, npartitions=parts), dd.from_pandas(pd.Series(y), npartitions=parts))
    return model.booster_


def dask_client(dask_cfg: Any):
    """A client of `model.dask.scheduler` (a running cluster's address), or, when it is null, of
    a LocalCluster of `n_workers` started once per process and reused by every fold and bag."""
    from dask.distributed import Client, LocalCluster

    key = (dask_cfg.scheduler, dask_cfg.n_workers, dask_cfg.threads_per_worker, dask_cfg.processes)
    client = _DASK_CLIENTS.get(key)
    if client is not None and client.status == "running":
        return client
    if dask_cfg.scheduler:
        try:
            client = Client(dask_cfg.scheduler, timeout=dask_cfg.connect_timeout_s)
        except OSError as exc:
            raise ConfigError(
                f"config key 'model.dask.scheduler': no Dask scheduler answers at "
                f"{dask_cfg.scheduler} ({exc})"
            ) from exc
    else:
        cluster = LocalCluster(
            n_workers=dask_cfg.n_workers,
            threads_per_worker=dask_cfg.threads_per_worker,
            processes=dask_cfg.processes,
            dashboard_address=None,
        )
        client = Client(cluster)
        atexit.register(cluster.close)
    atexit.register(client.close)
    _DASK_CLIENTS[key] = client
    return client


def feature_importance(ens: Ensemble, columns: list[str]) -> pd.DataFrame:
    """Gain importance of LightGBM and CatBoost's own importance (summed over the bags), each
    scaled to sum to 1."""
    lgb_imp = np.sum([b.feature_importance("gain") for b in ens.lightgbm], axis=0)
    cb_imp = np.sum([c.get_feature_importance() for c in ens.catboost], axis=0)
    df = pd.DataFrame(
        {
            "feature": columns,
            "lightgbm": lgb_imp / max(lgb_imp.sum(), 1e-12),
            "catboost": cb_imp / max(cb_imp.sum(), 1e-12),
        }
    )
    df["mean"] = df[["lightgbm", "catboost"]].mean(axis=1)
    return df.sort_values("mean", ascending=False).reset_index(drop=True)


def score(y: np.ndarray, s: np.ndarray, min_tpr: float) -> dict[str, float]:
    """The two numbers reported for every model: pAUC above `min_tpr` and ROC-AUC."""
    return {"pauc": pauc_above_tpr(y, s, min_tpr), "roc_auc": roc_auc(y, s)}


def fit_fold(
    X: pd.DataFrame, y: np.ndarray, folds: np.ndarray, fold: int, model_cfg: Any, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """Fit on every other fold, score fold `fold`: (its row indices, scores per model, metrics)."""
    tr, va = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
    ens = fit_ensemble(X.iloc[tr], y[tr], model_cfg, seed)
    preds = ens.predict_each(X.iloc[va])
    preds["ensemble"] = blend(preds, ens.weights)
    metrics = {
        f"{m}_{k}": v for m in SCORED for k, v in score(y[va], preds[m], model_cfg.min_tpr).items()
    }
    return va, preds, metrics


def cv_summary(
    y: np.ndarray, oof: dict[str, np.ndarray], fold_metrics: list[dict[str, float]], min_tpr: float
) -> dict[str, float]:
    """Pooled OOF pAUC/ROC-AUC per model, and the folds' mean and std of each."""
    summary: dict[str, float] = {}
    for m in SCORED:
        overall = score(y, oof[m], min_tpr)
        summary[f"{m}_oof_pauc"] = overall["pauc"]
        summary[f"{m}_oof_roc_auc"] = overall["roc_auc"]
        for k in ("pauc", "roc_auc"):
            values = [f[f"{m}_{k}"] for f in fold_metrics]
            summary[f"{m}_fold_{k}_mean"] = float(np.mean(values))
            summary[f"{m}_fold_{k}_std"] = float(np.std(values))
    summary["oof_pauc"] = summary["ensemble_oof_pauc"]
    summary["oof_roc_auc"] = summary["ensemble_oof_roc_auc"]
    return summary


def best_single_feature(
    df: pd.DataFrame, y: np.ndarray, columns: list[str], min_tpr: float
) -> tuple[str, float]:
    """The raw column with the highest pAUC (either direction): the bar a model must clear."""
    best = ("", 0.0)
    for col in columns:
        x = df[col].fillna(df[col].median()).to_numpy()
        for sign in (1, -1):
            p = pauc_above_tpr(y, sign * x, min_tpr)
            if p > best[1]:
                best = (col, p)
    return best
