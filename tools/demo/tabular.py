"""The lesion metadata tab: a labelled form prefilled from the model's input example, the
ensemble's probability, and each GBM's waterfall from its base value to its log-odds."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from shared.errors import InputError
from tools.demo import explain
from tools.demo.champions import Champion
from tools.demo.config import DemoConfig

HOW = (
    "Predicts malignancy from a lesion's metadata with the LightGBM + CatBoost ensemble; "
    "the waterfall shows, per model, how each feature moves the log-odds from the base value "
    "(the model's average lesion) to this lesion's log-odds (red raises the risk, blue lowers "
    "it), and the sigmoid of the log-odds is the probability."
)


def score_metadata(wrapper: Any, frame: pd.DataFrame, k: int) -> tuple[dict, pd.DataFrame]:
    """Row 0 of `frame` (the other rows give its patient context): the ensemble's probability,
    each model's, and each model's waterfall (`explain.waterfall`: base value, top-k features,
    the rest, log-odds), unrounded."""
    from projects.tabular_gbm.features import build_features

    X = build_features(frame, wrapper.spec, **wrapper.feature_options)
    each = wrapper.ensemble.predict_each(X)
    probs = {
        "ensemble": float(wrapper.ensemble.predict(X)[0]),
        **{m: float(v[0]) for m, v in each.items()},
    }
    contrib = explain.gbm_contributions(wrapper.ensemble, X)
    return probs, explain.waterfall(contrib, 0, k)


def describe_probabilities(probs: dict, table: pd.DataFrame, n_bags: int) -> str:
    """The probabilities, each model's with its log-odds (the waterfall's last row)."""
    total = table.iloc[-1]
    parts = [
        f"{m}: {p:.4f} (log-odds {total[m]:+.3f}, sigmoid {1 / (1 + np.exp(-total[m])):.4f})"
        for m, p in probs.items()
        if m != "ensemble"
    ]
    text = f"**Malignancy probability:** {probs['ensemble']:.4f} (the models' weighted mean)  \n"
    text += " · ".join(parts)
    if n_bags > 1:
        text += (
            f"  \nEach model is {n_bags} bags: its log-odds and contributions are the bags' "
            "mean, its probability the mean of the bags' probabilities (close to the sigmoid)."
        )
    return text


def figure_image(fig) -> Image.Image:
    """A matplotlib figure as a PIL image (the figure is closed: no leak per request)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _field(f: str, label: str, example: pd.DataFrame, categories: dict):
    """A form input for column `f`: a dropdown of the model's categories, or a number rounded
    for show (whole numbers stay whole, others get 2 decimals)."""
    import gradio as gr

    elem_id = f"tabular_gbm-field-{f}"
    if f in categories:
        value = example[f][0]
        return gr.Dropdown(
            sorted(categories[f]),
            value=None if pd.isna(value) else str(value),
            label=label,
            allow_custom_value=True,
            elem_id=elem_id,
        )
    value = pd.to_numeric(example[f], errors="coerce")[0]
    whole = pd.isna(value) or float(value).is_integer()
    return gr.Number(
        value=None if pd.isna(value) else round(float(value), 0 if whole else 2),
        label=label,
        precision=None if whole else 2,
        elem_id=elem_id,
    )


def tabular_tab(champ: Champion, cfg: DemoConfig, example: pd.DataFrame) -> None:
    """The form (Predict above it, fields two a row), the probabilities and the waterfalls."""
    import gradio as gr

    from shared.datasets import isic2024 as isic

    wrapper = champ.model.unwrap_python_model()
    labels = dict(cfg.tabular.form_fields)
    fields = [f for f in [*labels, *wrapper.spec.extra_numeric] if f in example]
    n_bags = len(wrapper.ensemble.lightgbm)
    gr.Markdown(
        "Prefilled from the data set's first example row (patient "
        f"`{example[isic.PATIENT][0]}`; the other example rows are that patient's context for "
        "the per-patient features)."
    )
    inputs = []
    with gr.Row():
        with gr.Column():
            run = gr.Button("Predict", variant="primary", elem_id="tabular_gbm-run")
            for i in range(0, len(fields), 2):
                with gr.Row():
                    for f in fields[i : i + 2]:
                        inputs.append(_field(f, labels.get(f, f), example, wrapper.spec.categories))
        with gr.Column():
            prob = gr.Markdown(elem_id="tabular_gbm-prob")
            plot = gr.Image(
                label="Waterfall: base value + feature contributions = log-odds, per model",
                show_label=False,
                type="pil",
                elem_id="tabular_gbm-waterfall-plot",
            )
            table = gr.HTML(elem_id="tabular_gbm-waterfall")
            status = gr.Markdown(elem_id="tabular_gbm-status")

    def handle(*values):
        frame = example.copy()
        for f, v in zip(fields, values, strict=True):
            frame.loc[0, f] = np.nan if v is None or v == "" else v
        try:
            probs, wf = score_metadata(wrapper, frame, cfg.tabular.top_contributions)
        except InputError as exc:
            return "", None, "", f"**Refused:** {exc}"
        figure = figure_image(explain.waterfall_figure(wf, labels))
        text = describe_probabilities(probs, wf, n_bags)
        return text, figure, explain.waterfall_html(wf, labels), ""

    run.click(handle, inputs, [prob, plot, table, status])
