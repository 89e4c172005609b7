"""The four tabs: what each computes (plain functions, tested without a browser) and its
Gradio layout. Every tab first says which registered model it serves (`champions.describe`);
a project without one shows only that, with the `make` target that creates it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from projects.image_classifier.gradcam import grad_cam, side_by_side
from shared.errors import InputError
from tools.demo import explain
from tools.demo.champions import Champion, describe
from tools.demo.config import DemoConfig
from tools.demo.uploads import image_from_base64, read_image

LETTERS = ["A", "B", "C", "D", "E"]


# --- computations -----------------------------------------------------------------------------


def score_lesion(scorer: Any, image: Image.Image, cfg: DemoConfig) -> tuple[float, Image.Image]:
    """The registered model's malignancy score, and the image beside its fold models'
    Grad-CAM over it with the colour scale."""
    scores = scorer.score_images([image])
    if isinstance(scores, pd.DataFrame):  # a pyfunc that returns more than the score
        scores = scores["score"].to_numpy()
    score = float(np.asarray(scores).ravel()[0])
    cam = grad_cam(scorer.models, scorer.transform(image)[None])[0]
    shown = image
    if max(image.size) < cfg.image.display_size:  # small images: enlarge for the screen only
        scale = cfg.image.display_size / max(image.size)
        shown = image.resize((round(image.width * scale), round(image.height * scale)))
    figure = side_by_side(
        shown, cam, cfg.image.gradcam_alpha, cfg.image.colormap, cfg.image.display_size
    )
    return score, figure


def score_metadata(wrapper: Any, frame: pd.DataFrame, k: int) -> tuple[dict, pd.DataFrame]:
    """Row 0 of `frame` (the other rows give its patient context): the ensemble's probability,
    each model's, and the top-k feature contributions (log-odds) of LightGBM and CatBoost."""
    from projects.tabular_gbm.features import build_features

    X = build_features(frame, wrapper.spec, **wrapper.feature_options)
    each = wrapper.ensemble.predict_each(X)
    probs = {
        "ensemble": float(wrapper.ensemble.predict(X)[0]),
        **{m: float(v[0]) for m, v in each.items()},
    }
    contrib = explain.gbm_contributions(wrapper.ensemble, X)
    return probs, explain.top_contributions(contrib, 0, k)


def answer_question(pipeline: Any, question: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One question -> options ranked by the reader's probability, and the passages it read."""
    all_logits, used = pipeline.score(question, "the form")
    logits = all_logits[0]
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64), 0).numpy()
    order = np.argsort(-logits, kind="stable")
    ranked = pd.DataFrame(
        {
            "rank": np.arange(1, 6),
            "answer": [LETTERS[i] for i in order],
            "option": [str(question.iloc[0][LETTERS[i]]) for i in order],
            "probability": probs[order].round(4),
        }
    )
    return ranked, pipeline.passages(used[0])


def caption_beams(wrapper: Any, image: Image.Image) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Beam search as the registered model decodes (its beam size, max length, length penalty):
    every final beam with its score, and each beam's per-token probabilities."""
    rows, tokens = wrapper.explain(image)
    beams = pd.DataFrame(rows)
    if not beams.empty:
        beams["score"] = beams["score"].round(4)
    table = pd.DataFrame(tokens)
    if not table.empty:
        table["probability"] = table["probability"].round(4)
    return beams, table


def passages_html(question: str, passages: pd.DataFrame, cfg: DemoConfig) -> str:
    """The passages the reader saw, words shared with the question in <mark>."""
    words = explain.content_words(
        question, cfg.retrieval.highlight_min_chars, cfg.retrieval.stopwords
    )
    parts = []
    for i, row in passages.iterrows():
        title = explain.highlight(str(row.get("title", "")), words)
        body = explain.highlight(str(row["text"]), words)
        parts.append(f"<div class='passage'><b>{i + 1}. {title}</b><p>{body}</p></div>")
    return "\n".join(parts) or "<p>No passage retrieved.</p>"


def example_frame(champ: Champion) -> pd.DataFrame | None:
    """The registered model's input example as a frame (logged as JSON records or a frame)."""
    example = champ.model.input_example
    return None if example is None else pd.DataFrame(example).reset_index(drop=True)


