"""Teacher-forced training of the captioner with label smoothing, AdamW and warmup + cosine."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from projects.captioning.model import Captioner
from shared.lightning import adamw_warmup_cosine


def caption_loss(
    logits: torch.Tensor, seq: torch.Tensor, lengths: torch.Tensor, label_smoothing: float
) -> torch.Tensor:
    """Cross-entropy of next-token prediction over each caption's real tokens (EOS included)."""
    targets = seq[:, 1:]
    positions = torch.arange(targets.size(1), device=seq.device)[None]
    valid = positions < (lengths[:, None] - 1)
    return F.cross_entropy(logits[valid], targets[valid], label_smoothing=label_smoothing)


class CaptionModule(L.LightningModule):
    def __init__(
        self,
        model: Captioner,
        optim: dict[str, Any],
        label_smoothing: float,
        freeze_encoder_epochs: int,
    ) -> None:
        super().__init__()
        self.model, self.optim = model, optim
        self.label_smoothing = label_smoothing
        self.freeze_encoder_epochs = freeze_encoder_epochs

    def on_train_epoch_start(self) -> None:
        """Freeze the encoder's backbone for the first epochs, then train everything."""
        frozen = self.current_epoch < self.freeze_encoder_epochs
        for p in self.model.encoder.backbone.parameters():
            p.requires_grad_(not frozen)

    def _loss(self, batch) -> torch.Tensor:
        images, seq, lengths = batch
        logits = self.model(images, seq[:, :-1])
        return caption_loss(logits.float(), seq, lengths, self.label_smoothing)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), on_epoch=True, prog_bar=True)

    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.optim, betas=(0.9, 0.98))
