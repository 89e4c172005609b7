"""Train and evaluate the GBM ensemble with patient-grouped CV; log and register it.

python -m projects.tabular_gbm.train experiment=smoke|full [data.dir=PATH] [key=value ...]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import hydra
import mlflow
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from projects.tabular_gbm.config import TabularGBMConfig
from projects.tabular_gbm.data import IMAGE_SCORE, join_image_oof, load_training_frame
from projects.tabular_gbm.features import build_features, fit_spec
from projects.tabular_gbm.model import MODELS, blend, feature_importance, fit_ensemble
from projects.tabular_gbm.pyfunc import TabularGBMModel
from shared import tracking
from shared.config import validate
from shared.datasets import isic2024 as isic
from shared.folds import FOLD_COLUMN
from shared.logging import get_logger
from shared.metrics import pauc_above_tpr, roc_auc
from shared.plots import barh_figure, roc_figure
from shared.seed import seed_everything

log = get_logger(__name__)
SCORED = (*MODELS, "ensemble")


def score(y: np.ndarray, s: np.ndarray, min_tpr: float) -> dict[str, float]:
    return {"pauc": pauc_above_tpr(y, s, min_tpr), "roc_auc": roc_auc(y, s)}


def best_single_feature(df: pd.DataFrame, y: np.ndarray, min_tpr: float) -> tuple[str, float]:
    """The raw metadata column with the highest pAUC (either direction): the bar to beat."""
    best = ("", 0.0)
    for col in isic.NUMERIC:
        x = df[col].fillna(df[col].median()).to_numpy()
        for sign in (1, -1):
            p = pauc_above_tpr(y, sign * x, min_tpr)
            if p > best[1]:
                best = (col, p)
    return best


def run(raw_cfg: DictConfig) -> dict[str, float]:
    """Compose-validated config in, headline metrics out (everything else goes to MLflow)."""
    cfg: TabularGBMConfig = validate(raw_cfg, TabularGBMConfig)
    seed_everything(cfg.seed, deterministic=False)
    df = load_training_frame(cfg.data)
    data_paths = [Path(cfg.data.dir) / isic.TRAIN_CSV, Path(cfg.data.folds_file)]
    extra = []
    if cfg.data.image_oof:
        df = join_image_oof(df, cfg.data.image_oof)
        extra, data_paths = [IMAGE_SCORE], [*data_paths, Path(cfg.data.image_oof)]
    feature_opts = {
        "patient_norm": cfg.features.patient_norm,
        "counts": cfg.features.patient_counts,
        "min_patient_std": cfg.features.min_patient_std,
    }
    spec = fit_spec(df, extra)
    X = build_features(df, spec, **feature_opts)
    spec.columns = list(X.columns)
    y = df[isic.TARGET].to_numpy()
    folds = df[FOLD_COLUMN].to_numpy()
    min_tpr = cfg.model.min_tpr
    log.info(
        "%d lesions, %d positives, %d patients, %d features",
        len(df),
        y.sum(),
        df[isic.PATIENT].nunique(),
        X.shape[1],
    )

    with tracking.start_run(
        cfg.tracking.experiment,
        run_name=cfg.tracking.run_name,
        config=cfg,
        data_paths=data_paths,
        tags=cfg.tracking.tags,
    ) as run:
        oof = {m: np.zeros(len(df)) for m in SCORED}
        fold_scores: dict[str, list[float]] = {
            f"{m}_{k}": [] for m in SCORED for k in ("pauc", "roc_auc")
        }
        for fold in sorted(np.unique(folds)):
            tr, va = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
            with tracking.start_run(
                cfg.tracking.experiment,
                run_name=f"fold_{fold}",
                nested=True,
                tags={"fold": str(fold)},
            ):
                ens = fit_ensemble(X.iloc[tr], y[tr], cfg.model, cfg.seed + int(fold))
                preds = ens.predict_each(X.iloc[va])
                preds["ensemble"] = blend(preds, ens.weights)
                metrics = {}
                for m in SCORED:
                    oof[m][va] = preds[m]
                    for k, v in score(y[va], preds[m], min_tpr).items():
                        metrics[f"{m}_{k}"] = v
                    for k in ("pauc", "roc_auc"):
                        fold_scores[f"{m}_{k}"].append(metrics[f"{m}_{k}"])
                tracking.log_metrics(metrics)
                log.info("fold %d: ensemble pAUC %.4f", fold, metrics["ensemble_pauc"])

        summary: dict[str, float] = {}
        for m in SCORED:
            overall = score(y, oof[m], min_tpr)
            summary[f"{m}_oof_pauc"] = overall["pauc"]
            summary[f"{m}_oof_roc_auc"] = overall["roc_auc"]
            for k in ("pauc", "roc_auc"):
                summary[f"{m}_fold_{k}_mean"] = float(np.mean(fold_scores[f"{m}_{k}"]))
                summary[f"{m}_fold_{k}_std"] = float(np.std(fold_scores[f"{m}_{k}"]))
        summary["oof_pauc"] = summary["ensemble_oof_pauc"]
        summary["oof_roc_auc"] = summary["ensemble_oof_roc_auc"]
        feat_name, summary["best_single_feature_pauc"] = best_single_feature(df, y, min_tpr)
        mlflow.set_tag("best_single_feature", feat_name)
        oracle = isic.read_oracle(cfg.data.dir)
        if oracle is not None:
            p = df[[isic.ID]].merge(oracle, on=isic.ID, how="left")["true_probability"]
            summary["oracle_pauc"] = pauc_above_tpr(y, p.to_numpy(), min_tpr)
            summary["oracle_ratio"] = summary["oof_pauc"] / summary["oracle_pauc"]
        summary["n_features"] = float(X.shape[1])
        tracking.log_metrics(summary)

        with tempfile.TemporaryDirectory() as tmp:
            out = pd.DataFrame(
                {
                    isic.ID: df[isic.ID],
                    isic.PATIENT: df[isic.PATIENT],
                    FOLD_COLUMN: folds,
                    isic.TARGET: y,
                    **oof,
                }
            )
            out.to_csv(Path(tmp) / "oof.csv", index=False)
            mlflow.log_artifact(str(Path(tmp) / "oof.csv"))
        mlflow.log_text("\n".join(spec.columns), "features.txt")
        mlflow.log_figure(roc_figure({m: (y, oof[m]) for m in SCORED}, min_tpr), "roc_curve.png")

        log.info("final fit on all %d lesions", len(df))
        final = fit_ensemble(X, y, cfg.model, cfg.seed)
        imp = feature_importance(final, spec.columns)
        mlflow.log_text(imp.to_csv(index=False), "feature_importance.csv")
        top = imp.head(25)
        mlflow.log_figure(
            barh_figure(
                top.feature.tolist(),
                top["mean"].tolist(),
                "Feature importance (mean of LightGBM gain, CatBoost)",
            ),
            "feature_importance.png",
        )
        input_cols = [c for c in isic.REQUIRED_TEST + extra]
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=TabularGBMModel(final, spec, feature_opts),
            input_example=df[input_cols].head(5),
            pip_requirements=["lightgbm", "catboost", "pandas", "numpy", "mlflow"],
        )
        mlflow.log_dict(spec.to_dict(), "feature_spec.json")
        if cfg.tracking.register:
            version, promoted = tracking.register_if_better(
                info.model_uri, "tabular_gbm", "oof_pauc", summary["oof_pauc"]
            )
            mlflow.set_tags({"model_version": version, "champion": str(promoted).lower()})
        mlflow.set_tag("model_uri", info.model_uri)
        tracking.announce(run, "oof_pauc", summary["oof_pauc"])
    return summary


@hydra.main(version_base="1.3", config_path="../../configs/tabular_gbm", config_name="train")
def main(cfg: DictConfig) -> float:
    return run(cfg)["oof_pauc"]


if __name__ == "__main__":
    main()
