"""The registered model: lesion images in, malignancy scores out, preprocessing inside.

It carries every fold's best weights and averages their scores (the usual test-time ensemble
of a cross-validated model), and resizes and normalises each image with the size, mean and std
of the run that trained it, with the flip TTA it was evaluated with.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from PIL import Image

from projects.image_classifier.data import eval_transform
from projects.image_classifier.model import LesionClassifier
from shared.images import decode_image


def save_bundle(folder: Path, state_dicts: list[dict], meta: dict) -> Path:
    """Fold weights (`fold_<i>.pt`) and `meta.json` (model config, preprocessing, TTA)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, sd in enumerate(state_dicts):
        torch.save(sd, folder / f"fold_{i}.pt")
    (folder / "meta.json").write_text(json.dumps({**meta, "n_models": len(state_dicts)}, indent=1))
    return folder


class LesionScorer(mlflow.pyfunc.PythonModel):
    """`image` column of base64 JPEG/PNG bytes -> malignancy score in [0, 1] per row."""

    def load_context(self, context) -> None:
        folder = Path(context.artifacts["bundle"])
        self.meta = json.loads((folder / "meta.json").read_text())
        self.models = []
        for i in range(self.meta["n_models"]):
            model = LesionClassifier(**{**self.meta["model"], "pretrained": False})
            model.load_state_dict(torch.load(folder / f"fold_{i}.pt", map_location="cpu"))
            self.models.append(model.eval())
        self.transform = eval_transform(
            self.meta["image_size"], self.meta["mean"], self.meta["std"]
        )

    @torch.no_grad()
    def score_images(self, images: list[Image.Image]) -> np.ndarray:
        """Mean over the fold models (and flips, when trained with TTA) of sigmoid scores."""
        if not images:
            return np.zeros(0)
        x = torch.stack([self.transform(img) for img in images])
        views = [x, x.flip(-1), x.flip(-2)] if self.meta["tta"] else [x]
        scores = [torch.sigmoid(m(v)) for m in self.models for v in views]
        return torch.stack(scores).mean(0).numpy()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:  # noqa: ARG002
        images = [
            decode_image(base64.b64decode(b), f"row {i}")
            for i, b in enumerate(model_input["image"])
        ]
        return self.score_images(images)


def build_bundle(folder: Path, checkpoints: list[str], cfg, folds: list[int]) -> Path:
    """The folds' best weights plus the preprocessing and TTA the run scored with."""
    from projects.image_classifier.module import LesionModule
    from shared.config import to_dict

    weights = [
        LesionModule.load_from_checkpoint(p, map_location="cpu").model.state_dict()
        for p in checkpoints
    ]
    meta = {
        "model": to_dict(cfg.model),
        "image_size": cfg.loader.image_size,
        "mean": list(cfg.loader.augment.mean),
        "std": list(cfg.loader.augment.std),
        "tta": cfg.cv.tta,
        "folds": [int(k) for k in folds],
    }
    return save_bundle(folder, weights, meta)


def input_example(store, image_id: str) -> pd.DataFrame:
    """One stored image as the model's input example (`image`: base64 JPEG bytes)."""
    return pd.DataFrame({"image": [base64.b64encode(store.read_bytes(image_id)).decode()]})
