"""The image encoder: cached backbone tokens give what images give, and CNN grid cells carry
their position (cross-attention alone would see a bag of cells, and "left of" is unlearnable)."""

from __future__ import annotations

import copy

import torch

from projects.captioning.model import ImageEncoder, backbone_features, grid_positions


def test_grid_positions_tell_every_cell_apart_and_mirror_cells_differ():
    pos = grid_positions(16, 32)
    assert pos.shape == (16, 32)
    assert torch.cdist(pos, pos).add(torch.eye(16) * 10).min() > 0.1  # all 16 distinct
    left, right = pos[4 * 1 + 0], pos[4 * 1 + 3]  # row 1: first and last column
    assert not torch.allclose(left, right)


def test_a_cnn_encoder_adds_positions_and_a_vit_keeps_its_own():
    cnn = ImageEncoder("pkg:efficientnet_lite0", False, 32)
    vit = ImageEncoder("test_vit", False, 32)
    assert cnn.grid and not vit.grid
    tokens = torch.randn(2, 9, cnn.backbone.num_features)
    with torch.no_grad():
        out = cnn(tokens)
        plain = cnn.proj(tokens)
    torch.testing.assert_close(out - plain, grid_positions(9, 32).expand(2, -1, -1))


def test_cached_backbone_tokens_give_the_images_memory():
    """Pretrained: its BatchNorm statistics are what the folded feature pass must keep."""
    enc = ImageEncoder("pkg:efficientnet_lite0", True, 32).eval()
    images = torch.randn(5, 3, 64, 64)
    loader = [(images[:3], None), (images[3:], None)]
    cached = backbone_features(enc, loader, "cpu")
    assert cached.shape == (5, 4, 1280)  # 64 px -> a 2 x 2 grid
    with torch.no_grad():
        torch.testing.assert_close(enc(cached), enc(images), rtol=1e-4, atol=1e-4)


def test_a_cnn_encoder_runs_channels_last_and_gives_the_contiguous_backbones_tokens():
    torch.manual_seed(0)
    enc = ImageEncoder("pkg:efficientnet_lite0", False, 32).eval()
    assert enc.backbone.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    plain = copy.deepcopy(enc.backbone).to(memory_format=torch.contiguous_format)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = plain.forward_features(images).flatten(2).transpose(1, 2)
        torch.testing.assert_close(enc.backbone_tokens(images), want, atol=1e-4, rtol=1e-4)
