"""Image encoder (any timm model) -> visual tokens -> GPT-2 decoder with cross-attention."""

from __future__ import annotations

from typing import Any

import timm
import timm.data
import torch
from torch import nn
from torch.utils.data import DataLoader

from projects.captioning.decoder import DecoderConfig, GPT2Decoder, load_hf_gpt2
from projects.captioning.generate import beam_search, greedy
from shared.config import ConfigError


class ImageEncoder(nn.Module):
    """A timm backbone's feature grid (CNN) or tokens (ViT), projected to the decoder width."""

    def __init__(self, name: str, pretrained: bool, out_dim: int) -> None:
        super().__init__()
        self.name = name
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

    def data_config(self) -> dict:
        """The backbone's preprocessing (input size, interpolation, mean, std) from its
        pretrained config; timm keeps it on models created with pretrained=False too."""
        return timm.data.resolve_model_data_config(self.backbone)

    def check_input_size(self, size: int) -> None:
        """A fixed-size ViT fails at the first batch on another size: fail at start-up instead."""
        patch = getattr(self.backbone, "patch_embed", None)
        native = getattr(patch, "img_size", None)
        dynamic = getattr(self.backbone, "dynamic_img_size", False)
        if native is not None and not dynamic and tuple(native) != (size, size):
            raise ConfigError(
                f"config key 'data.image_size': {self.name} "
                f"takes {tuple(native)} images, not {size}; set data.image_size=null"
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, N, out_dim) visual tokens."""
        feats = self.backbone.forward_features(images)
        if feats.ndim == 4:  # CNN: (B, C, h, w) -> (B, h*w, C)
            feats = feats.flatten(2).transpose(1, 2)
        return self.proj(feats)


class Captioner(nn.Module):
    """A timm encoder and the GPT-2 decoder; `decoder_cfg.init` copies Hugging Face weights."""

    def __init__(self, encoder_name: str, encoder_pretrained: bool, decoder_cfg: DecoderConfig):
        super().__init__()
        self.encoder = ImageEncoder(encoder_name, encoder_pretrained, decoder_cfg.n_embd)
        self.decoder = GPT2Decoder(decoder_cfg)
        if decoder_cfg.init:
            load_hf_gpt2(self.decoder, decoder_cfg.init)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        logits, _ = self.decoder(tokens, self.encoder(images))
        return logits


@torch.no_grad()
def caption_loader(
    model: Captioner,
    loader: DataLoader,
    tok: Any,
    decoding: Any,
    device: str | torch.device,
    methods: tuple[str, ...] = ("greedy", "beam"),
) -> dict[str, list[str]]:
    """Greedy and/or beam-search captions for every image of a loader (same order)."""
    model.eval().to(device)
    d = decoding
    out: dict[str, list[str]] = {m: [] for m in methods}
    for images, _, _ in loader:
        memory = model.encoder(images.to(device))
        if "greedy" in out:
            g = greedy(model.decoder, memory, tok.bos_id, tok.eos_id, d.max_len)
            out["greedy"] += [tok.decode(x) for x in g]
        if "beam" in out:
            b = beam_search(
                model.decoder,
                memory,
                tok.bos_id,
                tok.eos_id,
                d.max_len,
                d.beam_size,
                d.length_penalty,
            )
            out["beam"] += [tok.decode(x) for x in b]
    return out
