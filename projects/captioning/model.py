"""Image encoder (any timm model) -> visual tokens -> GPT-2 decoder with cross-attention."""

from __future__ import annotations

import timm
import torch
from torch import nn

from projects.captioning.decoder import DecoderConfig, GPT2Decoder, load_hf_gpt2


class ImageEncoder(nn.Module):
    """A timm backbone's feature grid (CNN) or tokens (ViT), projected to the decoder width."""

    def __init__(self, name: str, pretrained: bool, out_dim: int) -> None:
        super().__init__()
        try:
            self.backbone = timm.create_model(name, pretrained=pretrained, num_classes=0)
        except Exception as exc:
            if pretrained:
                raise RuntimeError(
                    f"pretrained weights for '{name}' could not be loaded ({type(exc).__name__}): "
                    "offline? fill the Hugging Face cache first or set encoder.pretrained=false"
                ) from exc
            raise
        self.proj = nn.Sequential(
            nn.Linear(self.backbone.num_features, out_dim), nn.LayerNorm(out_dim)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, N, out_dim) visual tokens."""
        feats = self.backbone.forward_features(images)
        if feats.ndim == 4:  # CNN: (B, C, h, w) -> (B, h*w, C)
            feats = feats.flatten(2).transpose(1, 2)
        return self.proj(feats)


class Captioner(nn.Module):
    def __init__(
        self,
        encoder_name: str,
        encoder_pretrained: bool,
        decoder_cfg: DecoderConfig,
        decoder_init: str | None = None,
    ) -> None:
        super().__init__()
        self.encoder = ImageEncoder(encoder_name, encoder_pretrained, decoder_cfg.n_embd)
        self.decoder = GPT2Decoder(decoder_cfg)
        if decoder_init:
            load_hf_gpt2(self.decoder, decoder_init)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        logits, _ = self.decoder(tokens, self.encoder(images))
        return logits
