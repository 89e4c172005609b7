"""Generalised-mean (GeM) pooling: a learnable exponent between average (p=1) and max (p→∞)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GeM(nn.Module):
    """(mean over H, W of x.clamp(min=eps) ** p) ** (1 / p), with p learned, starting at 3.

    The exponent is clamped to [1, p_max] in the forward pass so it cannot drift into
    numerically useless values; features are clamped at eps because x ** p needs x > 0.
    """

    def __init__(
        self, p: float = 3.0, eps: float = 1e-6, p_max: float = 10.0, learnable: bool = True
    ) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps
        self.p_max = p_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C)."""
        p = self.p.clamp(1.0, self.p_max)
        pooled = F.avg_pool2d(x.clamp(min=self.eps).pow(p), kernel_size=x.shape[-2:])
        return pooled.pow(1.0 / p).flatten(1)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.3f}, eps={self.eps}"
