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

python benchmarks/image_classifier.py --mode full-eval --sizes real --n 50000 --workers 2
Issue 25: the 401k figures were extrapolated from 2,000 images of one size. `--sizes real` draws
each (square) crop's side from the ISIC 2024 training crops' range, 61-239 px with median 131,
deterministically from `--seed`; the decode cache then resizes each to the training size, as on
the real data. `--mode full-eval` times what a full run does with them: the cache build, then
one pass of the full config's evaluation loader over every cached image (`experiment=full`:
its image size, batch size and the backbone's normalisation, through the project's own
`LesionDataModule.heldout_dataloader`, the OOF path), with `--workers` workers where the full
config asks for 8. It prints a markdown table: generation, build time and images/s, cache size,
eval-loader images/s, peak memory of the process and its workers, and the 401,059-image figures
extrapolated linearly from `--n` (labelled as such).
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import shlex
import shutil
import sys
import threading
import time
from pathlib import Path
from statistics import NormalDist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from benchmarks._util import machine, report  # noqa: E402
from projects.image_classifier.data import (  # noqa: E402
    LesionDataModule,
    LesionDataset,
    build_transforms,
)
from projects.image_classifier.model import (  # noqa: E402
    LesionClassifier,
    with_backbone_preprocessing,
)
from shared import REPO_ROOT  # noqa: E402
from shared.config import compose  # noqa: E402
from shared.datasets import isic2024 as isic  # noqa: E402
from shared.device import select_device  # noqa: E402
from shared.folds import FOLD_COLUMN  # noqa: E402
from shared.images import DecodedImageCache, HDF5ImageStore, write_hdf5_jpegs  # noqa: E402

FULL_N = 401_059  # ISIC 2024 training images
REAL_SIDES = (61, 131, 239)  # ISIC 2024 training crops: smallest, median, largest side (px)


def real_sides(n: int, seed: int) -> np.ndarray:
    """`n` square crops' sides with the real crops' min, median and max (61, 131, 239 px).

    A log-normal around the median whose spread differs on each side so that -3 and +3 sigma
    land on the min and the max (beyond, clipped there), taken at `n` evenly spaced quantiles
    rather than drawn: the median is 131 and, for n of a few hundred or more, the min and max
    occur. `seed` only shuffles the order (the same seed, the same order).
    """
    low, median, high = REAL_SIDES
    inv_cdf = NormalDist().inv_cdf
    z = np.clip([inv_cdf((k + 0.5) / n) for k in range(n)], -3.0, 3.0)
    spread = np.where(z < 0, np.log(median / low), np.log(high / median)) / 3.0
    sides = np.rint(median * np.exp(spread * z)).astype(int)
    return np.random.default_rng(seed).permutation(sides)


def generate(path: Path, sides: np.ndarray, seed: int = 0) -> HDF5ImageStore:
    """One smooth lesion-like JPEG per entry of `sides`, side x side px (a blurred 8x8 colour
    field: JPEG sizes near real skin crops, unlike noise), reused when the file is there."""
    if not path.is_file():
        rng = np.random.default_rng(seed)
        tmp = path.with_suffix(".tmp")
        threads = torch.get_num_threads()
        # One thread: tiny interpolations on a busy machine are ~10x slower on two (OpenMP).
        torch.set_num_threads(1)

        def images():
            for i, side in enumerate(sides.tolist()):
                low = rng.integers(60, 220, (1, 3, 8, 8), dtype=np.uint8)
                t = torch.nn.functional.interpolate(
                    torch.from_numpy(low).float(), size=(side, side), mode="bicubic"
                )
                yield f"ISIC_{i:07d}", t[0].clamp(0, 255).byte().permute(1, 2, 0).numpy()

        try:
            write_hdf5_jpegs(tmp, images())
        finally:
            torch.set_num_threads(threads)
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