def example_labels(champ: Champion, n: int) -> list[str]:
    """What each example image is, when the model's bundle says (the lesion model records its
    examples' ids, labels and out-of-fold scores); else "data set example i"."""
    meta = getattr(champ.model.unwrap_python_model(), "meta", None) or {}
    described = meta.get("examples") or []
    if len(described) != n:
        return [f"data set example {i + 1}" for i in range(n)]
    return [
        f"{e['isic_id']}: {'malignant' if e['target'] else 'benign'} "
        f"(held-out score {e['oof_score']:.3f})"
        for e in described
    ]


def example_images(champ: Champion, cfg: DemoConfig) -> dict[str, Image.Image]:
    """The data set images the registered model carries as its input example, by label."""
    example = example_frame(champ)
    if example is None or "image" not in example:
        return {}
    labels = example_labels(champ, len(example))
    return {
        label: image_from_base64(b, f"example {i + 1}", cfg.uploads)
        for i, (label, b) in enumerate(zip(labels, example["image"]))
    }


# --- layout -----------------------------------------------------------------------------------


def _refused(exc: Exception) -> str:
    return f"**Refused:** {exc}"


def _image_source(upload: str | None, example: str | None, examples: dict, cfg: DemoConfig):
    if upload:
        return read_image(upload, cfg.uploads)
    if example in examples:
        return examples[example]
    raise InputError("upload an image or pick an example")


def _header(champ: Champion) -> bool:
    import gradio as gr

    gr.Markdown(describe(champ), elem_id=f"{champ.project}-model")
    return champ.model is not None


def _image_inputs(project: str, examples: dict, what: str, upload_what: str) -> tuple:
    """The two image sources of a tab: one of the data set's examples, or an upload."""
    import gradio as gr

    example = gr.Radio(
        list(examples),
        value=next(iter(examples), None),
        label=f"Example {what} (from the data set)",
        elem_id=f"{project}-example",
    )
    upload = gr.File(
        label=f"... or upload {upload_what}", type="filepath", elem_id=f"{project}-upload"
    )
    return example, upload


def image_tab(champ: Champion, cfg: DemoConfig) -> None:
    import gradio as gr

    if not _header(champ):
        return
    scorer = champ.model.unwrap_python_model()
    examples = example_images(champ, cfg)
    with gr.Row():
        with gr.Column():
            example, upload = _image_inputs(
                "image_classifier", examples, "lesion image", "a lesion image (JPEG/PNG)"
            )
            run = gr.Button("Score", variant="primary", elem_id="image_classifier-run")
        with gr.Column():
            score = gr.Markdown(elem_id="image_classifier-score")
            cam = gr.Image(
                label="Grad-CAM: where the CNN looked (the image, and its heat map with scale)",
                type="pil",
                height=cfg.image.display_size,
                elem_id="image_classifier-cam",
            )
            status = gr.Markdown(elem_id="image_classifier-status")

    def handle(example_name, upload_path):
        try:
            img = _image_source(upload_path, example_name, examples, cfg)
            value, heat = score_lesion(scorer, img, cfg)
        except InputError as exc:
            return "", None, _refused(exc)
        return f"**Malignancy score:** {value:.4f}", heat, ""

    run.click(handle, [example, upload], [score, cam, status])


