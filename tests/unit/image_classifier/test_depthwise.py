"""The shifted-sum depthwise weight gradient is the same function as nn.Conv2d's: outputs,
input and weight gradients match oneDNN's, on the shapes the smoke model trains and others."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from projects.image_classifier.depthwise import DepthwiseConv2d, use_shifted_depthwise_grad
from projects.image_classifier.model import LesionClassifier
from shared.config import compose, to_dict


@pytest.mark.parametrize(
    ("channels", "size", "kernel", "stride", "channels_last"),
    [(48, 3, 5, 1, True), (32, 6, 5, 2, True), (24, 7, 3, 2, False), (16, 8, 3, 1, False)],
)
def test_gradients_match_conv2d(channels, size, kernel, stride, channels_last):
    torch.manual_seed(0)
    ref = nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False)
    mine = DepthwiseConv2d(
        channels, channels, kernel, stride, kernel // 2, groups=channels, bias=False
    )
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(4, channels, size, size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ref, mine = ref.double(), mine.double()
    outs = []
    for conv in (ref, mine):
        xi = x.clone().requires_grad_(True)
        y = conv(xi)
        g = torch.linspace(-1, 1, y.numel(), dtype=torch.float64).view_as(y)
        gx, gw = torch.autograd.grad(y, (xi, conv.weight), g)
        outs.append((y, gx, gw))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_the_swap_keeps_parameters_and_only_takes_plain_depthwise_convs():
    torch.manual_seed(0)
    model_cfg = to_dict(compose("image_classifier", ["experiment=smoke"]).model)
    model_cfg.update(pretrained=False, dropout=0.0)
    plain = LesionClassifier(**{**model_cfg, "shifted_depthwise_grad": False})
    shifted = LesionClassifier(**{**model_cfg, "shifted_depthwise_grad": True})
    shifted.load_state_dict(plain.state_dict())  # every key and shape the same
    swapped = [m for m in shifted.modules() if isinstance(m, DepthwiseConv2d)]
    depthwise = [m for m in plain.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 16  # Lite0: one per block
    trained = [m for m in shifted.backbone.blocks[5:].modules() if isinstance(m, nn.Conv2d)]
    assert len(swapped) == 5 and all(m in trained for m in swapped)  # the frozen 11 need none
    assert use_shifted_depthwise_grad(nn.Conv2d(8, 8, 3, groups=2)) == 0  # grouped, not depthwise
    plain.train(), shifted.train()
    x = torch.randn(4, 112, 6, 6).contiguous(memory_format=torch.channels_last)
    grads = []
    for model in (plain, shifted):
        torch.manual_seed(1)  # the same dropout mask
        F.binary_cross_entropy_with_logits(model.forward_tail(x), torch.ones(4)).backward()
        grads.append([p.grad for p in model.parameters() if p.requires_grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_gradients_under_bf16_autocast_come_back_in_the_parameters_dtype():
    """Lightning's bf16-mixed runs the forward in bf16: the backward must not mix dtypes."""
    torch.manual_seed(0)
    conv = DepthwiseConv2d(16, 16, 5, 1, 2, groups=16, bias=False)
    x = torch.randn(2, 16, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    y.float().sum().backward()
    assert x.grad.dtype == conv.weight.grad.dtype == torch.float32
    with pytest.raises(ValueError, match="no bias"):
        DepthwiseConv2d(4, 4, 3, padding=1, groups=4)(torch.randn(1, 4, 3, 3))  # bias=True
