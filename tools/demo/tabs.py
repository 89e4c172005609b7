"""The four tabs: what each computes (plain functions, tested without a browser) and its
Gradio layout. Every tab first says which registered model it serves (`champions.describe`);
a project without one shows only that, with the `make` target that creates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from projects.image_classifier.gradcam import grad_cam, side_by_side
from shared.errors import InputError
from shared.logging import get_logger
from tools.demo import explain
from tools.demo.champions import Champion, describe
from tools.demo.config import DemoConfig
from tools.demo.uploads import UploadError, clean_message, image_from_base64, read_image

log = get_logger(__name__)

LETTERS = ["A", "B", "C", "D", "E"]


# --- computations -----------------------------------------------------------------------------


def enlarged(image: Image.Image | None, size: int) -> Image.Image | None:
    """`image` enlarged to `size` pixels (long side) when smaller: for the screen only."""
    if image is None or max(image.size) >= size:
        return image
    scale = size / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)))


def score_lesion(scorer: Any, image: Image.Image, cfg: DemoConfig) -> tuple[float, Image.Image]:
    """The registered model's malignancy score, and the image beside its fold models'
    Grad-CAM over it with the colour scale."""
    scores = scorer.score_images([image])
    if isinstance(scores, pd.DataFrame):  # a pyfunc that returns more than the score
        scores = scores["score"].to_numpy()
    score = float(np.asarray(scores).ravel()[0])
    cam = grad_cam(scorer.models, scorer.transform(image)[None])[0]
    figure = side_by_side(
        enlarged(image, cfg.image.display_size),
        cam,
        cfg.image.gradcam_alpha,
        cfg.image.colormap,
        cfg.image.display_size,
    )
    return score, figure


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
    every final beam with its score, and each beam's per-token probabilities (unrounded:
    `explain.token_rows_html` shows them)."""
    rows, tokens = wrapper.explain(image)
    beams = pd.DataFrame(rows)
    if not beams.empty:
        beams["score"] = beams["score"].round(4)
    return beams, pd.DataFrame(tokens, columns=["beam", "position", "token", "probability"])


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


def check_question(question: str, options: list[str]) -> None:
    """Refuse an empty question or option before the reader sees it, saying which."""
    if not str(question or "").strip():
        raise InputError("the question is empty: type a question")
    empty = [c for c, o in zip(LETTERS, options, strict=True) if not str(o or "").strip()]
    if empty:
        raise InputError(f"option {', '.join(empty)} is empty: give all five options")


def message(exc: Exception) -> str:
    """What a tab shows for an exception: a refusal (bad input) or a one-line failure, never a
    traceback or an object repr."""
    if isinstance(exc, InputError):
        return f"**Refused:** {clean_message(str(exc))}"
    first = clean_message(str(exc)).strip().splitlines()
    return f"**Failed:** {type(exc).__name__}: {first[0] if first else ''}"


def image_source(
    upload: str | None, refused: str, example: str | None, examples: dict, cfg: DemoConfig
) -> tuple[Image.Image, str]:
    """The image to score and what it is. A refused upload blocks scoring (it must never fall
    back to the example) until a valid upload or a newly picked example replaces it."""
    if refused:
        raise UploadError(
            f"{refused}. Nothing was scored: upload an image within the limit or pick an example."
        )
    if upload:
        return read_image(upload, cfg.uploads), f"upload '{Path(upload).name}'"
    if example in examples:
        return examples[example], str(example)
    raise InputError("upload an image or pick an example")


def _header(champ: Champion, how: str) -> bool:
    import gradio as gr

    gr.Markdown(describe(champ), elem_id=f"{champ.project}-model")
    if champ.model is not None:
        gr.Markdown(how, elem_id=f"{champ.project}-how")
    return champ.model is not None


def _image_inputs(project: str, examples: dict, what: str, upload_what: str) -> tuple:
    """A tab's image sources: one of the data set's examples, or an upload; and the hidden box
    where the page's upload guard (`uploads.refusal_js`) writes a refused file's name."""
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
    refused = gr.Textbox("", visible="hidden", elem_id=f"{project}-refused")
    return example, upload, refused


def _wire_sources(example, upload, refused, status, outputs: list):
    """A refused upload clears the outputs and says why at once; picking an example clears
    the upload and the refusal (the example is what will be scored). Returns that event."""
    blank = [None] * len(outputs)

    def on_refused(text: str):
        return (*blank, message(UploadError(text)) if text else "")

    refused.change(on_refused, refused, [*outputs, status])
    return example.input(lambda: (None, ""), None, [upload, refused])


IMAGE_HOW = (
    "Scores a lesion image for malignancy with the registered CNN: the score runs from 0 "
    "(benign-looking) to 1 (malignant-looking), and the heat map beside the image shows in red "
    "the regions that raised it."
)


