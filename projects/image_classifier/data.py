"""Lesion crops from the ISIC 2024 HDF5 store, with the shared folds and imbalance handling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from shared.config import ConfigError
from shared.datasets import isic2024 as isic
from shared.datasets.isic2024_training import load_training_frame
from shared.errors import DataNotFoundError
from shared.folds import FOLD_COLUMN
from shared.images import CorruptImageError, DecodedImageCache, HDF5ImageStore
from shared.logging import get_logger

log = get_logger(__name__)


class TrunkFeatures:
    """A frozen trunk's output per image (`model.trunk_features`), read like an image store:
    datasets over it serve features, untransformed, to `LesionClassifier.forward_tail`."""

    def __init__(self, ids: list[str], features: torch.Tensor) -> None:
        self.index = {image_id: i for i, image_id in enumerate(ids)}
        self.features = features

    def read(self, image_id: str) -> torch.Tensor:
        return self.features[self.index[image_id]]


ImageSource = HDF5ImageStore | DecodedImageCache | TrunkFeatures  # what LesionDataset reads


def build_transforms(aug: Any, image_size: int, train: bool) -> v2.Compose:
    """torchvision v2 pipeline; every augmentation strength comes from config, the mean and
    std from the backbone (`model.with_backbone_preprocessing` resolves null ones first)."""
    if aug.mean is None or aug.std is None:
        raise ValueError("loader.augment.mean/std unresolved: use with_backbone_preprocessing")
    # Geometry first, on uint8 tensors at the target size: colour ops then touch few pixels.
    tail = [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(aug.mean), std=list(aug.std)),
    ]
    if not train:
        return eval_transform(image_size, aug.mean, aug.std)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(image_size, scale=tuple(aug.crop_scale), antialias=True),
            v2.RandomHorizontalFlip(aug.hflip),
            v2.RandomVerticalFlip(aug.vflip),
            v2.RandomRotation(aug.rotation_degrees),
            v2.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue),
            *tail,
        ]
    )


def eval_transform(image_size: int, mean: list[float], std: list[float]) -> v2.Compose:
    """Validation, OOF and serving preprocessing: resize, scale to [0, 1], normalise."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((image_size, image_size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


class LesionDataset(Dataset):
    """(image tensor, target) for each isic_id, read from `images` on access.

    `images` is the HDF5 store (each read decodes a JPEG) or its `DecodedImageCache` (each read
    is a memory-mapped SxSx3 uint8 slice, already resized to the training size); the
    transform then runs on that uint8 image either way.
    """

    def __init__(
        self,
        ids: list[str],
        targets: np.ndarray,
        images: ImageSource,
        transform,
    ):
        self.ids, self.targets = list(ids), np.asarray(targets, dtype=np.float32)
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images.read(self.ids[i])
        if self.transform is not None:  # None: trunk features, served as computed
            x = self.transform(v2.functional.to_image(x))
        return x, torch.tensor(self.targets[i])


class NegativeSubsampler(Sampler[int]):
    """Every positive plus a fresh random `neg_per_pos` negatives per positive each epoch.

    The draw depends only on (seed, epoch): Lightning calls `set_epoch` with the loop's epoch,
    which it restores from a checkpoint, so a resumed fold draws the negatives it would have.
    """

    def __init__(self, targets: np.ndarray, neg_per_pos: float, seed: int) -> None:
        self.pos = np.flatnonzero(targets == 1)
        self.neg = np.flatnonzero(targets == 0)
        self.n_neg = min(len(self.neg), int(round(neg_per_pos * max(1, len(self.pos)))))
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pos) + self.n_neg

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch,)))
        self.epoch += 1  # without set_epoch (plain loops), the next pass still redraws
        idx = np.concatenate([self.pos, rng.choice(self.neg, self.n_neg, replace=False)])
        return iter(rng.permutation(idx).tolist())


class WeightedClassSampler(Sampler[int]):
    """Draws with replacement so that positives : negatives = 1 : `neg_per_pos` on average.

    Each positive has weight 1 / n_pos and each negative neg_per_pos / n_neg: the classes'
    total weights are then in the ratio 1 : neg_per_pos, as with `subsample`. Seeded by
    (seed, epoch) like NegativeSubsampler, so resume replays nothing.
    """

    def __init__(self, targets: np.ndarray, neg_per_pos: float, seed: int) -> None:
        n_pos = max(1, int((targets == 1).sum()))
        n_neg = max(1, int((targets == 0).sum()))
        self.weights = torch.as_tensor(np.where(targets == 1, 1.0 / n_pos, neg_per_pos / n_neg))
        self.n = int(round(n_pos * (1 + neg_per_pos)))
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        return iter(torch.multinomial(self.weights, self.n, True, generator=gen).tolist())