class PeakMemory:
    """Peak memory of this process and its children (build and loader workers), sampled from
    /proc/PID/smaps_rollup every `interval` s while the `with` block runs (Linux).

    Three sums over the processes, each the largest sampled: `rss` (resident pages: counts twice
    what forked workers share with their parent, and counts the decode cache's mapped pages,
    which are reclaimable page cache), `pss` (each shared page split between its sharers: the
    tree's real footprint) and `anon` (PSS of anonymous memory: the heaps, what grows with what
    the processes hold, without the mapped cache file).
    """

    FIELDS = {"Rss:": "rss", "Pss:": "pss", "Pss_Anon:": "anon"}

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = dict.fromkeys(self.FIELDS.values(), 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        total = dict.fromkeys(self.FIELDS.values(), 0)
        for proc in [me, *me.children(recursive=True)]:
            try:
                text = Path(f"/proc/{proc.pid}/smaps_rollup").read_text()
            except OSError:  # a worker that just exited
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key in self.FIELDS:
                    total[self.FIELDS[key]] += int(value.split()[0]) * 1024
        self.peak = {k: max(v, total[k]) for k, v in self.peak.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def __str__(self) -> str:
        gib = {k: v / 2**30 for k, v in self.peak.items()}
        return (
            f"PSS {gib['pss']:,.2f} GiB, of which anonymous {gib['anon']:,.2f} GiB "
            f"(RSS summed over processes {gib['rss']:,.2f} GiB)"
        )


def markdown_report(title: str, rows: list[tuple[str, str]], context: str) -> None:
    """`rows` as a markdown table under `title`, then the machine, the date and the command."""
    print(f"\n### {title}\n\n| figure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print(f"\n{context}\nMachine: {machine()}. Date: {datetime.date.today()}.")
    print(f"Command: `{command}`")


def evict_page_cache(path: Path) -> None:
    """Drop `path`'s clean pages from the page cache (no root needed): the next read comes
    from disk, as it does when a 401k-image cache (60 GB at 224 px) exceeds the RAM."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def crop_sides(args: argparse.Namespace) -> tuple[np.ndarray, Path]:
    """Each generated crop's side (`--sizes fixed`: `--size`; `real`: `real_sides`) and the
    HDF5 file they go to (one per setting, so a generated file is reused only when it fits)."""
    if args.sizes == "real":
        sides, name = real_sides(args.n, args.seed), f"n{args.n}-real-seed{args.seed}"
    else:
        sides, name = np.full(args.n, args.size), f"n{args.n}-{args.size}px"
    return sides, Path(args.data) / name / "train-image.hdf5"


def full_eval(args: argparse.Namespace) -> None:
    """Issue 25, item 3: generate `--n` crops, build the decode cache, then one pass of the
    full config's evaluation loader (the OOF path) over every cached image."""
    cfg = compose("image_classifier", ["experiment=full", f"loader.num_workers={args.workers}"])
    cfg = with_backbone_preprocessing(cfg)  # mean/std from the backbone, as train.py does
    loader_cfg = cfg.loader
    full_workers = compose("image_classifier", ["experiment=full"]).loader.num_workers
    size = loader_cfg.image_size
    sides, h5 = crop_sides(args)
    label = "real sizes" if args.sizes == "real" else f"{args.size} px"
    root = Path(args.data)
    t0 = time.perf_counter()
    store = generate(h5, sides, args.seed)
    gen_s = time.perf_counter() - t0
    cache_dir = root / "cache"
    if not args.keep_cache:
        shutil.rmtree(cache_dir, ignore_errors=True)
    with PeakMemory() as build_mem:
        t0 = time.perf_counter()
        cache = DecodedImageCache.open_or_build(store, size, cache_dir, args.workers)
        build_s = time.perf_counter() - t0

    evict_page_cache(cache.folder / "images.npy")
    frame = pd.DataFrame(
        {
            isic.ID: cache.ids,
            isic.PATIENT: [f"IP_{i // 50:07d}" for i in range(len(cache.ids))],
            isic.TARGET: 0,
            FOLD_COLUMN: 0,  # every image in the held-out fold: the pass covers them all
        }
    )
    dm = LesionDataModule(
        frame, 0, cache, loader_cfg, cfg.seed, "fixed", cfg.cv.inner_fraction, False
    )
    loader = dm.heldout_dataloader()
    with PeakMemory() as eval_mem:
        t0 = time.perf_counter()
        seen = sum(len(x) for x, _ in loader)
        eval_s = time.perf_counter() - t0
    assert seen == args.n, (seen, args.n)

    scale = FULL_N / args.n
    aug = loader_cfg.augment
    rows = [
        (
            f"generate {args.n:,} JPEG crops ({label})",
            f"{gen_s:,.1f} s (0 if reused); sides min {sides.min()}, median "
            f"{np.median(sides):.0f}, max {sides.max()} px; HDF5 {h5.stat().st_size / 1e6:,.0f} MB",
        ),
        (
            f"decode cache build at {size} px ({args.workers} processes)",
            f"{build_s:,.1f} s = {args.n / build_s:,.0f} images/s",
        ),
        ("decode cache size on disk", f"{cache.nbytes / 1e9:,.2f} GB"),
        ("peak memory during the build (process + workers)", str(build_mem)),
        (
            f"full-config eval loader, one pass over {args.n:,} images "
            f"(batch {loader_cfg.batch_size}, {loader_cfg.num_workers} workers, page cache "
            "evicted first)",
            f"{eval_s:,.1f} s = {args.n / eval_s:,.0f} images/s",
        ),
        ("peak memory during the eval pass (process + workers)", str(eval_mem)),
        (
            "peak RSS, main process / largest worker (whole run, getrusage)",
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:,.2f} / "
            f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20:,.2f} GiB",
        ),
        (
            f"EXTRAPOLATED from {args.n:,} to {FULL_N:,} images (linear, same machine)",
            f"build {build_s * scale / 60:,.1f} min, size {cache.nbytes * scale / 1e9:,.1f} GB, "
            f"one eval pass {eval_s * scale / 60:,.1f} min",
        ),
    ]
    markdown_report(
        f"image_classifier decode cache + full config eval loader, {args.n:,} generated crops",
        rows,
        f"Full config (`experiment=full`): {size} px, batch {loader_cfg.batch_size}, "
        f"mean {[round(v, 3) for v in aug.mean]} / std {[round(v, 3) for v in aug.std]} "
        f"from {cfg.model.backbone}; loader.num_workers {loader_cfg.num_workers} here (the "
        f"full config asks for {full_workers}). torch threads: {torch.get_num_threads()}.",
    )


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
    parser.add_argument(
        "--sizes",
        choices=("fixed", "real"),
        default="fixed",
        help="crop sides: all --size, or the real crops' 61-239 px (median 131)",
    )
    parser.add_argument("--seed", type=int, default=0, help="draws of --sizes real")
    parser.add_argument(
        "--mode",
        choices=("loader-vs-model", "full-eval"),
        default="loader-vs-model",
        help="loaders against a training step, or the full config's eval loader over the cache",
    )
    args = parser.parse_args()
    if args.mode == "full-eval":
        full_eval(args)
        return
    if args.n < args.batch * (args.steps + 1):
        parser.error(
            f"--n {args.n} is under --batch x (--steps + 1) = {args.batch * (args.steps + 1)}"
        )
    device = select_device().torch_device
    bf16 = device == "cuda"
    root = Path(args.data)
    t0 = time.perf_counter()
    sides, h5 = crop_sides(args)
    store = generate(h5, sides, args.seed)
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
        (
            f"generate {args.n:,} JPEGs at "
            + ("61-239 px (median 131)" if args.sizes == "real" else f"{args.size} px"),
            f"{gen_s:,.1f} s (0 if reused)",
        ),
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
