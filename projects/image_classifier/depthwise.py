"""A depthwise convolution whose weight gradient is computed as shifted multiply-adds.

On CPU, oneDNN's weight gradient of a depthwise convolution on a small feature map runs on one
thread and is pathologically slow: for the smoke model's (64, 1152, 3, 3) maps and 5x5 kernels,
40-60 ms for 16.6M multiply-adds, three of them in each training step of the fine-tuned tail
(`benchmarks/depthwise_grad.py`: a step 265 -> 151 ms without it). The weight gradient is
    dL/dw[c, a, b] = sum_{n, i, j} dL/dy[n, c, i, j] * x_padded[n, c, s*i + a, s*j + b],
one multiply-add over (N, C, Ho, Wo) per kernel tap: k*k vectorised products and sums. The
forward pass and the input gradient stay oneDNN's (they are fast), so the module computes the
same function as `nn.Conv2d` and keeps its parameters and state_dict keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _DepthwiseConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride: tuple, padding: tuple):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, weight = ctx.saved_tensors
        grad = grad.to(x.dtype)  # autocast ran the forward in bf16: gradients in x's dtype
        (sh, sw), (ph, pw) = ctx.stride, ctx.padding
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(
                x.shape, weight.to(x.dtype), grad, ctx.stride, ctx.padding, groups=weight.shape[0]
            )
        if ctx.needs_input_grad[1]:
            xp = F.pad(x, (pw, pw, ph, ph))
            (ho, wo), (kh, kw) = grad.shape[-2:], weight.shape[-2:]
            taps = [
                (
                    grad * xp[:, :, a : a + sh * (ho - 1) + 1 : sh, b : b + sw * (wo - 1) + 1 : sw]
                ).sum((0, 2, 3))
                for a in range(kh)
                for b in range(kw)
            ]
            grad_w = torch.stack(taps, 1).view_as(weight).to(weight.dtype)
        return grad_x, grad_w, None, None


class DepthwiseConv2d(nn.Conv2d):
    """`nn.Conv2d` with groups == channels, no bias, zero padding: same forward, same
    parameters, the weight gradient by shifted sums (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is not None or self.padding_mode != "zeros" or self.dilation != (1, 1):
            raise ValueError("DepthwiseConv2d takes no bias, zero padding and no dilation only")
        return _DepthwiseConv2d.apply(x, self.weight, self.stride, self.padding)


def use_shifted_depthwise_grad(module: nn.Module) -> int:
    """Turn every plain depthwise `nn.Conv2d` under `module` into a `DepthwiseConv2d` in place
    (the class changes; the parameters, buffers and state_dict keys stay). Returns how many."""
    n = 0
    for m in module.modules():
        if (
            type(m) is nn.Conv2d
            and m.groups == m.in_channels == m.out_channels
            and m.bias is None
            and m.padding_mode == "zeros"
            and m.dilation == (1, 1)
            and isinstance(m.padding, tuple)
        ):
            m.__class__ = DepthwiseConv2d
            n += 1
    return n
