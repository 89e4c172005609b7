"""Train and evaluate the GBM ensemble with patient-grouped CV; log and register it.

python -m projects.tabular_gbm.train experiment=smoke|full [data.dir=PATH] [key=value ...]
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from projects.tabular_gbm import pyfunc
from projects.tabular_gbm.config import TabularGBMConfig
from projects.tabular_gbm.data import load_frame
from projects.tabular_gbm.features import build_features, fit_spec
from projects.tabular_gbm.model import (
    SCORED,
    best_single_feature,
    cv_summary,
    fit_ensemble,
    fit_fold,
)
from projects.tabular_gbm.report import log_cv_artifacts, log_importance
from shared import tracking
from shared.cli import hydra_entry
from shared.config import validate
from shared.datasets import isic2024 as isic
from shared.folds import FOLD_COLUMN, scored_folds
from shared.logging import get_logger
from shared.metrics import pauc_above_tpr
from shared.pruning import report as sweep_report
from shared.seed import seed_everything

log = get_logger(__name__)


def run(raw_cfg: DictConfig) -> dict[str, float]:
    """Compose-validated config in, headline metrics out (everything else goes to MLflow)."""
    cfg: TabularGBMConfig = validate(raw_cfg, TabularGBMConfig)
    scored = scored_folds(cfg.data.n_folds, cfg.cv.folds, cfg.data.holdout_fold)
    # a sweep trial scores some folds: no final fit, no model
    partial = scored != scored_folds(cfg.data.n_folds, None, cfg.data.holdout_fold)
    seed_everything(cfg.seed, deterministic=False)
    df, extra, data_paths, bad_values = load_frame(cfg.data)
    feature_opts = {
        "patient_norm": cfg.features.patient_norm,
        "counts": cfg.features.patient_counts,
        "min_patient_std": cfg.features.min_patient_std,
    }
    spec = fit_spec(df, extra)
    X = build_features(df, spec, **feature_opts)
    spec.columns = list(X.columns)
    y, folds = df[isic.TARGET].to_numpy(), df[FOLD_COLUMN].to_numpy()
    min_tpr = cfg.model.min_tpr
    log.info(
        "%d lesions, %d positives, %d patients, %d features",
        len(df),
        y.sum(),
        df[isic.PATIENT].nunique(),
        X.shape[1],
    )

    with tracking.start_pipeline_run(
        cfg, data_paths, tags={"partial": str(partial).lower()}
    ) as run:
        oof = {m: np.zeros(len(df)) for m in SCORED}
        fold_metrics = []
        for fold in scored:
            with tracking.start_run(
                cfg.tracking.experiment,
                run_name=f"fold_{fold}",
                nested=True,
                tags={"fold": str(fold)},
            ):
                va, preds, metrics = fit_fold(X, y, folds, fold, cfg.model, cfg.seed + int(fold))
                for m in SCORED:
                    oof[m][va] = preds[m]
                tracking.log_metrics(metrics)
                fold_metrics.append(metrics)
                log.info("fold %d: ensemble pAUC %.4f", fold, metrics["ensemble_pauc"])
            sweep_report(np.mean([m["ensemble_pauc"] for m in fold_metrics]), int(fold))

        rows = np.isin(folds, scored)  # every row unless partial
        df, X, y = df[rows].reset_index(drop=True), X[rows].reset_index(drop=True), y[rows]
        oof = {m: v[rows] for m, v in oof.items()}
        summary = cv_summary(y, oof, fold_metrics, min_tpr)
        feat_name, summary["best_single_feature_pauc"] = best_single_feature(
            df, y, isic.NUMERIC, min_tpr
        )
        oracle = isic.read_oracle(cfg.data.dir)
        if oracle is not None:
            p = isic.oracle_probability(df[isic.ID], oracle)
            summary["oracle_pauc"] = pauc_above_tpr(y, p, min_tpr)
            summary["oracle_ratio"] = summary["oof_pauc"] / summary["oracle_pauc"]
        summary["n_features"] = float(X.shape[1])
        summary["bad_values_total"] = float(sum(bad_values.values()))  # on_bad_values=warn
        summary.update({f"bad_values_{c}": float(n) for c, n in bad_values.items()})
        tracking.log_metrics(summary)
        tracking.get_mlflow().set_tag("best_single_feature", feat_name)
        log_cv_artifacts(df, oof, spec.columns, min_tpr)
        if partial:
            log.info("partial run (cv.folds=%s): no final fit, nothing registered", scored)
            return summary

        log.info("final fit on all %d lesions", len(df))
        final = fit_ensemble(X, y, cfg.model, cfg.seed)
        log_importance(final, spec.columns)
        tracking.get_mlflow().log_dict(spec.to_dict(), "feature_spec.json")
        tracking.publish(
            run,
            cfg.tracking,
            summary,
            **pyfunc.package(final, spec, feature_opts, df, extra),
            # a stacked model needs the image score as input: never compared with plain ones
            model_name=f"{cfg.tracking.model_name}-stacked" if extra else None,
        )
    return summary


main = hydra_entry(run, "tabular_gbm")

if __name__ == "__main__":
    main()
