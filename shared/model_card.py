"""Model cards (Mitchell et al., 2019), written when a model is published and kept with it.

`shared.tracking.publish` builds the card from what the run logged (its data and fingerprint,
its metrics) and the project's `tracking.card` (intended use, limitations), logs it as
`model_card.json` + `model_card.md` beside the model and sets the markdown as the registered
version's description, so the MLflow UI and `make report` show the same card. The parameter
count comes from the weight files the pyfunc packs, read without unpickling code.
"""

from __future__ import annotations

import fnmatch
import json
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SMOKE_LIMITATION = "trained on generated data: a pipeline check, not a diagnostic model"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def split_of(metric: str, splits: Iterable[Mapping[str, str]]) -> str:
    """The split a metric was measured on: the longest matching fnmatch pattern wins."""
    found = [
        (s["pattern"], s["split"]) for s in splits if fnmatch.fnmatchcase(metric, s["pattern"])
    ]
    return max(found, key=lambda f: len(f[0]))[1] if found else "see the run"


def safetensors_params(path: Path) -> int:
    """Parameters in a safetensors file, read from its JSON header (no tensor is loaded)."""
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return sum(_prod(t["shape"]) for k, t in header.items() if k != "__metadata__")


def torch_params(path: Path) -> int | None:
    """Parameters in a torch state dict (weights_only: nothing is unpickled as code)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - a file that is no plain state dict: not counted
        return None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        return None
    tensors = [v for v in state.values() if hasattr(v, "numel")]
    return sum(int(t.numel()) for t in tensors) if tensors else None


def weight_params(path: Path) -> int | None:
    """Parameters in one weight file, or None when it is not one we can read."""
    if path.suffix == ".safetensors":
        return safetensors_params(path)
    return torch_params(path) if path.suffix in (".pt", ".pth") else None


def artifact_footprint(paths: Iterable[str | Path]) -> dict[str, int]:
    """Bytes of the model's artifacts and the parameters in their weight files (files or
    folders; `n_params` is absent when no weight file is among them, as for the GBMs)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p])
    out = {"model_bytes": sum(f.stat().st_size for f in files if f.is_file())}
    counts = [weight_params(f) for f in files if f.suffix in WEIGHT_SUFFIXES]
    if any(c is not None for c in counts):
        out["n_params"] = sum(c for c in counts if c is not None)
    return out


def build(
    card_cfg: Any, params: Mapping[str, str], tags: Mapping[str, str], metrics: Mapping[str, float]
) -> dict[str, Any]:
    """The card as data: intended use, training data (name, generated or not, fingerprint,
    paths), every metric with the split it was measured on, and the limitations (a model
    trained on generated data says first that it is a pipeline check)."""
    generated = str(params.get("data.generate", "")).lower() == "true"
    limitations = list(card_cfg.limitations)
    if generated:
        limitations.insert(0, SMOKE_LIMITATION)
    try:
        paths = json.loads(tags.get("data_paths") or "[]")
    except ValueError:
        paths = []
    splits = list(card_cfg.splits)
    return {
        "intended_use": str(card_cfg.intended_use),
        "data_name": str(params.get("data.name", "unknown")),
        "generated_data": generated,
        "fingerprint": tags.get("data_fingerprint", "unknown"),
        "data_paths": [str(p) for p in paths] if isinstance(paths, list) else [],
        "metrics": [[m, float(v), split_of(m, splits)] for m, v in sorted(metrics.items())],
        "limitations": limitations,
    }


def to_markdown(card: Mapping[str, Any], title: str) -> str:
    """The card as the registered version's description (MLflow renders markdown)."""
    kind = "generated" if card["generated_data"] else "real"
    lines = [
        f"# Model card: {title}",
        "",
        f"**Intended use.** {card['intended_use']}",
        "",
        f"**Training data.** `{card['data_name']}` ({kind} data), fingerprint "
        f"`{card['fingerprint']}`.",
        "",
        "| metric | value | measured on |",
        "|---|---|---|",
        *(f"| {m} | {v:.6g} | {split} |" for m, v, split in card["metrics"]),
        "",
        "**Limitations.**",
        *(f"- {item}" for item in card["limitations"]),
    ]
    return "\n".join(lines) + "\n"


def _prod(shape: list[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out
