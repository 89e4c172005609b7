"""The registered model: metadata DataFrame in, malignancy probabilities out."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from projects.tabular_gbm.features import FeatureSpec, build_features
from projects.tabular_gbm.model import Ensemble


class TabularGBMModel(mlflow.pyfunc.PythonModel):
    """Feature building and the fitted ensemble, so raw competition metadata can be scored."""

    def __init__(self, ensemble: Ensemble, spec: FeatureSpec, feature_options: dict) -> None:
        self.ensemble = ensemble
        self.spec = spec
        self.feature_options = feature_options

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:  # noqa: ARG002
        X = build_features(model_input, self.spec, **self.feature_options)
        return self.ensemble.predict(X)
