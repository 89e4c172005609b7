"""The LightningModule: BCE on one logit, AdamW + warmup/cosine, validation pAUC and ROC-AUC."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from projects.image_classifier.model import LesionClassifier
from shared.lightning import adamw_warmup_cosine
from shared.metrics import pauc_above_tpr, roc_auc


class LesionModule(L.LightningModule):
    def __init__(self, model_cfg: dict, optim_cfg: dict, min_tpr: float = 0.8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = LesionClassifier(**model_cfg)
        self.optim_cfg = optim_cfg
        self.min_tpr = min_tpr
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log(
            "val_loss", F.binary_cross_entropy_with_logits(logits, y), on_epoch=True, sync_dist=True
        )
        self._val.append((torch.sigmoid(logits.float()).detach(), y.detach()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        scores = torch.cat([s for s, _ in self._val])
        targets = torch.cat([t for _, t in self._val])
        self._val.clear()
        if self.trainer.world_size > 1:
            scores = self.all_gather(scores).flatten()
            targets = self.all_gather(targets).flatten()
        y, s = targets.cpu().numpy(), scores.cpu().numpy()
        if np.unique(y).size < 2:  # a sanity-check batch may hold one class
            pauc, auc = 0.0, 0.5
        else:
            pauc, auc = pauc_above_tpr(y, s, self.min_tpr), roc_auc(y, s)
        self.log("val_pauc", pauc, prog_bar=True, sync_dist=False, rank_zero_only=False)
        self.log("val_roc_auc", auc, prog_bar=True, sync_dist=False)

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_warmup_cosine(self, self.optim_cfg)
