"""Image encoder (any timm model) -> visual tokens -> GPT-2 decoder with cross-attention."""

from __future__ import annotations

import math
from typing import Any

import timm.data
import torch
from torch import nn
from torch.utils.data import DataLoader

from projects.captioning.decoder import DecoderConfig, GPT2Decoder, load_hf_gpt2
from projects.captioning.generate import beam_search, greedy
from shared.config import ConfigError
from shared.fold_bn import fold_batchnorm
from shared.pretrained import create_timm_model


def grid_positions(n_tokens: int, dim: int) -> torch.Tensor:
    """(n_tokens, dim) fixed 2-D sine-cosine positions of a square grid, row by row: x and y
    each take half the channels, as sin and cos at dim / 4 frequencies."""
    side = math.isqrt(n_tokens)
    if side * side != n_tokens or dim % 4:
        raise ValueError(
            f"{n_tokens} tokens are not a square grid, or {dim} is not a multiple of 4"
        )
    y, x = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4) / (dim // 4))
    parts = [f(c.flatten()[:, None] * omega) for c in (x, y) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1)


class ImageEncoder(nn.Module):
    """A timm backbone's feature grid (CNN) or tokens (ViT), projected to the decoder width.

    Cross-attention treats its memory as a set: a ViT's tokens carry their position, a CNN's
    grid cells get fixed 2-D sine-cosine positions, or "left of" could not be learnt.
    """

    def __init__(self, name: str, pretrained: bool, out_dim: int) -> None:
        super().__init__()
        self.name = name
        self.backbone = create_timm_model(name, pretrained, num_classes=0)
        self.proj = nn.Sequential(
            nn.Linear(self.backbone.num_features, out_dim), nn.LayerNorm(out_dim)
        )
        self.grid = getattr(self.backbone, "pos_embed", None) is None  # no positions of its own
        if self.grid:  # a CNN: oneDNN's CPU convolutions run ~1.4x faster channels-last
            self.backbone.to(memory_format=torch.channels_last)

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

    def backbone_tokens(
        self, images: torch.Tensor, backbone: nn.Module | None = None
    ) -> torch.Tensor:
        """(B, 3, H, W) -> (B, N, C): the backbone's feature grid (CNN) or tokens (ViT);
        `backbone`: a copy of it to run instead (`backbone_features`' folded one)."""
        if self.grid:
            images = images.contiguous(memory_format=torch.channels_last)
        feats = (self.backbone if backbone is None else backbone).forward_features(images)
        if feats.ndim == 4:  # CNN: (B, C, h, w) -> (B, h*w, C)
            feats = feats.flatten(2).transpose(1, 2)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W), or the backbone's tokens (B, N, C) as cached for a frozen
        backbone (`backbone_features`) -> (B, N, out_dim) visual tokens."""
        tokens = self.proj(x if x.ndim == 3 else self.backbone_tokens(x))
        if self.grid:
            tokens = tokens + grid_positions(tokens.shape[1], tokens.shape[2]).to(tokens)
        return tokens


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
def backbone_features(
    encoder: ImageEncoder, images: DataLoader, device: str | torch.device
) -> torch.Tensor:
    """(N, T, C) backbone tokens of every image of a loader (its first item), in order: what a
    frozen backbone gives, computed once instead of every epoch; with BatchNorm folded into
    the convolutions (`shared.fold_bn`): the backbone's function to ~1e-6."""
    encoder.eval().to(device)
    parts, folded = [], None
    for batch in images:
        x = batch[0].to(device)
        if folded is None:  # folded once, checked on the first batch
            folded = fold_batchnorm(
                encoder.backbone, x, lambda m, probe: encoder.backbone_tokens(probe, m)
            )
        parts.append(encoder.backbone_tokens(x, folded).cpu())
    return torch.cat(parts)


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
