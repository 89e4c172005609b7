"""A frozen trunk computed once: the rest of the network on its features is the whole network
on the images, the frozen layers never change, and the config refuses what cannot reach them."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from projects.image_classifier.data import TrunkFeatures, check_trunk_cache
from projects.image_classifier.model import LesionClassifier, trunk_features
from shared.config import ConfigError


def _model(freeze_blocks: int, shifted_depthwise_grad: bool = False) -> LesionClassifier:
    """The packaged ImageNet weights: BatchNorm statistics that a wrong folding would show."""
    torch.manual_seed(0)
    return LesionClassifier(
        backbone="pkg:efficientnet_lite0",
        pretrained=True,
        gem_p=3.0,
        gem_eps=1e-6,
        dropout=0.0,
        freeze_blocks=freeze_blocks,
        shifted_depthwise_grad=shifted_depthwise_grad,
    ).eval()


def test_the_tail_on_cached_trunk_features_is_the_whole_network():
    model, x = _model(5), torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        whole = model.head(model.pool(model.backbone.forward_features(x))).squeeze(1)
        images = TrunkFeatures([0, 1, 2], x)  # any source with read(id): here the images
        cached = trunk_features(model, images, [0, 1, 2], lambda img: img, batch_size=2)
        tail = model.forward_tail(torch.stack([cached.read(i) for i in range(3)]))
    torch.testing.assert_close(model(x), whole)
    torch.testing.assert_close(tail, whole, rtol=1e-5, atol=1e-5)
    assert cached.read(1).shape == (112, 4, 4)  # blocks[4]: 112 channels at stride 16


def test_frozen_layers_get_no_gradient_and_keep_their_batchnorm_statistics():
    model = _model(3).train()
    assert not model.backbone.bn1.training and not model.backbone.blocks[2].training
    assert model.backbone.blocks[3].training
    before = model.backbone.blocks[0][0].bn1.running_mean.clone()
    model(torch.randn(4, 3, 64, 64)).sum().backward()
    assert model.backbone.conv_stem.weight.grad is None
    assert model.backbone.blocks[2][0].conv_pw.weight.grad is None
    assert model.backbone.blocks[3][0].conv_pw.weight.grad is not None
    assert torch.equal(model.backbone.blocks[0][0].bn1.running_mean, before)


def _cfg(**kw):
    base = {"loader": {"trunk_cache": True}, "model": {"freeze_blocks": 5}, "cv": {"tta": False}}
    return OmegaConf.merge(base, kw)


def test_the_trunk_cache_needs_a_frozen_trunk_and_no_tta():
    check_trunk_cache(_cfg())
    with pytest.raises(ConfigError, match="'loader.trunk_cache': needs model.freeze_blocks"):
        check_trunk_cache(_cfg(model={"freeze_blocks": 0}))
    with pytest.raises(ConfigError, match="cv.tta=false"):
        check_trunk_cache(_cfg(cv={"tta": True}))
    with pytest.raises(ConfigError, match="'model.freeze_blocks'"):
        LesionClassifier(
            backbone="test_vit",
            pretrained=False,
            gem_p=3.0,
            gem_eps=1e-6,
            dropout=0.0,
            freeze_blocks=2,
        )


def test_the_folded_trunk_pass_runs_with_the_shifted_depthwise_gradient():
    """The swap leaves the frozen layers alone, so folding their BatchNorm adds a bias freely."""
    model, x = _model(5, shifted_depthwise_grad=True), torch.randn(2, 3, 64, 64)
    cached = trunk_features(model, TrunkFeatures([0, 1], x), [0, 1], lambda img: img, 2)
    with torch.no_grad():
        torch.testing.assert_close(cached.read(1), model.trunk(x)[1], rtol=1e-4, atol=1e-4)
