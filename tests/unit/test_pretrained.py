"""Packaged pretrained weights: every tensor used, every shape checked, the real ImageNet model."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import timm
import torch

from shared.pretrained import (
    PACKAGED_TIMM,
    create_timm_model,
    map_by_position,
    model_fingerprint,
    resolve_model_path,
)

LITE0 = "pkg:efficientnet_lite0"


def _packaged() -> OrderedDict:
    return torch.load(resolve_model_path(LITE0), map_location="cpu", weights_only=True)


def test_the_packaged_lite0_weights_fit_timm_tensor_by_tensor():
    source, target = _packaged(), timm.create_model("efficientnet_lite0").state_dict()
    assert len(source) == len(target) == 296
    assert sum(v.numel() for v in source.values()) == 4_694_073  # weights and BatchNorm state
    mapped = map_by_position(source, target)
    assert (
        list(mapped) == list(target) and mapped["conv_stem.weight"] is source["_conv_stem.weight"]
    )


def test_a_missing_or_extra_tensor_or_another_shape_loads_nothing():
    source, target = _packaged(), timm.create_model("efficientnet_lite0").state_dict()
    missing = OrderedDict(list(source.items())[:-1])
    with pytest.raises(ValueError, match="295 tensors, the model 296"):
        map_by_position(missing, target)
    extra = OrderedDict([*source.items(), ("extra.weight", torch.zeros(1))])
    with pytest.raises(ValueError, match="297 tensors"):
        map_by_position(extra, target)
    swapped = OrderedDict(source)
    swapped["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(ValueError, match=r"_conv_stem.weight \(16, 3, 3, 3\) does not fit"):
        map_by_position(swapped, target)


def test_the_packaged_lite0_is_an_imagenet_model_it_sees_a_cheetah():
    """A photo shipped with gradio: top-1 'cheetah' only if every weight landed in its place."""
    import gradio
    from PIL import Image

    photo = Path(gradio.__file__).parent / "media_assets" / "images" / "cheetah1.jpg"
    model = create_timm_model(LITE0, pretrained=True).eval()
    cfg = timm.data.resolve_model_data_config(model)
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["interpolation"] == "bicubic"
    x = timm.data.create_transform(**cfg)(Image.open(photo).convert("RGB"))[None]
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    assert int(probs.argmax()) == 293 and float(probs.max()) > 0.5  # ImageNet 293: cheetah


def test_a_packaged_backbone_without_its_head_keeps_the_loaded_features():
    full = create_timm_model(LITE0, pretrained=True).eval()
    trunk = create_timm_model(LITE0, pretrained=True, num_classes=0, global_pool="").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(trunk(x), full.forward_features(x))
    assert trunk.num_features == 1280 and not any(
        k.startswith("classifier") for k in trunk.state_dict()
    )
    untrained = create_timm_model(LITE0, pretrained=False, num_classes=0)
    assert not torch.equal(untrained.conv_stem.weight, full.conv_stem.weight)


def test_packaged_weights_have_a_content_fingerprint():
    assert set(PACKAGED_TIMM) == {"efficientnet_lite0"}
    assert resolve_model_path(LITE0).endswith(".pth")
    assert model_fingerprint(LITE0).startswith("sha256:")
