"""Training throughput: the model alone vs the whole pipeline reading JPEGs from HDF5 (224 px).

python benchmarks/image_classifier.py [--backbone efficientnet_b0] [--batch 32] [--steps 4]
On a GPU it trains in bf16 with channels_last; on CPU in fp32. The ratio pipeline / model
near 1 means data loading is not the bottleneck.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from benchmarks._util import report  # noqa: E402
from projects.image_classifier.data import LesionDataset, build_transforms  # noqa: E402
from projects.image_classifier.model import LesionClassifier  # noqa: E402
from shared import REPO_ROOT  # noqa: E402
from shared.datasets.isic2024_synthetic import ensure_dataset  # noqa: E402
from shared.device import select_device  # noqa: E402
from shared.images import HDF5ImageStore  # noqa: E402


def train_rate(model, batches, device, steps, bf16) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seen, t0 = 0, None
    for i, (x, y) in enumerate(batches):
        if i == 1:  # the first step warms up kernels and workers
            t0, seen = time.perf_counter(), 0
        x = x.to(device, non_blocking=True).to(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
        if i == steps:
            break
    if device == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_b0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", default="data/bench/isic2024")
    args = parser.parse_args()
    device = select_device().torch_device
    bf16 = device == "cuda"
    smoke = OmegaConf.load(REPO_ROOT / "configs/common/isic2024/smoke.yaml").synthetic
    data = ensure_dataset(args.data, **smoke)
    ids = pd.read_csv(data / "train-metadata.csv", usecols=["isic_id"])["isic_id"].tolist()
    store = HDF5ImageStore(data / "train-image.hdf5")
    aug = OmegaConf.load(REPO_ROOT / "configs/image_classifier/loader/default.yaml").augment
    ds = LesionDataset(ids, [0.0] * len(ids), store, build_transforms(aug, args.size, True))
    n = args.batch * (args.steps + 1)
    loader = DataLoader(
        ds,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device == "cuda",
        persistent_workers=args.workers > 0,
    )

    t0 = time.perf_counter()
    for i, _ in enumerate(loader):
        if i == args.steps:
            break
    load_rate = n / (time.perf_counter() - t0)

    model = LesionClassifier(
        backbone=args.backbone, pretrained=False, gem_p=3.0, gem_eps=1e-6, dropout=0.2
    ).to(device)
    model = model.to(memory_format=torch.channels_last)
    fake = [(torch.randn(args.batch, 3, args.size, args.size), torch.rand(args.batch))] * (
        args.steps + 1
    )
    train_rate(model, fake, device, args.steps, bf16)  # warm-up: allocator, kernels, threads
    model_rate = train_rate(model, fake, device, args.steps, bf16)
    pipe_rate = train_rate(model, loader, device, args.steps, bf16)
    report(
        f"image_classifier {args.backbone} @ {args.size} px on {device} "
        f"({'bf16, channels_last' if bf16 else 'fp32'}), batch {args.batch}",
        [
            (
                "data loading alone (HDF5 + decode + augment)",
                f"{load_rate:,.1f} images/s ({args.workers} workers)",
            ),
            ("model alone (tensors in memory)", f"{model_rate:,.1f} images/s"),
            ("whole pipeline", f"{pipe_rate:,.1f} images/s"),
            ("pipeline / model", f"{pipe_rate / model_rate:.2f}"),
        ],
    )


if __name__ == "__main__":
    main()