SAMPLING_MODES = ("subsample", "weighted", "none")
SELECTIONS = ("inner", "fixed")


def check_options(sampling_mode: str, selection: str, inner_fraction: float) -> None:
    """Fail at start-up, naming the key, on a value the loaders would reject mid-run."""
    if sampling_mode not in SAMPLING_MODES:
        raise ConfigError(
            f"config key 'loader.sampling.mode': one of {SAMPLING_MODES}, got {sampling_mode!r}"
        )
    if selection not in SELECTIONS:
        raise ConfigError(f"config key 'cv.selection': one of {SELECTIONS}, got {selection!r}")
    if selection == "inner" and not 0.0 < inner_fraction < 1.0:
        raise ConfigError(
            f"config key 'cv.inner_fraction': must be in (0, 1), got {inner_fraction}"
        )


def check_trunk_cache(cfg: Any) -> None:
    """`loader.trunk_cache` serves features computed once from the evaluation transform: it
    needs a frozen trunk, and neither augmentation nor flip TTA can reach those features."""
    if not cfg.loader.trunk_cache:
        return
    if cfg.model.freeze_blocks < 1:
        raise ConfigError(
            "config key 'loader.trunk_cache': needs model.freeze_blocks >= 1 (a frozen trunk)"
        )
    if cfg.cv.tta:
        raise ConfigError(
            "config key 'loader.trunk_cache': flip TTA needs the flipped images' features; "
            "set cv.tta=false"
        )


def make_sampler(targets: np.ndarray, sampling: Any, seed: int) -> Sampler[int] | None:
    """`subsample` (per-epoch negatives), `weighted` (class-weighted draws) or `none`."""
    if sampling.mode == "none":
        return None
    if sampling.mode == "subsample":
        return NegativeSubsampler(targets, sampling.neg_per_pos, seed)
    check_options(sampling.mode, "fixed", 0.0)
    return WeightedClassSampler(targets, sampling.neg_per_pos, seed)


