"""Scoring images with a trained classifier (TTA optional), and the inference entry point.

python -m projects.image_classifier.predict --data-dir DATA --split test --output image_scores.csv \
    [--model models:/image_classifier@champion] [--image-size 224]
Writes `isic_id,target` (the Kaggle submission format); tabular_gbm's predict reads it as
`--image-oof` (it takes the `score` column too).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from shared.datasets import isic2024 as isic
from shared.images import HDF5ImageStore


@torch.no_grad()
def predict_scores(
    model: nn.Module, loader: DataLoader, tta: bool = False, device: str = "cpu"
) -> np.ndarray:
    """Sigmoid scores for every batch; with `tta`, the mean over identity and two flips."""
    model.eval().to(device)
    out = []
    for x, _ in loader:
        x = x.to(device)
        views = [x, x.flip(-1), x.flip(-2)] if tta else [x]
        probs = torch.stack([torch.sigmoid(model(v).float()) for v in views]).mean(0)
        out.append(probs.cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def main(argv: list[str] | None = None) -> Path:
    import mlflow.pytorch

    from projects.image_classifier.config import AugmentConfig
    from projects.image_classifier.data import LesionDataset, build_transforms
    from shared.tracking import _mlflow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--output", default=Path("image_scores.csv"), type=Path)
    parser.add_argument("--model", default="models:/image_classifier@champion")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--tta", action="store_true")
    args = parser.parse_args(argv)
    meta = isic.read_metadata(args.data_dir / f"{args.split}-metadata.csv", train=False)
    store = HDF5ImageStore(args.data_dir / f"{args.split}-image.hdf5")
    _mlflow()
    model = mlflow.pytorch.load_model(args.model, map_location="cpu")
    ds = LesionDataset(
        meta[isic.ID].tolist(),
        np.zeros(len(meta)),
        store,
        build_transforms(AugmentConfig(), args.image_size, train=False),
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    scores = predict_scores(model, DataLoader(ds, batch_size=128), args.tta, device)
    out = pd.DataFrame({isic.ID: meta[isic.ID], "target": scores, "score": scores})
    out.to_csv(args.output, index=False)
    print(f"wrote {len(out)} scores to {args.output}")
    return args.output


if __name__ == "__main__":
    main()
