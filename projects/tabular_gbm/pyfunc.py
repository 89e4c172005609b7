"""The registered model: metadata DataFrame in, malignancy probabilities out.

Batch independence: a lesion's probability depends only on its own row and the rows of the
same patient (the patient-relative features: z-scores within the patient, lesion counts), never
on other patients or on row order. Send ALL of a patient's lesions in one call: a patient split
over two calls gets different patient features than the model was trained with.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from projects.tabular_gbm.features import FeatureSpec, build_features
from projects.tabular_gbm.model import Ensemble


class TabularGBMModel(mlflow.pyfunc.PythonModel):
    """Feature building and the fitted ensemble, so raw competition metadata can be scored.

    Input: rows as in `test-metadata.csv` (all lesions of each patient present); a stacked
    model also takes `image_score`, exactly as image_classifier's model returns it (the mean
    percentile within its fold models' OOF scores, independent of the batch), never re-ranked.
    """

    def __init__(self, ensemble: Ensemble, spec: FeatureSpec, feature_options: dict) -> None:
        self.ensemble = ensemble
        self.spec = spec
        self.feature_options = feature_options

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:  # noqa: ARG002
        X = build_features(model_input, self.spec, **self.feature_options)
        return self.ensemble.predict(X)
