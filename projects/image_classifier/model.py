"""EfficientNet (any timm backbone) with GeM pooling and a one-logit head."""

from __future__ import annotations

import timm
import torch
from torch import nn

from projects.image_classifier.gem import GeM


def create_backbone(name: str, pretrained: bool) -> nn.Module:
    """A timm feature extractor (no pooling, no classifier) created by name.

    Pretrained weights come from the Hugging Face hub or timm's cache; offline, a clear
    message says how to proceed instead of a long network traceback.
    """
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, global_pool="")
    except Exception as exc:
        if pretrained and any(
            s in str(exc).lower()
            for s in ("connect", "offline", "resolve", "hub", "internet", "network")
        ):
            raise RuntimeError(
                f"pretrained weights for '{name}' could not be fetched ({type(exc).__name__}). "
                "Offline? Put them in the Hugging Face cache (HF_HOME) beforehand, or set "
                "model.pretrained=false."
            ) from exc
        raise


class LesionClassifier(nn.Module):
    """backbone -> GeM -> dropout -> linear: one malignancy logit per image."""

    def __init__(
        self,
        backbone: str = "efficientnet_b0",
        pretrained: bool = False,
        gem_p: float = 3.0,
        gem_eps: float = 1e-6,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained)
        self.pool = GeM(p=gem_p, eps=gem_eps)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B,) logits."""
        features = self.backbone.forward_features(x)  # (B, C, h, w) before any timm head
        return self.head(self.dropout(self.pool(features))).squeeze(1)
