"""Does the loader keep up with the model at 224 px? Loader images/s (decode cache, and JPEGs
from HDF5 for comparison) against model images/s, and the decode cache's build time and size.

python benchmarks/image_classifier.py [--n 401059] [--size 224] [--batch 32] [--steps 4]
    [--workers 2] [--backbone efficientnet_b0]
Generates `--n` JPEGs at `--size` px into an HDF5 file (ISIC 2024 layout; 401,059 = the real
training set), builds the decode cache from it with `--workers` processes, then times the
DataLoader over the cache (training transforms) against a training step on tensors already in
memory. loader / model >= 1 means the loader is not the bottleneck. On a GPU the model trains
in bf16 with channels_last; on CPU in fp32. With a smaller `--n` the 401k build time and size
are also printed, extrapolated linearly (labelled as such).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from benchmarks._util import report  # noqa: E402
from projects.image_classifier.data import LesionDataset, build_transforms  # noqa: E402
from projects.image_classifier.model import LesionClassifier  # noqa: E402
from shared import REPO_ROOT  # noqa: E402
from shared.device import select_device  # noqa: E402
from shared.images import DecodedImageCache, HDF5ImageStore, write_hdf5_jpegs  # noqa: E402

FULL_N = 401_059  # ISIC 2024 training images


def generate(path: Path, n: int, size: int, seed: int = 0) -> HDF5ImageStore:
    """`n` smooth lesion-like JPEGs at size x size (a blurred 8x8 colour field: JPEG sizes
    near real skin crops, unlike noise), reused when the file is already there."""
    if not path.is_file():
        rng = np.random.default_rng(seed)
        tmp = path.with_suffix(".tmp")

        def images():
            for i in range(n):
                low = rng.integers(60, 220, (1, 3, 8, 8), dtype=np.uint8)
                t = torch.nn.functional.interpolate(
                    torch.from_numpy(low).float(), size=(size, size), mode="bicubic"
                )
                yield f"ISIC_{i:07d}", t[0].clamp(0, 255).byte().permute(1, 2, 0).numpy()

        write_hdf5_jpegs(tmp, images())
        tmp.rename(path)
    return HDF5ImageStore(path)


def loader_rate(loader: DataLoader, steps: int) -> float:
    """Images/s over `steps` batches after the first (workers started, files mapped)."""
    seen, t0 = 0, None
    for i, (x, _) in enumerate(loader):
        if i == 1:
            t0, seen = time.perf_counter(), 0
        seen += len(x)
        if i == steps:
            break
    return seen / (time.perf_counter() - t0)


def train_rate(model, batches, device: str, steps: int, bf16: bool) -> float:
    """Training images/s (AdamW, BCE on one logit) over `steps` batches after the first."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seen, t0 = 0, None
    for i, (x, y) in enumerate(batches):
        if i == 1:  # the first step warms up kernels and workers
            if device == "cuda":
                torch.cuda.synchronize()
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


