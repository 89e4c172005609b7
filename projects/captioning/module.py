"""Teacher-forced training of the captioner with label smoothing, AdamW and warmup + cosine;
the checkpoint kept is the epoch with the best greedy score on the validation split (CIDEr-D, or
grounding where the generator recorded what each image shows: `select` in the config)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from projects.captioning.grounding import grounding
from projects.captioning.model import Captioner, caption_loader
from shared.config import ConfigError
from shared.lightning import adamw_warmup_cosine, build_trainer
from shared.metrics import caption_scores

SELECTABLE = ("cider_d", "grounding")  # logged after each epoch as epoch_val_<name> (greedy)


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
        self.backbone_frozen = False

    def set_backbone_frozen(self, frozen: bool) -> None:
        """No gradients and eval mode: a frozen backbone's BatchNorm statistics stay as loaded."""
        self.backbone_frozen = frozen
        for p in self.model.encoder.backbone.parameters():
            p.requires_grad_(not frozen)
        self.model.encoder.backbone.train(self.training and not frozen)

    def train(self, mode: bool = True) -> CaptionModule:
        """Lightning switches modes around validation; a frozen backbone stays in eval."""
        super().train(mode)
        if mode and self.backbone_frozen:
            self.model.encoder.backbone.eval()
        return self

    def on_train_epoch_start(self) -> None:
        """Freeze the encoder's backbone for the first epochs, then train everything."""
        self.set_backbone_frozen(self.current_epoch < self.freeze_encoder_epochs)

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


class GreedyValScores(Callback):
    """After each validation epoch: greedy-decode the whole val split and log its CIDEr-D
    (`epoch_val_cider_d`) and, with `truths` (generated data), its grounding
    (`epoch_val_grounding`).

    Every rank decodes all of val (no collectives; the same weights give the same score), so
    the checkpoint callback sees one value everywhere.
    """

    def __init__(
        self,
        loader,
        references: list[list[str]],
        tok: Any,
        decoding: Any,
        truths: list[dict] | None = None,
    ) -> None:
        self.loader, self.tok, self.decoding = loader, tok, decoding
        self.references, self.truths = dict(enumerate(references)), truths

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: CaptionModule) -> None:
        if trainer.sanity_checking:
            return
        caps = caption_loader(
            pl_module.model, self.loader, self.tok, self.decoding, pl_module.device, ("greedy",)
        )["greedy"]
        score = caption_scores(self.references, dict(enumerate(caps)))["cider_d"]
        pl_module.log("epoch_val_cider_d", score, prog_bar=True)
        if self.truths is not None:
            pl_module.log("epoch_val_grounding", grounding(caps, self.truths), prog_bar=True)


def check_select(select: str, has_scenes: bool | None = None) -> None:
    """Fail at start-up on a selection score that does not exist (checked before any data
    work) or cannot be computed on this data (`has_scenes`: the data set has scenes.json)."""
    if select not in SELECTABLE:
        raise ConfigError(f"config key 'select': {select!r} is not one of {SELECTABLE}")
    if select == "grounding" and has_scenes is False:
        raise ConfigError(
            "config key 'select': grounding needs generated data (scenes.json: what each "
            "image shows); select real data on cider_d"
        )


def fit(
    module: CaptionModule,
    dm: Any,
    tok: Any,
    cfg: Any,
    scenes: dict[str, dict] | None = None,
) -> dict[str, float]:
    """Train, then restore the epoch with the best val greedy `cfg.select` score (test is never
    looked at). Grounding needs `scenes` (what each generated image shows).

    Returns the chosen epoch and its score.
    """
    check_select(cfg.select, scenes is not None)
    val = dm.splits["val"]
    truths = _truths(val, scenes) if scenes is not None else None
    scorer = GreedyValScores(dm.loader("val"), list(val["raw"]), tok, cfg.decoding, truths)
    monitor = f"epoch_val_{cfg.select}"
    with tempfile.TemporaryDirectory() as tmp:
        trainer, ckpt = build_trainer(
            cfg.trainer,
            default_root_dir=tmp,
            monitor=monitor,
            mode="max",
            extra_callbacks=[scorer],
        )
        trainer.fit(module, datamodule=dm)
        best = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)
    module.load_state_dict(best["state_dict"])
    module.set_backbone_frozen(False)
    return {"best_epoch": best["epoch"], f"best_{monitor}": float(ckpt.best_model_score)}


def _truths(split: Any, scenes: dict[str, dict]) -> list[dict]:
    """What each image of a split shows, in the split's order."""
    return [scenes[Path(p).name] for p in split["path"]]


def evaluate(
    model: Captioner,
    dm: Any,
    tok: Any,
    decoding: Any,
    device: Any,
    baseline: str,
    scenes: dict[str, dict] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, list[str]]]]:
    """Beam (`{split}_cider_d`) and greedy (`..._greedy`) scores of val and test, and the
    same split given `baseline` for every image (`..._baseline`: what "learns" must beat).
    With `scenes` (generated data: what each image shows), also `{split}_grounding`: the
    share of captions true of their image (`grounding.py`)."""
    metrics: dict[str, float] = {}
    generated = {}
    for s in ("val", "test"):
        generated[s] = caption_loader(model, dm.loader(s), tok, decoding, device)
        refs = dict(enumerate(dm.splits[s]["raw"]))
        runs = {"": generated[s]["beam"], "_greedy": generated[s]["greedy"]}
        runs["_baseline"] = [baseline] * len(refs)
        for suffix, caps in runs.items():
            scores = caption_scores(refs, dict(enumerate(caps)))
            if scenes is not None:
                scores["grounding"] = grounding(caps, _truths(dm.splits[s], scenes))
            metrics.update({f"{s}_{k}{suffix}": v for k, v in scores.items()})
    return metrics, generated
