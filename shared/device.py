"""Device and precision selection: `auto` picks CUDA+bf16, then MPS, then CPU+fp32."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceChoice:
    accelerator: str  # Lightning's name: "cuda" | "mps" | "cpu"
    precision: str  # Lightning's precision string

    @property
    def torch_device(self) -> str:
        return {"cuda": "cuda", "mps": "mps"}.get(self.accelerator, "cpu")


def select_device(accelerator: str = "auto", precision: str = "auto") -> DeviceChoice:
    """Resolve `auto` accelerator/precision to what this machine has."""
    import torch

    if accelerator == "auto":
        if torch.cuda.is_available():
            accelerator = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            accelerator = "mps"
        else:
            accelerator = "cpu"
    if accelerator == "gpu":
        accelerator = "cuda"
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("accelerator=cuda asked for, but torch sees no CUDA device")
    if precision == "auto":
        if accelerator == "cuda" and torch.cuda.is_bf16_supported():
            precision = "bf16-mixed"
        elif accelerator == "cuda":
            precision = "16-mixed"
        else:
            precision = "32-true"
    return DeviceChoice(accelerator, precision)