def model_rate(backbone: str, size: int, batch: int, steps: int, device: str, bf16: bool):
    """Training images/s of the model alone on random tensors already in memory."""
    model = LesionClassifier(
        backbone=backbone, pretrained=False, gem_p=3.0, gem_eps=1e-6, dropout=0.2
    ).to(device)
    model = model.to(memory_format=torch.channels_last)
    fake = [(torch.randn(batch, 3, size, size), torch.rand(batch))] * (steps + 1)
    train_rate(model, fake, device, steps, bf16)  # warm-up: allocator, kernels, threads
    return model, train_rate(model, fake, device, steps, bf16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=FULL_N, help="generated images")
    parser.add_argument("--backbone", default="efficientnet_b0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", default="data/bench/image_classifier")
    parser.add_argument("--keep-cache", action="store_true", help="time a reuse, not a build")
    args = parser.parse_args()
    if args.n < args.batch * (args.steps + 1):
        parser.error(
            f"--n {args.n} is under --batch x (--steps + 1) = {args.batch * (args.steps + 1)}"
        )
    device = select_device().torch_device
    bf16 = device == "cuda"
    root = Path(args.data)
    t0 = time.perf_counter()
    store = generate(root / f"n{args.n}-{args.size}px" / "train-image.hdf5", args.n, args.size)
    gen_s = time.perf_counter() - t0
    cache_dir = root / "cache"
    if not args.keep_cache:
        shutil.rmtree(cache_dir, ignore_errors=True)
    t0 = time.perf_counter()
    cache = DecodedImageCache.open_or_build(store, args.size, cache_dir, args.workers)
    build_s = time.perf_counter() - t0

    aug = OmegaConf.load(REPO_ROOT / "configs/image_classifier/loader/default.yaml").augment
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    aug.mean = aug.mean or list(IMAGENET_DEFAULT_MEAN)  # null: the backbone's (EfficientNet's)
    aug.std = aug.std or list(IMAGENET_DEFAULT_STD)
    transform = build_transforms(aug, args.size, train=True)
    rng = np.random.default_rng(0)
    ids = [cache.ids[i] for i in rng.permutation(len(cache.ids))]
    evaluation = build_transforms(aug, args.size, train=False)  # validation, OOF, TTA
    rates = {}
    for name, images in (("cache", cache), ("hdf5", store)):
        for split, t in (("train", transform), ("eval", evaluation)):
            ds = LesionDataset(ids, np.zeros(len(ids)), images, t)
            loader = DataLoader(
                ds, batch_size=args.batch, num_workers=args.workers, pin_memory=device == "cuda"
            )
            rates[name, split] = loader_rate(loader, args.steps)
    model, model_ips = model_rate(args.backbone, args.size, args.batch, args.steps, device, bf16)
    ds = LesionDataset(ids, np.zeros(len(ids)), cache, transform)
    loader = DataLoader(
        ds, batch_size=args.batch, num_workers=args.workers, pin_memory=device == "cuda"
    )
    pipe_ips = train_rate(model, loader, device, args.steps, bf16)

    rows = [
        (f"generate {args.n:,} JPEGs at {args.size} px", f"{gen_s:,.1f} s (0 if reused)"),
        (
            f"decode cache build ({args.workers} workers)",
            f"{build_s:,.2f} s = {args.n / build_s:,.0f} images/s",
        ),
        ("decode cache size", f"{cache.nbytes / 1e9:,.3f} GB"),
        ("loader, decode cache + train transforms", f"{rates['cache', 'train']:,.1f} images/s"),
        ("loader, JPEG from HDF5 + train transforms", f"{rates['hdf5', 'train']:,.1f} images/s"),
        ("loader, decode cache + eval transform", f"{rates['cache', 'eval']:,.1f} images/s"),
        ("loader, JPEG from HDF5 + eval transform", f"{rates['hdf5', 'eval']:,.1f} images/s"),
        ("model alone (tensors in memory)", f"{model_ips:,.1f} images/s"),
        (
            "loader (cache, train) / model",
            f"{rates['cache', 'train'] / model_ips:.2f}  (>= 1: loader keeps up)",
        ),
        ("whole pipeline (cache) / model", f"{pipe_ips / model_ips:.2f}"),
    ]
    if args.n != FULL_N:
        per_image = cache.nbytes / args.n
        rows += [
            (
                f"EXTRAPOLATED to {FULL_N:,} images (linear)",
                f"build {build_s * FULL_N / args.n / 60:,.1f} min, "
                f"size {per_image * FULL_N / 1e9:,.1f} GB",
            )
        ]
    report(
        f"image_classifier {args.backbone} @ {args.size} px on {device} "
        f"({'bf16, channels_last' if bf16 else 'fp32'}), batch {args.batch}, "
        f"{args.workers} loader workers, {args.n:,} generated images",
        rows,
    )


if __name__ == "__main__":
    main()
