"""Per-run artifacts of tabular_gbm: OOF scores, ROC curves, feature list and importance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from projects.tabular_gbm.model import SCORED, Ensemble, feature_importance
from shared.datasets import isic2024 as isic
from shared.folds import FOLD_COLUMN
from shared.plots import barh_figure, roc_figure
from shared.tracking import get_mlflow


def log_cv_artifacts(
    df: pd.DataFrame, oof: dict[str, np.ndarray], columns: list[str], min_tpr: float
) -> None:
    """`oof.csv` (one score column per model), `features.txt` and `roc_curve.png`."""
    mlflow = get_mlflow()
    y = df[isic.TARGET].to_numpy()
    out = pd.DataFrame(
        {
            isic.ID: df[isic.ID],
            isic.PATIENT: df[isic.PATIENT],
            FOLD_COLUMN: df[FOLD_COLUMN].to_numpy(),
            isic.TARGET: y,
            **oof,
        }
    )
    mlflow.log_text(out.to_csv(index=False), "oof.csv")
    mlflow.log_text("\n".join(columns), "features.txt")
    mlflow.log_figure(roc_figure({m: (y, oof[m]) for m in SCORED}, min_tpr), "roc_curve.png")


def log_importance(ensemble: Ensemble, columns: list[str], top: int = 25) -> None:
    """Both models' importances as a table and the top features as a bar chart."""
    mlflow = get_mlflow()
    imp = feature_importance(ensemble, columns)
    mlflow.log_text(imp.to_csv(index=False), "feature_importance.csv")
    head = imp.head(top)
    title = "Feature importance (mean of LightGBM gain, CatBoost)"
    mlflow.log_figure(
        barh_figure(head.feature.tolist(), head["mean"].tolist(), title), "feature_importance.png"
    )
