"""Score the lesion images of an ISIC 2024 folder with a registered image model.

python -m projects.image_classifier.predict --data-dir DATA --split test --output image_scores.csv \
    [--model-uri models:/image_classifier-isic2024@champion]
Writes `isic_id,target,score,image_score` (target = score: the Kaggle submission format;
image_score: the batch-independent feature, see pyfunc.py); tabular_gbm's predict reads it as
`--image-scores`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from shared.cli import expected_errors
from shared.datasets import isic2024 as isic
from shared.images import HDF5ImageStore
from shared.tracking import load_registered_model

DEFAULT_MODEL = "models:/image_classifier-isic2024@champion"
MAKE_TARGET = "make image-classifier DATA=... (or make image-classifier-smoke)"


def score_store(
    scorer, store: HDF5ImageStore, ids: list[str], batch_size: int = 128
) -> pd.DataFrame:
    """`score` and `image_score` of `ids` from the HDF5 store, a batch of images at a time
    (batches change nothing: each image's values depend on that image alone)."""
    parts = [
        scorer.score_frame([store.read(i) for i in ids[s : s + batch_size]])
        for s in range(0, len(ids), batch_size)
    ]
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame({"score": np.zeros(0), "image_score": np.zeros(0)})
    )


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--output", default=Path("image_scores.csv"), type=Path)
    parser.add_argument("--model-uri", default=DEFAULT_MODEL, help="MLflow model URI")
    args = parser.parse_args(argv)
    meta = isic.read_metadata(args.data_dir / f"{args.split}-metadata.csv", train=False)
    store = HDF5ImageStore(args.data_dir / f"{args.split}-image.hdf5")
    scorer = load_registered_model(args.model_uri, MAKE_TARGET).unwrap_python_model()
    scores = score_store(scorer, store, meta[isic.ID].tolist())
    out = pd.DataFrame(
        {
            isic.ID: meta[isic.ID].to_numpy(),
            "target": scores["score"].to_numpy(),
            "score": scores["score"].to_numpy(),
            "image_score": scores["image_score"].to_numpy(),
        }
    )
    out.to_csv(args.output, index=False)
    print(f"wrote {len(out)} scores to {args.output}")
    return args.output


if __name__ == "__main__":
    with expected_errors():
        main()
