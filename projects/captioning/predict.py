"""Caption image files with a registered captioning model.

python -m projects.captioning.predict IMAGE [IMAGE ...] [--model-uri URI]
Prints `path<TAB>caption` per image (beam search with the settings of the run that trained it).
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import pandas as pd

from shared.cli import expected_errors
from shared.errors import DataNotFoundError
from shared.tracking import load_registered_model

DEFAULT_MODEL = "models:/captioning-flickr8k@champion"
MAKE_TARGET = "make captioning DATA=... (or make captioning-smoke)"


def caption_files(paths: list[Path], model_uri: str = DEFAULT_MODEL) -> pd.DataFrame:
    """`path, caption` for each image file."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataNotFoundError(f"image file(s) not found: {', '.join(missing)}")
    model = load_registered_model(model_uri, MAKE_TARGET)
    images = [base64.b64encode(p.read_bytes()).decode() for p in paths]
    captions = model.predict(pd.DataFrame({"image": images}))
    return pd.DataFrame({"path": [str(p) for p in paths], "caption": list(captions)})


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path, help="JPEG or PNG files")
    parser.add_argument("--model-uri", default=DEFAULT_MODEL, help="MLflow model URI")
    args = parser.parse_args(argv)
    out = caption_files(args.images, args.model_uri)
    for path, caption in zip(out["path"], out["caption"]):
        print(f"{path}\t{caption}")
    return out


if __name__ == "__main__":
    with expected_errors():
        main()
