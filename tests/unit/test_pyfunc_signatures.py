"""Every registered model's `predict` carries a type hint MLflow infers the signature from
(issue 12): the input schema lists the public-format fields, so a request missing a required
one is refused by MLflow before the model runs."""

import pytest
from mlflow.types.type_hints import _infer_schema_from_list_type_hint

from projects.captioning.pyfunc import CaptionModel
from projects.image_classifier.pyfunc import LesionScorer
from projects.retrieval_qa.pyfunc import RetrievalQAModel
from projects.tabular_gbm.pyfunc import StackedTabularGBMModel, TabularGBMModel
from shared.datasets import isic2024 as isic

MODELS = {
    "image_classifier": (LesionScorer(), {"image"}),
    "captioning": (CaptionModel(), {"image"}),
    "retrieval_qa": (RetrievalQAModel(), {"id", "prompt", "A", "B", "C", "D", "E"}),
    "tabular_gbm": (TabularGBMModel(None, None, {}), set(isic.REQUIRED_TEST)),
    "tabular_gbm-stacked": (
        StackedTabularGBMModel(None, None, {}),
        {*isic.REQUIRED_TEST, "image_score"},
    ),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predict_has_a_type_hint_mlflow_infers_the_input_schema_from(name):
    model, fields = MODELS[name]
    hint = model.predict_type_hints.input
    assert hint is not None, f"{name}: predict has no input type hint"
    schema = _infer_schema_from_list_type_hint(hint)  # raises on an unsupported hint
    (row,) = schema.inputs
    assert {p.name for p in row.type.properties} == fields


def test_the_stacked_gbm_requires_image_score_and_the_ids():
    model, _ = MODELS["tabular_gbm-stacked"]
    (row,) = _infer_schema_from_list_type_hint(model.predict_type_hints.input).inputs
    required = {p.name for p in row.type.properties if p.required}
    assert required == {isic.ID, isic.PATIENT, "image_score"}
