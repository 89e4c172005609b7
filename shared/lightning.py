"""The one Lightning harness every torch project trains with.

`build_trainer` turns a `trainer` config node into a Trainer with our callbacks;
`MLflowMetrics` logs what the module logged each epoch through `shared.tracking`, on rank 0
only (MLflowLogger has open problems with SQLite stores; this is small and predictable).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from shared import tracking
from shared.config import to_dict
from shared.device import select_device
from shared.pruning import report as sweep_report

is_rank_zero = tracking.is_rank_zero


class MLflowMetrics(Callback):
    """Log epoch metrics (train/val loss, scores, lr) and throughput to the active MLflow run."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._t0 = 0.0
        self._seen = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._seen = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        x = batch[0] if isinstance(batch, list | tuple) else next(iter(batch.values()))
        self._seen += len(x) * trainer.world_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs after the epoch's validation, so train and val metrics share one step.
        if not trainer.is_global_zero:
            return
        metrics = {
            f"{self.prefix}{k}": float(v)
            for k, v in trainer.callback_metrics.items()
            if torch.is_tensor(v) and v.numel() == 1
        }
        for i, opt in enumerate(trainer.optimizers):
            metrics[f"{self.prefix}lr{'' if i == 0 else f'_{i}'}"] = opt.param_groups[0]["lr"]
        elapsed = time.perf_counter() - self._t0
        if self._seen and elapsed > 0:
            metrics[f"{self.prefix}train_samples_per_s"] = self._seen / elapsed
        tracking.log_metrics(metrics, step=trainer.current_epoch)
        sweep_report(metrics, trainer.current_epoch)  # a sweep's pruner (no-op outside one)


class RestoreRNG(Callback):
    """Save python, numpy and torch (CPU and CUDA) RNG states in every checkpoint and restore
    them on resume, so a resumed fit draws the augmentations, dropout masks and loader seeds
    an uninterrupted one would: on CPU the two give equal metrics.

    Lightning keeps the loop's epoch in the checkpoint and hands it to the samplers'
    `set_epoch`; the global generators are what it does not keep.
    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {  # plain types: checkpoints load with torch.load(weights_only=True)
            "python": random.getstate(),
            "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        name, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def build_trainer(
    trainer_cfg: Any,
    *,
    default_root_dir: str,
    monitor: str | None = None,
    mode: str = "max",
    patience: int | None = None,
    extra_callbacks: list[Callback] | None = None,
    metric_prefix: str = "",
) -> tuple[L.Trainer, ModelCheckpoint | None]:
    """A Trainer from config: device/precision resolved, best + last checkpoints, early stop.

    `trainer_cfg` holds Lightning Trainer arguments (`accelerator`, `devices`, `strategy`,
    `precision`, `max_epochs`, ...); `auto` accelerator/precision follow `shared.device`.
    """
    kwargs = to_dict(trainer_cfg)
    choice = select_device(kwargs.pop("accelerator", "auto"), kwargs.pop("precision", "auto"))
    callbacks: list[Callback] = [MLflowMetrics(metric_prefix), *(extra_callbacks or [])]
    ckpt = None
    if monitor:
        ckpt = ModelCheckpoint(
            dirpath=os.path.join(default_root_dir, "checkpoints"),
            filename="best",
            monitor=monitor,
            mode=mode,
            save_last=True,
        )
        callbacks.append(ckpt)
        if patience:
            callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    trainer = L.Trainer(
        accelerator=choice.accelerator if choice.accelerator != "cuda" else "gpu",
        precision=choice.precision,
        default_root_dir=default_root_dir,
        callbacks=callbacks,
        logger=False,
        enable_model_summary=False,
        **kwargs,
    )
    return trainer, ckpt


def warmup_cosine(
    step: int, warmup_steps: int, total_steps: int, min_factor: float = 0.01
) -> float:
    """LR factor: linear warmup to 1, then cosine decay to `min_factor` (LambdaLR)."""
    import math

    if step < warmup_steps:
        return (step + 1) / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def _is_embedding_name(name: str) -> bool:
    """`pos_embed`, `cls_token`, `word_embeddings`, ...: a lookup table, by its own name."""
    leaf = name.rsplit(".", 1)[-1]
    return "embed" in leaf or leaf.endswith("_token")


def weight_decay_groups(module: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: decay only weight matrices (ndim >= 2) that are not embeddings.

    As nanoGPT/minGPT's `configure_optimizers`: biases, norm scales, GeM's exponent (ndim < 2),
    `nn.Embedding` tables, embedding-named parameters (`pos_embed`, `cls_token`) and whatever a
    submodule lists in timm's `no_weight_decay()` are left undecayed; decaying them only pulls
    scales and lookups towards zero. A tied weight (GPT-2's head = `wte`) follows its first name.
    """
    no_decay: set[str] = set()
    for prefix, sub in module.named_modules():
        dot = f"{prefix}." if prefix else ""
        if isinstance(sub, torch.nn.Embedding):
            no_decay |= {f"{dot}{n}" for n, _ in sub.named_parameters(recurse=False)}
        listed = getattr(sub, "no_weight_decay", None)
        if callable(listed):
            no_decay |= {f"{dot}{n}" for n in listed()}
    decay, keep = [], []
    for name, p in module.named_parameters():
        skip = p.ndim < 2 or name in no_decay or _is_embedding_name(name)
        (keep if skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def adamw_warmup_cosine(module: L.LightningModule, optim: dict, betas=(0.9, 0.999)) -> dict:
    """`configure_optimizers` of every torch project: AdamW (decay on weight matrices only,
    `weight_decay_groups`), per-step warmup + cosine."""
    groups = weight_decay_groups(module, optim["weight_decay"])
    opt = torch.optim.AdamW(groups, lr=optim["lr"], betas=betas)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    warmup = int(optim["warmup_fraction"] * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: warmup_cosine(step, warmup, total, optim["min_lr_factor"])
    )
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
