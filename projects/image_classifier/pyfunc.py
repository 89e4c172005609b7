"""The registered model: lesion images in, malignancy scores out, preprocessing inside.

It carries every fold's best weights and averages their scores (the usual test-time ensemble
of a cross-validated model), and resizes and normalises each image with the size, mean and std
of the run that trained it, with the flip TTA it was evaluated with.

Beside the raw mean `score` it returns `image_score`, tabular_gbm's image feature
(`shared.image_feature`): one fold model's score, the model picked by a hash of the image's
pixels, as a percentile of that model's own out-of-fold scores (stored in the bundle). A
training lesion's feature is the same with the one model that did not train on it, so the GBM
is served the distribution it was trained on; it depends on the image alone, never the batch.
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
from shared.datasets import isic2024 as isic
from shared.errors import ModelNotFoundError
from shared.folds import FOLD_COLUMN
from shared.image_feature import pixel_key, serving_feature
from shared.images import EncodedImage, decode_image

IMAGE_SCORE = "image_score"  # the column tabular_gbm stacks on (its data.IMAGE_SCORE)


def save_bundle(
    folder: Path, state_dicts: list[dict], meta: dict, oof_scores: list[np.ndarray]
) -> Path:
    """Fold weights (`fold_<i>.pt`), each model's sorted OOF scores (`fold_<i>_oof.npy`, the
    reference of its percentile) and `meta.json` (model config, preprocessing, TTA)."""
    if len(oof_scores) != len(state_dicts):
        raise ValueError(f"{len(state_dicts)} fold models but {len(oof_scores)} OOF score sets")
    folder.mkdir(parents=True, exist_ok=True)
    for i, (sd, ref) in enumerate(zip(state_dicts, oof_scores)):
        torch.save(sd, folder / f"fold_{i}.pt")
        np.save(folder / f"fold_{i}_oof.npy", np.sort(np.asarray(ref, dtype=np.float64)))
    (folder / "meta.json").write_text(json.dumps({**meta, "n_models": len(state_dicts)}, indent=1))
    return folder


class LesionScorer(mlflow.pyfunc.PythonModel):
    """Rows of `image` (base64 JPEG/PNG bytes) -> `score` (mean malignancy score in [0, 1])
    and `image_score` (the batch-independent feature tabular_gbm stacks on) per row."""

    # The input/output contract (pydantic rows in, lists out); a champion of an older format
    # gives way to this one (shared.tracking.register_if_better).
    MODEL_FORMAT = 2

    def load_context(self, context) -> None:
        folder = Path(context.artifacts["bundle"])
        self.meta = json.loads((folder / "meta.json").read_text())
        self.models = []
        for i in range(self.meta["n_models"]):
            model = LesionClassifier(**{**self.meta["model"], "pretrained": False})
            model.load_state_dict(torch.load(folder / f"fold_{i}.pt", map_location="cpu"))
            self.models.append(model.eval())
        refs = [folder / f"fold_{i}_oof.npy" for i in range(self.meta["n_models"])]
        # bundles logged before the feature was defined carry no reference distributions
        self.references = [np.load(r) for r in refs] if all(r.is_file() for r in refs) else None
        self.transform = eval_transform(
            self.meta["image_size"], self.meta["mean"], self.meta["std"]
        )

    @torch.no_grad()
    def score_images(self, images: list[Image.Image], per_model: bool = False) -> np.ndarray:
        """Mean over the fold models (and flips, when trained with TTA) of sigmoid scores;
        `per_model=True`: (n_models, n_images), each model's mean over its flips, exactly as
        the training pipeline's validation step scores its held-out fold."""
        if not images:
            return np.zeros((len(self.models), 0) if per_model else 0)
        x = torch.stack([self.transform(img) for img in images])
        views = [x, x.flip(-1), x.flip(-2)] if self.meta["tta"] else [x]
        each = torch.stack(
            [torch.stack([torch.sigmoid(m(v).float()) for v in views]).mean(0) for m in self.models]
        )
        return each.numpy() if per_model else each.mean(0).numpy()

    def image_feature(self, per_model_scores: np.ndarray, images: list[Image.Image]) -> np.ndarray:
        """tabular_gbm's `image_score` (`shared.image_feature`): the score of one fold model,
        picked by a hash of the image's pixels, as a percentile of that model's own OOF scores,
        distributed as the training rows' feature; the same for an image alone and in any
        batch."""
        if self.references is None:
            raise ModelNotFoundError(
                "this image model carries no OOF score distributions (logged before the "
                "image feature was defined): retrain it (make image-classifier-smoke, or "
                "make image-classifier DATA=...) to get `image_score`"
            )
        keys = [pixel_key(np.asarray(img.convert("RGB"))) for img in images]
        return serving_feature(per_model_scores, self.references, keys)

    def score_frame(self, images: list[Image.Image]) -> pd.DataFrame:
        """`score` (mean over the fold models) and `image_score` (the feature) per image."""
        each = self.score_images(images, per_model=True)
        return pd.DataFrame(
            {
                "score": each.mean(0).astype(np.float64),
                IMAGE_SCORE: self.image_feature(each, images),
            }
        )

    def predict(
        self,
        context,  # noqa: ARG002
        model_input: list[EncodedImage],
        params=None,  # noqa: ARG002
    ) -> list[dict[str, float]]:
        """`[{"image": base64}, ...]` (or a DataFrame with an `image` column) ->
        `[{"score": ..., "image_score": ...}, ...]` in input order."""
        images = [
            decode_image(base64.b64decode(r.image), f"row {i}") for i, r in enumerate(model_input)
        ]
        return self.score_frame(images).to_dict(orient="records")


