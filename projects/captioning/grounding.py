"""Is a caption true of the scene it describes? The smoke generator records what it drew
(`scenes.json`), so a caption is checked against the truth, not only against reference wording:
BLEU and CIDEr-D reward the captions' language, grounding rewards seeing.

A caption is grounded when it names as many shapes as were drawn, each with the right colour
and shape; a lone shape also with its place (and its size, where the caption states one); two
shapes with the stated relation true ("a red circle to the left of a blue square" and "a blue
square to the right of a red circle" say the same; "and", "next to" state no relation). A
colour, shape, size or place word that fits none of this makes the caption ungrounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from projects.captioning.synthetic import COLORS, PLACES, SCENES, SHAPES, SIZES

_MENTION = re.compile(rf"\b(?:({'|'.join(SIZES)}) )?({'|'.join(COLORS)}) ({'|'.join(SHAPES)})\b")
_VOCAB = {*COLORS, *SHAPES, *SIZES}


@dataclass(frozen=True)
class Claim:
    """What a caption says: each shape named (size, colour, shape), in the caption's order;
    the place of a lone shape; for two shapes, the first one's side of the second, if stated."""

    objects: tuple[tuple[str | None, str, str], ...]
    place: str | None = None
    relation: str | None = None  # "left" | "right": the first shape named is on that side


def parse_caption(caption: str) -> Claim | None:
    """The claim of a caption, or None when its colour, shape, size or place words do not
    form one (a colour without a shape, two places for one shape, a place between two...)."""
    text = " ".join(re.findall(r"[a-z]+", caption.lower()))
    mentions = list(_MENTION.finditer(text))
    named = sum(sum(g is not None for g in m.groups()) for m in mentions)
    if not mentions or len(mentions) > 2 or named != sum(w in _VOCAB for w in text.split()):
        return None
    objects = tuple((m[1], m[2], m[3]) for m in mentions)
    cuts = [0, *(i for m in mentions for i in m.span()), len(text)]
    gaps = [text[a:b].split() for a, b in zip(cuts[::2], cuts[1::2])]  # around the mentions
    places = [[w for w in gap if w in PLACES] for gap in gaps]
    if len(objects) == 1:
        stated = places[0] + places[1]
        return Claim(objects, place=stated[0]) if len(stated) == 1 else None
    if places[0] or places[2] or len(places[1]) > 1 or set(places[1]) - {"left", "right"}:
        return None
    return Claim(objects, relation=places[1][0] if places[1] else None)


def is_grounded(caption: str, truth: dict) -> bool:
    """True when the caption is true of the scene `truth` (`scenes.json`: objects left to
    right, each with colour and shape; a lone one also with size and place)."""
    claim, drawn = parse_caption(caption), truth["objects"]
    if claim is None or len(claim.objects) != len(drawn):
        return False
    if len(drawn) == 1:
        (size, color, shape), t = claim.objects[0], drawn[0]
        return (color, shape, claim.place) == (t["color"], t["shape"], t["place"]) and size in (
            None,
            t["size"],
        )
    if any(size is not None for size, _, _ in claim.objects):  # two shapes are one size
        return False
    said = [(c, s) for _, c, s in claim.objects]
    left, right = ((t["color"], t["shape"]) for t in drawn)
    if claim.relation == "left":
        return said == [left, right]
    if claim.relation == "right":
        return said == [right, left]
    return sorted(said) == sorted([left, right])


def grounding(captions: Sequence[str], truths: Sequence[dict]) -> float:
    """The share of captions that are true of their scene."""
    if len(captions) != len(truths):
        raise ValueError(f"{len(captions)} captions for {len(truths)} scenes")
    return sum(map(is_grounded, captions, truths)) / max(len(captions), 1)


def read_scenes(data_dir: str | Path) -> dict[str, dict] | None:
    """File name -> what the image shows, for a generated data set; None for real data."""
    path = Path(data_dir) / SCENES
    return json.loads(path.read_text()) if path.is_file() else None
