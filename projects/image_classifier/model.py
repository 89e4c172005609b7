"""EfficientNet (any timm backbone) with GeM pooling and a one-logit head."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from projects.image_classifier.data import TrunkFeatures
from projects.image_classifier.depthwise import use_shifted_depthwise_grad
from projects.image_classifier.gem import GeM
from shared.config import ConfigError
from shared.datasets import isic2024 as isic
from shared.fold_bn import fold_batchnorm
from shared.metrics import pauc_above_tpr, roc_auc
from shared.pretrained import create_timm_model


def create_backbone(name: str, pretrained: bool) -> nn.Module:
    """A timm feature extractor (no pooling, no classifier) created by name: a hub name, or
    `pkg:efficientnet_lite0` for weights shipped in a package (`shared.pretrained`)."""
    return create_timm_model(name, pretrained, num_classes=0, global_pool="")


def with_backbone_preprocessing(cfg: Any) -> Any:
    """`cfg` with `loader.augment.mean/std` filled in from the backbone's pretrained config
    where they are null, so training, OOF scoring and the served bundle normalise alike."""
    from omegaconf import OmegaConf

    aug = cfg.loader.augment
    if aug.mean is not None and aug.std is not None:
        return cfg
    import timm

    data_cfg = timm.data.resolve_model_data_config(create_backbone(cfg.model.backbone, False))
    resolved = {
        "mean": list(aug.mean) if aug.mean is not None else [float(v) for v in data_cfg["mean"]],
        "std": list(aug.std) if aug.std is not None else [float(v) for v in data_cfg["std"]],
    }
    out = OmegaConf.merge(cfg, {"loader": {"augment": resolved}})
    OmegaConf.set_readonly(out, True)
    return out


class LesionClassifier(nn.Module):
    """backbone -> GeM -> dropout -> linear: one malignancy logit per image.

    `freeze_blocks` keeps a pretrained EfficientNet's stem and first blocks as loaded (no
    gradients, BatchNorm in eval mode): their edge and colour filters need no new data, and
    not back-propagating through the high-resolution layers halves a CPU step. Weights and
    inputs are channels-last, about 1.6x faster than contiguous on CPU as on GPU.
    `shifted_depthwise_grad` computes the depthwise convolutions' weight gradients by shifted
    sums (`depthwise.py`: the same function; a CPU step of the smoke model 1.75x faster).
    """

    def __init__(
        self,
        *,
        backbone: str,
        pretrained: bool,
        gem_p: float,
        gem_eps: float,
        dropout: float,
        freeze_blocks: int = 0,
        shifted_depthwise_grad: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained)
        self.pool = GeM(p=gem_p, eps=gem_eps)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, 1)
        self.n_frozen_blocks = freeze_blocks
        self.frozen = self._frozen_modules(freeze_blocks)  # a list: not registered twice
        for module in self.frozen:
            module.requires_grad_(False)
        if shifted_depthwise_grad:  # CPU: oneDNN's depthwise weight gradient is the slow part
            # only where weights train: frozen layers need no weight gradient
            use_shifted_depthwise_grad(
                self.backbone.blocks[freeze_blocks:] if self.frozen else self.backbone
            )
        self.to(memory_format=torch.channels_last)

    def _frozen_modules(self, n: int) -> list[nn.Module]:
        if n == 0:
            return []
        blocks = getattr(self.backbone, "blocks", None)
        if blocks is None or not hasattr(self.backbone, "conv_stem") or n > len(blocks):
            raise ConfigError(
                f"config key 'model.freeze_blocks': {n} needs an EfficientNet-style backbone "
                f"(conv_stem, bn1, blocks) with at least {n} blocks"
            )
        return [self.backbone.conv_stem, self.backbone.bn1, *blocks[:n]]

    def train(self, mode: bool = True) -> LesionClassifier:
        """Frozen layers stay in eval mode (their BatchNorm statistics stay as loaded)."""
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def trunk_layers(self) -> nn.Sequential:
        """The frozen stem and first blocks in order (these modules, not copies): what `trunk`
        runs, as one module for `fold_batchnorm`."""
        b = self.backbone
        blocks = b.blocks[: self.n_frozen_blocks]  # a new container, like `layers`: both hold
        layers = nn.Sequential(b.conv_stem, b.bn1, blocks)  # frozen layers, always in eval
        layers.training = blocks.training = False
        return layers

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> the frozen stem and blocks' output: the same for
        every epoch and fold, so it can be computed once per image (`trunk_features`)."""
        b = self.backbone
        x = b.bn1(b.conv_stem(x.contiguous(memory_format=torch.channels_last)))
        return b.blocks[: self.n_frozen_blocks](x)

    def forward_tail(self, trunk: torch.Tensor) -> torch.Tensor:
        """The trainable rest of the network on `trunk(x)` -> (B,) logits."""
        b = self.backbone
        features = b.bn2(b.conv_head(b.blocks[self.n_frozen_blocks :](trunk)))
        return self.head(self.dropout(self.pool(features))).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B,) logits."""
        if self.frozen:  # an EfficientNet: forward_features is exactly trunk, then the rest
            return self.forward_tail(self.trunk(x))
        x = x.contiguous(memory_format=torch.channels_last)
        features = self.backbone.forward_features(x)  # (B, C, h, w) before any timm head
        return self.head(self.dropout(self.pool(features))).squeeze(1)


@torch.no_grad()
def trunk_features(
    model: LesionClassifier, images: Any, ids: list[str], transform: Any, batch_size: int
) -> TrunkFeatures:
    """The frozen trunk's output for every image (evaluation transform, no augmentation), in
    memory: every epoch of every fold then trains and scores only the rest of the network.
    Computed with BatchNorm folded (`shared.fold_bn`): the trunk's function to ~1e-6."""
    model.eval()
    parts, layers = [], None
    for start in range(0, len(ids), batch_size):
        batch = [transform(images.read(i)) for i in ids[start : start + batch_size]]
        x = torch.stack(batch).contiguous(memory_format=torch.channels_last)
        if layers is None:  # BatchNorm folded into the convolutions, checked on this batch
            layers = fold_batchnorm(model.trunk_layers(), x)
        parts.append(layers(x).contiguous())
    return TrunkFeatures(ids, torch.cat(parts) if parts else torch.zeros(0))