def build_bundle(
    folder: Path,
    checkpoints: list[str],
    cfg,
    folds: list[int],
    oof: pd.DataFrame,
    examples: pd.DataFrame | None = None,
) -> Path:
    """The folds' best weights, each fold's OOF scores (the model's reference distribution)
    plus the preprocessing and TTA the run scored with; `checkpoints` are in `folds` order.
    `examples` (`pick_examples`): what the input example's images are, for the demo."""
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
        "examples": [] if examples is None else examples.to_dict(orient="records"),
    }
    refs = [oof.loc[oof[FOLD_COLUMN] == k, "score"].to_numpy() for k in folds]
    return save_bundle(folder, weights, meta, refs)


def pick_examples(oof: pd.DataFrame, n_positive: int = 2) -> pd.DataFrame:
    """The input example's lesions: the `n_positive` malignant ones the model scored highest
    out of fold, then the benign one it scored lowest (`isic_id, target, oof_score`), so the
    demo opens on lesions the model has learnt to see, not only on a confident negative."""
    ranked = oof.sort_values("score", ascending=False, kind="stable")
    chosen = pd.concat(
        [
            ranked[ranked[isic.TARGET] == 1].head(n_positive),
            ranked[ranked[isic.TARGET] == 0].tail(1),
        ]
    )
    return pd.DataFrame(
        {
            isic.ID: chosen[isic.ID].astype(str),
            isic.TARGET: chosen[isic.TARGET].astype(int),
            "oof_score": chosen["score"].astype(float).round(4),
        }
    ).reset_index(drop=True)


def input_example(store, image_ids: list[str]) -> list[dict[str, str]]:
    """Stored images as the model's input example (`image`: base64 JPEG bytes each)."""
    return [{"image": base64.b64encode(store.read_bytes(i)).decode()} for i in image_ids]


def package(bundle: Path, store, example_ids: list[str]) -> dict:
    """What `tracking.publish` logs: the model, its bundle, the example lesions (stored JPEGs,
    base64) as input example, and the packages it needs."""
    return {
        "python_model": LesionScorer(),
        "artifacts": {"bundle": str(bundle)},
        "input_example": input_example(store, example_ids),
        "pip_requirements": ["torch", "torchvision", "timm", "pillow", "pandas"],
    }
