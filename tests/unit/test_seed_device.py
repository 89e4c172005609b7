import random

import numpy as np
import torch

from shared.device import select_device
from shared.seed import seed_everything


def test_seed_everything_repeats_every_generator():
    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b


def test_auto_device_on_a_cpu_machine_is_cpu_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    d = select_device("auto", "auto")
    assert (d.accelerator, d.precision, d.torch_device) == ("cpu", "32-true", "cpu")


def test_explicit_precision_is_kept():
    assert select_device("cpu", "bf16-mixed").precision == "bf16-mixed"
