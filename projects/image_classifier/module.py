"""The LightningModule (BCE on one logit, AdamW + warmup/cosine, validation pAUC and ROC-AUC)
and the fit of one cross-validation fold with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from projects.image_classifier.data import LesionDataModule
from projects.image_classifier.model import LesionClassifier, predict_scores
from projects.image_classifier.report import image_grid
from shared import tracking
from shared.config import to_dict
from shared.datasets import isic2024 as isic
from shared.device import select_device
from shared.folds import FOLD_COLUMN
from shared.images import HDF5ImageStore
from shared.lightning import adamw_warmup_cosine, build_trainer, is_rank_zero
from shared.metrics import pauc_above_tpr, roc_auc


class LesionModule(L.LightningModule):
    def __init__(self, model_cfg: dict, optim_cfg: dict, min_tpr: float) -> None:
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


def fit_fold(
    cfg: Any,
    frame: pd.DataFrame,
    store: HDF5ImageStore,
    k: int,
    fold_dir: Path,
    callbacks: list[Callback] | None,
) -> tuple[pd.DataFrame, str]:
    """Fit fold `k` (from its last.ckpt with `resume`), score it with the best checkpoint.

    Returns the fold's OOF rows (`isic_id, fold, target, score`, also written to
    `fold_dir/oof.csv`) and the best checkpoint's path; DDP workers return nothing.
    """
    dm = LesionDataModule(frame, k, store, cfg.loader, cfg.seed + k)
    module = LesionModule(to_dict(cfg.model), to_dict(cfg.optim), cfg.cv.min_tpr)
    trainer, ckpt = build_trainer(
        cfg.trainer,
        default_root_dir=str(fold_dir),
        monitor="val_pauc",
        patience=cfg.early_stopping_patience,
        extra_callbacks=callbacks,
    )
    last = fold_dir / "checkpoints" / "last.ckpt"
    resume_from = str(last) if cfg.resume and last.is_file() else None
    trainer.fit(module, datamodule=dm, ckpt_path=resume_from)
    if not is_rank_zero():
        return pd.DataFrame(), ""
    best = LesionModule.load_from_checkpoint(ckpt.best_model_path, map_location="cpu").model
    loader = DataLoader(dm.val_dataloader().dataset, batch_size=cfg.loader.batch_size)
    device = select_device(cfg.trainer.accelerator).torch_device
    scores = predict_scores(best, loader, cfg.cv.tta, device)
    y = dm.val_df[isic.TARGET].to_numpy()
    epoch = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)["epoch"]
    tracking.log_metrics(
        {
            "best_val_pauc": pauc_above_tpr(y, scores, cfg.cv.min_tpr),
            "best_val_roc_auc": roc_auc(y, scores),
            "best_epoch": float(epoch),
        }
    )
    tracking.get_mlflow().log_figure(image_grid(store, dm.val_df, scores), "val_images.png")
    part = dm.val_df.assign(score=scores)[[isic.ID, FOLD_COLUMN, isic.TARGET, "score"]]
    part.to_csv(fold_dir / "oof.csv", index=False)
    return part, ckpt.best_model_path
