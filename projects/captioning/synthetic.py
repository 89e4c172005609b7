"""Rendered scenes with grounded captions, written as a Karpathy split (`dataset_synthetic.json`).

Each image holds one or two shapes with a colour, a size and a place; its five reference
captions are worded differently but every word is true of what is drawn. What was drawn goes to
`scenes.json` (file name -> objects, left to right), so a caption can be checked against the
truth (`grounding.py`), not only against the references.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from shared.synthetic import ensure_generated

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
SCENES = "scenes.json"  # what each image shows: the truth a caption is checked against
PLACES = {"left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73)}
ONE = [
    "a {size} {color} {shape} on the {place}",
    "a {color} {shape} on the {place} of the image",
    "there is a {size} {color} {shape} on the {place}",
    "a {size} {color} {shape} at the {place}",
    "one {color} {shape} on the {place} side",
]
TWO = [
    "a {c1} {s1} to the left of a {c2} {s2}",
    "a {c2} {s2} to the right of a {c1} {s1}",
    "a {c1} {s1} and a {c2} {s2}",
    "there is a {c1} {s1} left of a {c2} {s2}",
    "a {c1} {s1} next to a {c2} {s2}",
]


GENERATOR_VERSION = 2  # 2: scenes.json records what each image shows


def _draw(
    draw: ImageDraw.ImageDraw, shape: str, color: str, cx: float, cy: float, r: float
) -> None:
    box = [cx - r, cy - r, cx + r, cy + r]
    fill = COLORS[color]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)


def render_scene(rng: np.random.Generator, size: int) -> tuple[Image.Image, list[str], dict]:
    """An image, its five captions, and the truth: `{"objects": [...]}`, each object's
    colour and shape (and, for a lone shape, its size and place), left to right."""
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(225, 250, 3)))
    draw = ImageDraw.Draw(img)
    jitter = lambda: rng.normal(0, size * 0.02)  # noqa: E731
    if rng.random() < 0.5:
        color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
        place, big = rng.choice(list(PLACES)), rng.random() < 0.5
        fx, fy = PLACES[place]
        r = size * (0.2 if big else 0.11)
        _draw(draw, shape, color, fx * size + jitter(), fy * size + jitter(), r)
        words = {
            "size": "large" if big else "small",
            "color": str(color),
            "shape": str(shape),
            "place": str(place),
        }
        captions = [t.format(**words) for t in ONE]
        truth = {"objects": [words]}
    else:
        c1, c2 = rng.choice(list(COLORS), 2, replace=False)
        s1, s2 = rng.choice(SHAPES), rng.choice(SHAPES)
        for (shape, color), fx in (((s1, c1), 0.27), ((s2, c2), 0.73)):
            _draw(draw, shape, color, fx * size + jitter(), size * 0.5 + jitter(), size * 0.14)
        captions = [t.format(c1=c1, s1=s1, c2=c2, s2=s2) for t in TWO]
        truth = {"objects": [{"color": str(c), "shape": str(s)} for c, s in ((c1, s1), (c2, s2))]}
    return img, captions, truth


def write_dataset(
    out_dir: str | Path,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    image_size: int,
    seed: int,
) -> Path:
    """Images under `out_dir/images/`, `out_dir/dataset_synthetic.json` (Karpathy format) and
    `out_dir/scenes.json` (what each image shows)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, scenes, sentid = [], {}, 0
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    for imgid, split in enumerate(splits):
        name = f"scene_{imgid:05d}.jpg"
        img, captions, scenes[name] = render_scene(rng, image_size)
        img.save(out / "images" / name, quality=92)
        sentences = []
        for c in rng.permutation(captions):
            raw = c[0].upper() + c[1:] + "."
            sentences.append({"tokens": c.split(), "raw": raw, "imgid": imgid, "sentid": sentid})
            sentid += 1
        images.append(
            {
                "filename": name,
                "imgid": imgid,
                "split": split,
                "sentids": [s["sentid"] for s in sentences],
                "sentences": sentences,
            }
        )
    (out / SCENES).write_text(json.dumps(scenes))
    (out / "dataset_synthetic.json").write_text(
        json.dumps({"dataset": "synthetic", "images": images})
    )
    return out


def ensure_dataset(out_dir: str | Path, **settings) -> Path:
    """Generate the smoke data set into `out_dir` unless it holds it already (never into a
    folder of someone else's files: `shared.synthetic.ensure_generated`)."""
    return ensure_generated(out_dir, write_dataset, version=GENERATOR_VERSION, **settings)