def tabular_tab(champ: Champion, cfg: DemoConfig) -> None:
    import gradio as gr

    from shared.datasets import isic2024 as isic

    if not _header(champ):
        return
    wrapper = champ.model.unwrap_python_model()
    if example_frame(champ) is None:
        raise InputError(f"{champ.name} carries no input example to prefill the form from")
    example = example_frame(champ)
    fields = [f for f in [*cfg.tabular.form_fields, *wrapper.spec.extra_numeric] if f in example]
    gr.Markdown(
        f"Prefilled from the data set's first example row (patient `{example[isic.PATIENT][0]}`;"
        " the other example rows are that patient's context for the per-patient features)."
    )
    inputs = []
    with gr.Row():
        with gr.Column():
            for f in fields:
                if f in wrapper.spec.categories:
                    value = example[f][0]
                    inputs.append(
                        gr.Dropdown(
                            sorted(wrapper.spec.categories[f]),
                            value=None if pd.isna(value) else str(value),
                            label=f,
                            allow_custom_value=True,
                            elem_id=f"tabular_gbm-field-{f}",
                        )
                    )
                else:
                    value = pd.to_numeric(example[f], errors="coerce")[0]
                    inputs.append(
                        gr.Number(
                            value=None if pd.isna(value) else float(value),
                            label=f,
                            elem_id=f"tabular_gbm-field-{f}",
                        )
                    )
            run = gr.Button("Predict", variant="primary", elem_id="tabular_gbm-run")
        with gr.Column():
            prob = gr.Markdown(elem_id="tabular_gbm-prob")
            table = gr.Dataframe(
                label="Top feature contributions (log-odds; positive raises the risk)",
                elem_id="tabular_gbm-contrib",
            )
            status = gr.Markdown(elem_id="tabular_gbm-status")

    def handle(*values):
        frame = example.copy()
        for f, v in zip(fields, values, strict=True):
            frame.loc[0, f] = np.nan if v is None or v == "" else v
        try:
            probs, top = score_metadata(wrapper, frame, cfg.tabular.top_contributions)
        except InputError as exc:
            return "", None, _refused(exc)
        text = f"**Malignancy probability:** {probs['ensemble']:.4f}  \n" + " · ".join(
            f"{m}: {p:.4f}" for m, p in probs.items() if m != "ensemble"
        )
        return text, top, ""

    run.click(handle, inputs, [prob, table, status])


def retrieval_tab(champ: Champion, cfg: DemoConfig) -> None:
    import gradio as gr

    if not _header(champ):
        return
    pipeline = champ.model.unwrap_python_model().pipeline
    if example_frame(champ) is None:
        raise InputError(f"{champ.name} carries no input example to prefill the form from")
    example = example_frame(champ).iloc[0]
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(
                str(example["prompt"]), label="Question", lines=2, elem_id="retrieval_qa-prompt"
            )
            options = [
                gr.Textbox(str(example[c]), label=c, elem_id=f"retrieval_qa-option-{c}")
                for c in LETTERS
            ]
            run = gr.Button("Answer", variant="primary", elem_id="retrieval_qa-run")
        with gr.Column():
            ranked = gr.Dataframe(label="Ranked answers", elem_id="retrieval_qa-ranked")
            passages = gr.HTML(elem_id="retrieval_qa-passages")
            status = gr.Markdown(elem_id="retrieval_qa-status")

    def handle(question, *opts):
        frame = pd.DataFrame([{"id": 0, "prompt": question, **dict(zip(LETTERS, opts))}])
        try:
            table, used = answer_question(pipeline, frame)
        except InputError as exc:
            return None, "", _refused(exc)
        return table, passages_html(question, used, cfg), ""

    run.click(handle, [prompt, *options], [ranked, passages, status])


def captioning_tab(champ: Champion, cfg: DemoConfig) -> None:
    import gradio as gr

    if not _header(champ):
        return
    wrapper = champ.model.unwrap_python_model()
    examples = example_images(champ, cfg)
    with gr.Row():
        with gr.Column():
            example, upload = _image_inputs("captioning", examples, "image", "an image")
            preview = gr.Image(
                label="Image",
                type="pil",
                height=cfg.image.display_size // 2,
                elem_id="captioning-image",
            )
            run = gr.Button("Caption", variant="primary", elem_id="captioning-run")
        with gr.Column():
            caption = gr.Markdown(elem_id="captioning-caption")
            beams = gr.Dataframe(
                label="Beams (score: log p / length^penalty)", elem_id="captioning-beams"
            )
            tokens = gr.Dataframe(label="Per-token probabilities", elem_id="captioning-tokens")
            status = gr.Markdown(elem_id="captioning-status")

    def handle(example_name, upload_path):
        try:
            img = _image_source(upload_path, example_name, examples, cfg)
            table, probs = caption_beams(wrapper, img)
        except InputError as exc:
            return None, "", None, None, _refused(exc)
        best = table["caption"].iloc[0] if len(table) else ""
        return img, f"**Caption:** {best}", table, probs, ""

    run.click(handle, [example, upload], [preview, caption, beams, tokens, status])


TABS = {
    "image_classifier": image_tab,
    "tabular_gbm": tabular_tab,
    "retrieval_qa": retrieval_tab,
    "captioning": captioning_tab,
}
