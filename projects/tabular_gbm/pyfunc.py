"""The registered model: metadata rows in, malignancy probabilities out.

Batch independence: a lesion's probability depends only on its own row and the rows of the
same patient (the patient-relative features: z-scores within the patient, lesion counts), never
on other patients or on row order. Send ALL of a patient's lesions in one call: a patient split
over two calls gets different patient features than the model was trained with.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd
from pydantic import create_model

from projects.tabular_gbm.data import IMAGE_SCORE
from projects.tabular_gbm.features import FeatureSpec, build_features
from projects.tabular_gbm.model import Ensemble
from shared.datasets import isic2024 as isic
from shared.errors import InputError
from shared.rows import Row

# One row of `test-metadata.csv` (the columns the model reads; others are ignored): the type
# hint MLflow infers the signature from and validates every request against.
MetadataRow = create_model(
    "MetadataRow",
    __base__=Row,
    __module__=__name__,
    **{isic.ID: (str, ...), isic.PATIENT: (str, ...)},
    **{c: (float | None, None) for c in isic.NUMERIC},
    **{c: (str | None, None) for c in isic.CATEGORICAL},
)
MetadataRow.IGNORED = tuple(isic.OTHER)  # in test-metadata.csv, never read by the model
# The stacked model's row: the metadata plus image_classifier's `image_score`, as it returned it.
StackedMetadataRow = create_model(
    "StackedMetadataRow",
    __base__=MetadataRow,
    __module__=__name__,
    **{IMAGE_SCORE: (float, ...)},
)


class TabularGBMModel(mlflow.pyfunc.PythonModel):
    """Feature building and the fitted ensemble, so raw competition metadata can be scored.

    Input: rows as in `test-metadata.csv`, with ALL lesions of each patient (a DataFrame, or
    JSON records over REST); output: one probability per row, in input order.
    """

    # The input/output contract (pydantic rows in, lists out); a champion of an older format
    # gives way to this one (shared.tracking.register_if_better).
    MODEL_FORMAT = 2

    def __init__(self, ensemble: Ensemble, spec: FeatureSpec, feature_options: dict) -> None:
        self.ensemble = ensemble
        self.spec = spec
        self.feature_options = feature_options

    def score_frame(self, metadata: pd.DataFrame) -> list[float]:
        """Probabilities for a metadata frame (what `predict` does after validation)."""
        X = build_features(metadata, self.spec, **self.feature_options)
        return [float(p) for p in self.ensemble.predict(X)]

    def predict(
        self,
        context,  # noqa: ARG002
        model_input: list[MetadataRow],
        params=None,  # noqa: ARG002
    ) -> list[float]:
        return self.score_frame(_frame(model_input))


class StackedTabularGBMModel(TabularGBMModel):
    """The GBM stacked on the image model: each row also carries `image_score`, exactly as
    image_classifier's model returns it (the mean percentile within its fold models' OOF
    scores, independent of the batch); it is used as given, never re-ranked."""

    def predict(
        self,
        context,  # noqa: ARG002
        model_input: list[StackedMetadataRow],
        params=None,  # noqa: ARG002
    ) -> list[float]:
        return self.score_frame(_frame(model_input))


def _frame(rows: list[Row]) -> pd.DataFrame:
    if not rows:
        raise InputError("no rows to score: send every lesion of each patient")
    return pd.DataFrame([r.model_dump() for r in rows])


def input_example(df: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """The first rows as JSON-ready records (missing values as null, not NaN)."""
    head = df[columns].head(5).astype(object)
    return head.where(head.notna(), None).to_dict(orient="records")


def package(
    ensemble: Any, spec: Any, feature_opts: Any, df: pd.DataFrame, extra: list[str]
) -> dict:
    """What `tracking.publish` logs: the model (stacked when `extra` names the image-score
    columns it needs as input), the first rows as input example, and the packages it needs."""
    model = (StackedTabularGBMModel if extra else TabularGBMModel)(ensemble, spec, feature_opts)
    return {
        "python_model": model,
        "input_example": input_example(df, isic.REQUIRED_TEST + extra),
        "pip_requirements": ["lightgbm", "catboost", "pandas", "numpy", "mlflow"],
    }
