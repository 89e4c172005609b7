"""The registered model: images (base64 JPEG/PNG strings) in, captions out."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path

import mlflow.pyfunc
import torch
from PIL import Image

from projects.captioning.data import image_transform
from projects.captioning.decoder import DecoderConfig
from projects.captioning.generate import beam_search, token_probabilities
from projects.captioning.model import Captioner
from projects.captioning.tokenizer import CaptionTokenizer
from shared.config import to_dict
from shared.images import EncodedImage, decode_image


def save_bundle(folder: Path, model: Captioner, tokenizer: CaptionTokenizer, meta: dict) -> None:
    """Weights, tokenizer and everything needed to rebuild and run the model."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model.pt")
    tokenizer.save(folder)
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))


def build_bundle(
    folder: Path,
    model: Captioner,
    tokenizer: CaptionTokenizer,
    cfg,
    decoder_cfg: DecoderConfig,
    preprocessing: dict,
) -> Path:
    """Everything the served model needs: weights, tokenizer, decoding, and the preprocessing
    training used (`shared.pretrained.resolve_preprocessing`: the encoder's size,
    interpolation, mean, std)."""
    meta = {
        "encoder": cfg.encoder.name,
        "decoder": {**asdict(decoder_cfg), "init": None},  # weights come from model.pt
        **{k: preprocessing[k] for k in ("image_size", "interpolation", "mean", "std")},
        "decoding": to_dict(cfg.decoding),
    }
    save_bundle(folder, model, tokenizer, meta)
    return folder


def load_bundle(folder: Path) -> tuple[Captioner, CaptionTokenizer, dict]:
    meta = json.loads((folder / "meta.json").read_text())
    model = Captioner(meta["encoder"], False, DecoderConfig(**meta["decoder"]))
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu"))
    return model.eval(), CaptionTokenizer.load(folder), meta


class CaptionModel(mlflow.pyfunc.PythonModel):
    # The input/output contract (pydantic rows in, lists out); a champion of an older format
    # gives way to this one (shared.tracking.register_if_better).
    MODEL_FORMAT = 2

    def load_context(self, context) -> None:
        self.model, self.tokenizer, self.meta = load_bundle(Path(context.artifacts["bundle"]))
        m = self.meta
        # bundles from before the encoder's interpolation was recorded were trained bilinear
        interpolation = m.get("interpolation", "bilinear")
        self.transform = image_transform(m["image_size"], False, m["mean"], m["std"], interpolation)

    def predict(
        self,
        context,  # noqa: ARG002
        model_input: list[EncodedImage],
        params=None,  # noqa: ARG002
    ) -> list[str]:
        """`[{"image": base64}, ...]` (or a DataFrame with an `image` column) -> captions."""
        images = torch.stack(
            [
                self.transform(decode_image(base64.b64decode(r.image), f"row {i}"))
                for i, r in enumerate(model_input)
            ]
        )
        with torch.no_grad():
            memory = self.model.encoder(images)
        d = self.meta["decoding"]
        ids = beam_search(
            self.model.decoder,
            memory,
            self.tokenizer.bos_id,
            self.tokenizer.eos_id,
            d["max_len"],
            d["beam_size"],
            d["length_penalty"],
        )
        return [self.tokenizer.decode(i) for i in ids]

    def explain(self, image: Image.Image) -> tuple[list[dict], list[dict]]:
        """Every final beam of one image as `predict` decodes it (same beam size, length and
        penalty): rows `beam, score, caption`, and per beam each token's probability given
        the image and the tokens before it (rows `beam, position, token, probability`; `</s>`
        closes the beams that ended, not those cut off at `max_len`)."""
        tok, d = self.tokenizer, self.meta["decoding"]
        with torch.no_grad():
            memory = self.model.encoder(self.transform(image)[None])
        beams = beam_search(
            self.model.decoder,
            memory,
            tok.bos_id,
            tok.eos_id,
            d["max_len"],
            d["beam_size"],
            d["length_penalty"],
            n_best=d["beam_size"],
        )[0]
        rows, tokens = [], []
        for rank, (score, ids) in enumerate(beams, 1):
            rows.append({"beam": rank, "score": score, "caption": tok.decode(ids)})
            probs = token_probabilities(self.model.decoder, memory, tok.bos_id, tok.eos_id, ids)
            # a beam shorter than max_len ended with EOS; one at max_len was cut off open
            shown = [*ids, tok.eos_id] if len(ids) < d["max_len"] else ids
            for pos, (i, p) in enumerate(zip(shown, probs)):
                tokens.append(
                    {"beam": rank, "position": pos, "token": tok.token_text(i), "probability": p}
                )
        return rows, tokens


def package(bundle: Path, example_image: bytes) -> dict:
    """What `tracking.publish` logs: the model, its bundle, an input example (one stored image,
    base64) and the packages it needs."""
    return {
        "python_model": CaptionModel(),
        "artifacts": {"bundle": str(bundle)},
        "input_example": [{"image": base64.b64encode(example_image).decode()}],
        "pip_requirements": ["torch", "timm", "tokenizers", "pandas"],
    }
