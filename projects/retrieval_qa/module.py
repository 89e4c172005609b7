"""The reader's LightningModule: cross-entropy over the five options, val MAP@3 per epoch."""

from __future__ import annotations

import tempfile
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from projects.retrieval_qa.data import LETTERS
from projects.retrieval_qa.model import as_dataset, encode, ranked_letters, trim_padding
from shared.lightning import adamw_warmup_cosine, build_trainer
from shared.metrics import map_at_k


class ReaderModule(L.LightningModule):
    """Fine-tunes the reader with cross-entropy over the five options; logs val MAP@3."""

    def __init__(self, model, keys: list[str], optim: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.keys, self.optim = model, keys, optim
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    def _forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        *inputs, labels = batch
        out = self.model(**trim_padding(dict(zip(self.keys, inputs))), labels=labels)
        return out.loss, out.logits

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._forward(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, logits = self._forward(batch)
        self.log("val_loss", loss, on_epoch=True)
        self._val.append((logits.float().cpu().numpy(), batch[-1].cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        logits = np.concatenate([v[0] for v in self._val])
        labels = [LETTERS[i] for i in np.concatenate([v[1] for v in self._val])]
        self._val.clear()
        self.log("epoch_val_map3", map_at_k(labels, ranked_letters(logits)), prog_bar=True)

    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.optim)


def fit_reader(
    model: Any,
    tokenizer: Any,
    splits: dict[str, pd.DataFrame],
    contexts: dict[str, list[str]],
    reader_cfg: Any,
    optim: dict[str, Any],
    trainer_cfg: Any,
) -> tuple[Any, int]:
    """Fine-tune the reader on the train split's (context, question + option) pairs and keep
    the epoch with the best val MAP@3, not the last one. Returns (model in eval mode, that
    epoch, counted from 0)."""
    enc = {
        s: encode(tokenizer, splits[s], contexts[s], reader_cfg.max_length)
        for s in ("train", "val")
    }
    train = DataLoader(
        as_dataset(enc["train"], splits["train"]), batch_size=reader_cfg.batch_size, shuffle=True
    )
    val = DataLoader(as_dataset(enc["val"], splits["val"]), batch_size=reader_cfg.eval_batch_size)
    model.train()  # from_pretrained returns eval mode; Lightning keeps module modes
    module = ReaderModule(model, sorted(enc["train"]), optim)
    with tempfile.TemporaryDirectory() as tmp:
        trainer, ckpt = build_trainer(
            trainer_cfg, default_root_dir=tmp, monitor="epoch_val_map3", mode="max"
        )
        trainer.fit(module, train, val)
        best = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)
    module.load_state_dict(best["state_dict"])
    return model.eval(), int(best["epoch"])