@torch.no_grad()
def predict_scores(
    model: nn.Module, loader: DataLoader, tta: bool = False, device: str = "cpu"
) -> np.ndarray:
    """Sigmoid scores for every batch; with `tta`, the mean over identity and two flips."""
    model.eval().to(device)
    out = []
    for x, _ in loader:
        x = x.to(device)
        views = [x, x.flip(-1), x.flip(-2)] if tta else [x]
        probs = torch.stack([torch.sigmoid(model(v).float()) for v in views]).mean(0)
        out.append(probs.cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def oof_summary(
    oof: pd.DataFrame, fold_aucs: list[float], min_tpr: float, oracle: pd.DataFrame | None
) -> dict[str, float]:
    """Pooled OOF ROC-AUC and pAUC, the folds' ROC-AUC mean ± std (each fold scored by the
    checkpoint chosen without it), and the oracle's (smoke data)."""
    y, s = oof[isic.TARGET].to_numpy(), oof["score"].to_numpy()
    summary = {
        "oof_roc_auc": roc_auc(y, s),
        "oof_pauc": pauc_above_tpr(y, s, min_tpr),
        "fold_roc_auc_mean": float(np.mean(fold_aucs)),
        "fold_roc_auc_std": float(np.std(fold_aucs)),
        "n_folds_done": float(len(fold_aucs)),
    }
    if oracle is not None:
        p = isic.oracle_probability(oof[isic.ID], oracle)
        summary["oracle_roc_auc"] = roc_auc(y, p)
        summary["oracle_pauc"] = pauc_above_tpr(y, p, min_tpr)
    return summary