def inner_split(frame: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Mask of the rows whose patients form the inner validation split of `frame`.

    Grouped by patient (no patient on both sides) and stratified by whether a patient has a
    positive lesion, so the split sees positives whenever the training folds have them. It is
    drawn from the training folds only: the scored fold never chooses an epoch.
    """
    has_pos = frame.groupby(isic.PATIENT)[isic.TARGET].max()
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for label in (1, 0):
        patients = np.sort(has_pos.index[has_pos == label].to_numpy().astype(str))
        n = int(round(fraction * len(patients)))
        if len(patients) > 1:
            chosen += rng.permutation(patients)[: max(1, n)].tolist()
    return frame[isic.PATIENT].astype(str).isin(chosen).to_numpy()


def check_images(frame: pd.DataFrame, images: ImageSource, on_corrupt: str) -> pd.DataFrame:
    """Fail before training on ids missing from the HDF5; decode each image once.

    Corrupt images fail naming their id (`on_corrupt=fail`) or are dropped with a count
    (`on_corrupt=skip`). With the decode cache the build has decoded every image already:
    its record of corrupt ids is used instead of decoding again.
    """
    if isinstance(images, DecodedImageCache):
        missing = [i for i in frame[isic.ID] if i not in images.index]
    else:
        missing = images.missing(frame[isic.ID])
    if missing:
        raise KeyError(
            f"{len(missing)} isic_id(s) of the metadata are missing from {images_path(images)}: "
            f"{missing[:5]}"
        )
    bad = []
    for image_id in frame[isic.ID]:
        try:
            if isinstance(images, DecodedImageCache):
                if image_id in images.corrupt:
                    raise CorruptImageError(images.corrupt[image_id])
            else:
                images.read(image_id)
        except CorruptImageError:
            if on_corrupt == "fail":
                raise
            bad.append(image_id)
    if bad:
        log.warning("skipping %d corrupt images, e.g. %s", len(bad), bad[:5])
    frame = frame[~frame[isic.ID].isin(bad)].reset_index(drop=True)
    frame.attrs["n_corrupt_skipped"] = len(bad)
    return frame


def images_path(images: ImageSource) -> Path:
    return images.path if isinstance(images, HDF5ImageStore) else images.folder


def load_lesions(
    data_cfg: Any, loader_cfg: Any, cache_dir: str | None = None
) -> tuple[pd.DataFrame, HDF5ImageStore, ImageSource]:
    """`isic_id, patient_id, target, fold` of the training images, checked against the HDF5
    store before any training (missing ids fail; corrupt JPEGs fail or are skipped), the
    store, and what the datasets read: with `loader.cache` the store's decode cache at
    `loader.image_size` in `cache_dir` (built on first use, by `loader.num_workers`
    processes), else the store itself."""
    df = load_training_frame(data_cfg)[[isic.ID, isic.PATIENT, isic.TARGET, FOLD_COLUMN]]
    _, h5 = isic.train_paths(data_cfg.dir)
    if not h5.is_file():
        raise DataNotFoundError(
            f"{isic.TRAIN_HDF5} not found in {h5.parent.resolve()}. {isic.HOW_TO_GET}"
        )
    store = HDF5ImageStore(h5)
    images: ImageSource = store
    if loader_cfg.cache:
        if cache_dir is None:
            raise ConfigError("config key 'paths.cache_dir': needed with loader.cache=true")
        images = DecodedImageCache.open_or_build(
            store, loader_cfg.image_size, cache_dir, loader_cfg.num_workers
        )
        log.info("decode cache %s (%.1f MB)", images.folder, images.nbytes / 1e6)
    if loader_cfg.verify_images or loader_cfg.cache:  # free with the cache: no decoding
        return check_images(df, images, loader_cfg.on_corrupt), store, images
    missing = store.missing(df[isic.ID])
    if missing:
        raise KeyError(f"{len(missing)} isic_id(s) missing from {h5}: {missing[:5]}")
    return df, store, images


class LesionDataModule(L.LightningDataModule):
    """The loaders of one fold k: training, and for validation `val_names` in order.

    `selection=inner`: the training folds' patients are split into a training part and an inner
    validation part (`val`, which chooses the epoch); `fixed`: every training-fold row trains.
    Fold k (`heldout`) is evaluated after each epoch for the learning curves, never to choose
    (with `inner`, only when `heldout_curves`: it costs as much as the inner validation).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        fold: int,
        images: ImageSource,
        cfg: Any,
        seed: int,
        selection: str,
        inner_fraction: float,
        heldout_curves: bool = True,
    ) -> None:
        super().__init__()
        check_options("none", selection, inner_fraction)  # train.run checks at start-up too
        self.cfg, self.images, self.seed = cfg, images, seed
        pool = frame[frame[FOLD_COLUMN] != fold].reset_index(drop=True)
        self.heldout_df = frame[frame[FOLD_COLUMN] == fold].reset_index(drop=True)
        if selection == "inner":
            inner = inner_split(pool, inner_fraction, seed)
            self.train_df = pool[~inner].reset_index(drop=True)
            self.select_df: pd.DataFrame | None = pool[inner].reset_index(drop=True)
        else:
            self.train_df, self.select_df = pool, None
        if self.select_df is None:
            self.val_names = ["heldout"]
        else:
            self.val_names = ["val", "heldout"] if heldout_curves else ["val"]

    def _dataset(self, df: pd.DataFrame, train: bool) -> LesionDataset:
        features = isinstance(self.images, TrunkFeatures)
        t = None if features else build_transforms(self.cfg.augment, self.cfg.image_size, train)
        return LesionDataset(
            df[isic.ID].tolist(),
            df[isic.TARGET].to_numpy(),
            self.images,
            t,
        )

    def _loader(self, ds: Dataset, persistent: bool = True, **kw) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            num_workers=self.cfg.num_workers,
            persistent_workers=persistent and self.cfg.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            **kw,
        )

    def train_dataloader(self) -> DataLoader:
        targets = self.train_df[isic.TARGET].to_numpy()
        sampler = make_sampler(targets, self.cfg.sampling, self.seed)
        return self._loader(
            self._dataset(self.train_df, True),
            sampler=sampler,
            shuffle=sampler is None,
            drop_last=len(targets) > self.cfg.batch_size,
        )

    def heldout_dataset(self) -> LesionDataset:
        """Fold k with the evaluation transform: what the OOF scores are predicted on."""
        return self._dataset(self.heldout_df, False)

    def heldout_dataloader(self) -> DataLoader:
        """Fold k in order, read by `loader.num_workers` workers (one pass: not persistent)."""
        return self._loader(self.heldout_dataset(), persistent=False, shuffle=False)

    def val_dataloader(self) -> list[DataLoader]:
        frames = {"val": self.select_df, "heldout": self.heldout_df}
        return [
            self._loader(self._dataset(frames[n], False), shuffle=False) for n in self.val_names
        ]
