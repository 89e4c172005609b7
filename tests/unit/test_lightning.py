"""The shared Lightning harness: the learning-rate schedule and the Trainer built from config."""

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import OmegaConf

from shared.config import TrainerConfig, validate
from shared.lightning import MLflowMetrics, adamw_warmup_cosine, build_trainer, warmup_cosine
from tests.helpers import REPO


def _trainer_cfg(**overrides):
    base = OmegaConf.load(REPO / "configs/common/trainer/default.yaml")
    return validate(OmegaConf.merge(base, overrides), TrainerConfig)


def test_warmup_rises_linearly_then_cosine_decays_to_the_floor():
    factors = [warmup_cosine(s, warmup_steps=4, total_steps=20, min_factor=0.1) for s in range(21)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(1.0)
    assert factors[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factors[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))  # never rises after warmup


def test_schedule_past_the_end_stays_at_the_floor():
    assert warmup_cosine(100, 0, 10, 0.05) == pytest.approx(0.05)


def test_trainer_from_config_resolves_the_device_and_adds_our_callbacks(tmp_path):
    trainer, ckpt = build_trainer(
        _trainer_cfg(max_epochs=3), default_root_dir=str(tmp_path), monitor="val_x", patience=2
    )
    assert trainer.max_epochs == 3
    assert not torch.cuda.is_available() or trainer.precision == "bf16-mixed"
    kinds = {type(c) for c in trainer.callbacks}
    assert {MLflowMetrics, ModelCheckpoint, EarlyStopping} <= kinds
    assert isinstance(ckpt, ModelCheckpoint) and ckpt.monitor == "val_x"
    assert ckpt.dirpath == str(tmp_path / "checkpoints")


def test_trainer_without_monitor_has_no_checkpoint_or_early_stop(tmp_path):
    trainer, ckpt = build_trainer(_trainer_cfg(), default_root_dir=str(tmp_path))
    assert ckpt is None
    assert not any(isinstance(c, EarlyStopping) for c in trainer.callbacks)


def test_gradient_clipping_and_accumulation_reach_the_trainer(tmp_path):
    trainer, _ = build_trainer(
        _trainer_cfg(gradient_clip_val=0.5, accumulate_grad_batches=4),
        default_root_dir=str(tmp_path),
    )
    assert trainer.gradient_clip_val == 0.5
    assert trainer.accumulate_grad_batches == 4


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.lrs = []

    def training_step(self, batch, batch_idx):
        self.lrs.append(self.optimizers().param_groups[0]["lr"])
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        optim = {"lr": 0.1, "weight_decay": 0.0, "warmup_fraction": 0.25, "min_lr_factor": 0.0}
        return adamw_warmup_cosine(self, optim)


def test_the_optimizer_steps_the_schedule_per_batch(tmp_path):
    data = torch.utils.data.TensorDataset(torch.randn(8, 2))
    module = _Tiny()
    trainer, _ = build_trainer(
        _trainer_cfg(accelerator="cpu", max_epochs=2, enable_progress_bar=False),
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=2))
    # 8 steps: 2 of warmup (0.05, 0.1), then cosine down towards 0
    assert module.lrs[:2] == pytest.approx([0.05, 0.1])
    assert module.lrs[2] == pytest.approx(0.1)
    assert module.lrs[-1] < 0.01
