"""The LightningModule (BCE on one logit, AdamW + warmup/cosine, per-epoch pAUC and ROC-AUC)
and the fit of one cross-validation fold with it, choosing its epoch without the scored fold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from projects.image_classifier.data import (
    ImageSource,
    LesionDataModule,
    TrunkFeatures,
    build_transforms,
)
from projects.image_classifier.gradcam import focus_summary, lesion_focus
from projects.image_classifier.model import LesionClassifier, predict_scores
from projects.image_classifier.report import image_grid, write_csv_atomic
from projects.image_classifier.state import RunState
from shared import tracking
from shared.config import to_dict
from shared.datasets import isic2024 as isic
from shared.device import select_device
from shared.folds import FOLD_COLUMN
from shared.lightning import RestoreRNG, adamw_warmup_cosine, build_trainer, is_rank_zero
from shared.locks import write_atomically
from shared.logging import get_logger
from shared.metrics import pauc_above_tpr, roc_auc
from shared.seed import seed_everything

log = get_logger(__name__)


class LesionModule(L.LightningModule):
    """BCE on one logit. Each validation loader `val_names[i]` logs `<name>_loss`,
    `<name>_pauc` and `<name>_roc_auc` per epoch (`val`: the inner split that chooses the
    epoch; `heldout`: the scored fold, for learning curves only)."""

    def __init__(
        self,
        model_cfg: dict,
        optim_cfg: dict,
        min_tpr: float,
        val_names: tuple[str, ...] = ("val",),
        on_trunk_features: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = LesionClassifier(**model_cfg)
        self.on_trunk_features = on_trunk_features  # batches hold trunk features, not images
        self.optim_cfg = optim_cfg
        self.min_tpr = min_tpr
        self.val_names = tuple(val_names)
        self._val: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_tail(x) if self.on_trunk_features else self.model(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        x, y = batch
        self._val.setdefault(dataloader_idx, []).append((self(x).float().detach(), y.detach()))

    def on_validation_epoch_end(self) -> None:
        for idx, outputs in sorted(self._val.items()):
            logits = torch.cat([s for s, _ in outputs])
            targets = torch.cat([t for _, t in outputs])
            if self.trainer.world_size > 1:
                logits = self.all_gather(logits).flatten()
                targets = self.all_gather(targets).flatten()
            for key, value in self._scores(logits, targets).items():
                self.log(f"{self.val_names[idx]}_{key}", value, prog_bar=key != "loss")
        self._val.clear()

    def _scores(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        y, s = targets.cpu().numpy(), torch.sigmoid(logits).cpu().numpy()
        loss = float(F.binary_cross_entropy_with_logits(logits, targets))
        if np.unique(y).size < 2:  # a split without positives has no ranking to score
            return {"loss": loss, "pauc": 0.0, "roc_auc": 0.5}
        return {"loss": loss, "pauc": pauc_above_tpr(y, s, self.min_tpr), "roc_auc": roc_auc(y, s)}

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_warmup_cosine(self, self.optim_cfg)


def fit_fold(
    cfg: Any,
    frame: pd.DataFrame,
    images: ImageSource,
    k: int,
    fold_dir: Path,
    callbacks: list[Callback] | None,
    trunk: TrunkFeatures | None = None,
) -> tuple[pd.DataFrame, str]:
    """Fit fold `k` (from its last.ckpt with `resume`), then score it with the chosen weights.

    With `trunk` (`loader.trunk_cache`), the loaders serve the frozen trunk's features of the
    images and only the rest of the network runs; `images` still draws the report's grid.

    `cv.selection=inner`: early stopping and the best checkpoint follow `val_pauc` on an inner
    split of the training folds' patients; `fixed`: `trainer.max_epochs` epochs, last weights.
    Fold k itself is only scored (and logged per epoch as `heldout_*`), never used to choose.
    Returns the fold's OOF rows (`isic_id, fold, target, score`, also written to
    `fold_dir/oof.csv`) and the chosen checkpoint's path; DDP workers return nothing.
    """
    seed_everything(cfg.seed + k, deterministic=False)  # a fold's result needs no other fold
    dm = LesionDataModule(
        frame,
        k,
        images if trunk is None else trunk,
        cfg.loader,
        cfg.seed + k,
        cfg.cv.selection,
        cfg.cv.inner_fraction,
        cfg.cv.heldout_curves,
    )
    module = LesionModule(
        to_dict(cfg.model), to_dict(cfg.optim), cfg.cv.min_tpr, dm.val_names, trunk is not None
    )
    inner = cfg.cv.selection == "inner"
    # inner: build_trainer's best-on-val_pauc and last checkpoints; fixed: the latest epoch's.
    latest = (
        None if inner else ModelCheckpoint(fold_dir / "checkpoints", save_top_k=1, save_last=True)
    )
    extra = [RestoreRNG(), *(callbacks or []), *([latest] if latest else [])]
    trainer, ckpt = build_trainer(
        cfg.trainer,
        default_root_dir=str(fold_dir),
        monitor="val_pauc" if inner else None,
        patience=cfg.early_stopping_patience if inner else None,
        extra_callbacks=extra,
    )
    last = fold_dir / "checkpoints" / "last.ckpt"
    resume_from = str(last) if cfg.resume and last.is_file() else None
    # last.ckpt keeps early stopping's counters but not its decision: a fold killed after it
    # stopped and before it was scored would train on when resumed, so the end of fit is noted
    fitted = fold_dir / "fit_done.json"
    if cfg.resume and fitted.is_file():
        chosen = json.loads(fitted.read_text())["chosen"]
    else:
        trainer.fit(module, datamodule=dm, ckpt_path=resume_from)
        chosen = (ckpt if inner else latest).best_model_path
        if is_rank_zero():
            write_atomically(fitted, json.dumps({"chosen": chosen}))
    if not is_rank_zero():
        return pd.DataFrame(), ""
    epoch = torch.load(chosen, map_location="cpu", weights_only=False)["epoch"]
    best = LesionModule.load_from_checkpoint(chosen, map_location="cpu")  # images or features
    loader = dm.heldout_dataloader()  # loader.num_workers workers; cached images if on
    device = select_device(cfg.trainer.accelerator).torch_device
    scores = predict_scores(best, loader, cfg.cv.tta, device)
    y = dm.heldout_df[isic.TARGET].to_numpy()
    tracking.log_metrics(
        {
            "fold_pauc": pauc_above_tpr(y, scores, cfg.cv.min_tpr),
            "fold_roc_auc": roc_auc(y, scores),
            "chosen_epoch": float(epoch),
            "n_train": float(len(dm.train_df)),
            "n_inner_val": float(0 if dm.select_df is None else len(dm.select_df)),
        }
    )
    tracking.get_mlflow().log_figure(image_grid(images, dm.heldout_df, scores), "val_images.png")
    part = dm.heldout_df.assign(score=scores)[[isic.ID, FOLD_COLUMN, isic.TARGET, "score"]]
    write_csv_atomic(part, fold_dir / "oof.csv")
    return part, chosen


def fit_folds(
    cfg: Any,
    frame: pd.DataFrame,
    images: ImageSource,
    folds: list[int],
    run_dir: Path,
    state: RunState,
    callbacks: list[Callback] | None = None,
    trunk: TrunkFeatures | None = None,
) -> tuple[list[pd.DataFrame], list[float], list[str]]:
    """Every fold in a nested MLflow run, skipping those `state` has done (resume).

    Returns the OOF parts, each fold's ROC-AUC and chosen checkpoint (empty on DDP workers).
    """
    parts, aucs, paths = [], [], []
    for k in folds:
        fs, fold_dir = state.fold(k), run_dir / f"fold_{k}"
        if fs.get("done"):
            log.info("fold %d already done (resume): reading its OOF part", k)
            part = pd.read_csv(fold_dir / "oof.csv")
        else:
            with tracking.start_run(
                cfg.tracking.experiment,
                run_name=f"fold_{k}",
                nested=True,
                tags={"fold": str(k)},
                run_id=fs.get("run_id"),
            ) as frun:
                if frun is not None:
                    fs["run_id"] = frun.info.run_id
                    state.save()
                part, fs["best_checkpoint"] = fit_fold(
                    cfg, frame, images, k, fold_dir, callbacks, trunk
                )
            if not is_rank_zero():
                continue
            fs.update(done=True, roc_auc=roc_auc(part[isic.TARGET], part["score"]))
            state.save()
        parts.append(part)
        aucs.append(fs["roc_auc"])
        paths.append(fs["best_checkpoint"])
    return parts, aucs, paths


def oof_lesion_focus(
    cfg: Any,
    oof: pd.DataFrame,
    images: ImageSource,
    checkpoints: list[str],
    folds: list[int],
    oracle: pd.DataFrame | None,
) -> dict[str, float]:
    """On generated data: Grad-CAM of every out-of-fold positive by the fold model that scored
    it, as the share of the map's mass inside the lesion's disc (`cam_lesion_mass`) beside the
    share of the image the disc covers (`cam_lesion_area`). Real data has no discs: {}."""
    if oracle is None or not set(isic.LESION_DISC) <= set(oracle.columns):
        return {}
    positives = oof[oof[isic.TARGET] == 1].merge(oracle[[isic.ID, *isic.LESION_DISC]], on=isic.ID)
    transform = build_transforms(cfg.loader.augment, cfg.loader.image_size, train=False)
    masses, areas = [], []
    for k, path in zip(folds, checkpoints):
        part = positives[positives[FOLD_COLUMN] == k]
        if part.empty:
            continue
        model = LesionModule.load_from_checkpoint(path, map_location="cpu").model
        x = torch.stack([transform(images.read(i)) for i in part[isic.ID]])
        m, a = lesion_focus([model], x, part[list(isic.LESION_DISC)].to_numpy())
        masses.append(m)
        areas.append(a)
    if not masses:
        return {}
    return focus_summary(np.concatenate(masses), np.concatenate(areas))