def image_tab(champ: Champion, cfg: DemoConfig) -> None:
    import gradio as gr

    if not _header(champ, IMAGE_HOW):
        return
    scorer = champ.model.unwrap_python_model()
    examples = example_images(champ, cfg)
    with gr.Row():
        with gr.Column():
            example, upload, refused = _image_inputs(
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

    def handle(example_name, upload_path, refused_text):
        try:
            img, what = image_source(upload_path, refused_text, example_name, examples, cfg)
            value, heat = score_lesion(scorer, img, cfg)
        except Exception as exc:
            log.warning("image_classifier: %s", exc, exc_info=not isinstance(exc, InputError))
            return "", None, message(exc)
        return f"**Malignancy score:** {value:.4f} ({what})", heat, ""

    run.click(handle, [example, upload, refused], [score, cam, status])
    _wire_sources(example, upload, refused, status, [score, cam])


def tabular_tab(champ: Champion, cfg: DemoConfig) -> None:
    from tools.demo.tabular import HOW
    from tools.demo.tabular import tabular_tab as layout

    if not _header(champ, HOW):
        return
    example = example_frame(champ)
    if example is None:
        raise InputError(f"{champ.name} carries no input example to prefill the form from")
    layout(champ, cfg, example)


RETRIEVAL_HOW = (
    "Answers a multiple-choice science question: the reader ranks the five options by "
    "probability after reading the passages retrieved for the question, which are listed "
    "under the ranking with the words they share with the question highlighted."
)


def retrieval_tab(champ: Champion, cfg: DemoConfig) -> None:
    import gradio as gr

    if not _header(champ, RETRIEVAL_HOW):
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
            status = gr.Markdown(elem_id="retrieval_qa-status")
            ranked = gr.Dataframe(label="Ranked answers", elem_id="retrieval_qa-ranked")
            gr.Markdown(
                "#### Passages the reader saw\nRetrieved for the question and its options, "
                "best first; words shared with the question are highlighted.",
                elem_id="retrieval_qa-passages-heading",
            )
            passages = gr.HTML(elem_id="retrieval_qa-passages")

    def handle(question, *opts):
        frame = pd.DataFrame([{"id": 0, "prompt": question, **dict(zip(LETTERS, opts))}])
        try:
            check_question(question, list(opts))
            table, used = answer_question(pipeline, frame)
        except Exception as exc:
            log.warning("retrieval_qa: %s", exc, exc_info=not isinstance(exc, InputError))
            return None, "", message(exc)
        return table, passages_html(question, used, cfg), ""

    run.click(handle, [prompt, *options], [ranked, passages, status])


CAPTIONING_HOW = (
    "Describes an image in words by beam search: the caption is the best beam; under it each "
    "beam is one row of tokens coloured by the decoder's probability for that token (green "
    "sure, red unsure; the number under each token is that probability)."
)


def captioning_tab(champ: Champion, cfg: DemoConfig) -> None:
    import gradio as gr

    if not _header(champ, CAPTIONING_HOW):
        return
    wrapper = champ.model.unwrap_python_model()
    examples = example_images(champ, cfg)
    with gr.Row():
        with gr.Column():
            example, upload, refused = _image_inputs("captioning", examples, "image", "an image")
            preview = gr.Image(
                enlarged(next(iter(examples.values()), None), cfg.image.display_size),
                label="The image to caption",
                type="pil",
                height=cfg.image.display_size,
                elem_id="captioning-image",
            )
            run = gr.Button("Caption", variant="primary", elem_id="captioning-run")
        with gr.Column():
            caption = gr.Markdown(elem_id="captioning-caption")
            beams = gr.Dataframe(
                label="Beams (score: log p / length^penalty)", elem_id="captioning-beams"
            )
            gr.Markdown("#### Each beam's tokens, coloured by probability")
            tokens = gr.HTML(elem_id="captioning-tokens")
            status = gr.Markdown(elem_id="captioning-status")

    def show(example_name, upload_path, refused_text):
        """The image that Caption will use, as soon as it is picked or uploaded."""
        try:
            img = image_source(upload_path, refused_text, example_name, examples, cfg)[0]
            return enlarged(img, cfg.image.display_size), ""
        except Exception as exc:
            return None, message(exc)

    def handle(example_name, upload_path, refused_text):
        try:
            img, what = image_source(upload_path, refused_text, example_name, examples, cfg)
            table, probs = caption_beams(wrapper, img)
        except Exception as exc:
            log.warning("captioning: %s", exc, exc_info=not isinstance(exc, InputError))
            return None, "", None, "", message(exc)
        best = table["caption"].iloc[0] if len(table) else ""
        text = f"**Caption:** {best} ({what})"
        token_rows = explain.token_rows_html(probs)
        return enlarged(img, cfg.image.display_size), text, table, token_rows, ""

    sources = [example, upload, refused]
    run.click(handle, sources, [preview, caption, beams, tokens, status])
    upload.upload(show, sources, [preview, status])
    picked = _wire_sources(example, upload, refused, status, [caption, beams, tokens])
    picked.then(show, sources, [preview, status])


TABS = {
    "image_classifier": image_tab,
    "tabular_gbm": tabular_tab,
    "retrieval_qa": retrieval_tab,
    "captioning": captioning_tab,
}
