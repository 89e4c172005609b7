"""Score a metadata CSV with the registered ensemble; write the Kaggle submission.

python -m projects.tabular_gbm.predict --input DATA/test-metadata.csv --output submission.csv \
    [--model-uri models:/tabular_gbm-isic2024@champion] [--image-scores image_scores.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from projects.tabular_gbm.data import join_image_scores
from shared.cli import expected_errors
from shared.datasets import isic2024 as isic
from shared.tracking import load_registered_model

DEFAULT_MODEL = "models:/tabular_gbm-isic2024@champion"
MAKE_TARGET = "make tabular-gbm DATA=... (or make tabular-gbm-smoke)"


def predict(metadata: pd.DataFrame, model_uri: str = DEFAULT_MODEL) -> pd.DataFrame:
    """Metadata frame -> `isic_id, target` (target = malignancy score in [0, 1])."""
    model = load_registered_model(model_uri, MAKE_TARGET)
    scores = model.predict(metadata)
    return pd.DataFrame({isic.ID: metadata[isic.ID].to_numpy(), "target": scores})


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, type=Path, help="test-metadata.csv")
    parser.add_argument("--output", default=Path("submission.csv"), type=Path)
    parser.add_argument("--model-uri", default=DEFAULT_MODEL, help="MLflow model URI")
    parser.add_argument(
        "--image-scores",
        "--image-oof",  # its former name
        dest="image_scores",
        type=Path,
        default=None,
        help="isic_id,image_score as image_classifier's predict.py writes it, one per lesion, "
        "for a stacked model",
    )
    args = parser.parse_args(argv)
    metadata = isic.read_metadata(args.input, train=False)
    if args.image_scores:
        metadata = join_image_scores(metadata, args.image_scores)
    sub = predict(metadata, args.model_uri)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sub.to_csv(args.output, index=False)
    print(f"wrote {len(sub)} predictions to {args.output}")
    return args.output


if __name__ == "__main__":
    with expected_errors():
        main()
