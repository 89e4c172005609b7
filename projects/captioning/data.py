"""Karpathy caption splits (`dataset_flickr8k.json`, `dataset_coco.json`, ...) and their images."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from shared.config import ConfigError
from shared.errors import DataNotFoundError, InputError
from shared.images import CorruptImageError, FolderImageStore
from shared.logging import get_logger

log = get_logger(__name__)

HOW_TO_GET = (
    "Get the Karpathy split files (dataset_flickr8k.json, dataset_coco.json) from "
    "https://cs.stanford.edu/people/karpathy/deepimagesent/ and the images of the data set; "
    "set data.annotations and data.image_dir."
)
SPLITS = ("train", "val", "test")
ON_CORRUPT = ("fail", "skip")


class AnnotationError(InputError, ValueError):
    """The annotations file is not a Karpathy split; the message names the file and where."""


def _load_json(path: Path) -> Any:
    """The parsed file, or an AnnotationError naming the file, line and column."""
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} "
            f"(character {exc.pos}): {exc.msg}"
        ) from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text at byte {exc.start}") from None


def _image_row(img: dict, merge_restval: bool) -> dict:
    split = "train" if merge_restval and img["split"] == "restval" else img["split"]
    rel = f"{img['filepath']}/{img['filename']}" if img.get("filepath") else img["filename"]
    return {
        "image_id": img.get("cocoid", img.get("imgid")),
        "path": rel,
        "split": split,
        "raw": [s["raw"] for s in img["sentences"]],
        "tokens": [" ".join(s["tokens"]) for s in img["sentences"]],
    }


def read_karpathy(
    annotations: str | Path, image_dir: str | Path, merge_restval: bool = True
) -> pd.DataFrame:
    """One row per image: `image_id, path, split, raw (list[str]), tokens (list[str])`.

    Fails naming the problem (InputError) when the file is not valid JSON (file, line and
    column), an entry lacks a field, a split is missing or an image file does not exist.
    """
    annotations = Path(annotations)
    if not annotations.is_file():
        raise DataNotFoundError(f"annotation file not found: {annotations.resolve()}. {HOW_TO_GET}")
    store = FolderImageStore(image_dir)
    data = _load_json(annotations)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise AnnotationError(f"{annotations}: expected an object with an 'images' list")
    rows = []
    for i, img in enumerate(data["images"]):
        try:
            rows.append(_image_row(img, merge_restval))
        except (KeyError, TypeError) as exc:
            raise AnnotationError(
                f"{annotations}: images[{i}] is not a Karpathy entry "
                f"(needs filename, split, sentences with raw and tokens): {exc!r}"
            ) from None
    df = pd.DataFrame(rows, columns=["image_id", "path", "split", "raw", "tokens"])
    missing_splits = [s for s in SPLITS if s not in set(df["split"])]
    if missing_splits:
        raise AnnotationError(f"{annotations.name} has no images in split(s) {missing_splits}")
    missing = store.missing(df["path"])
    if missing:
        raise DataNotFoundError(
            f"{len(missing)} image file(s) of {annotations.name} are missing under "
            f"{Path(image_dir).resolve()}, e.g. {missing[:3]}"
        )
    return df


def check_images(
    frame: pd.DataFrame, store: FolderImageStore, on_corrupt: str, workers: int = 4
) -> pd.DataFrame:
    """Decode every image once before training (threads: Pillow decodes without the GIL).

    A corrupt image fails naming its path (`on_corrupt=fail`) or its row is dropped, counted
    in `frame.attrs["n_corrupt_skipped"]` and logged (`on_corrupt=skip`).
    """
    if on_corrupt not in ON_CORRUPT:
        raise ConfigError(
            f"config key 'data.on_corrupt': {on_corrupt!r} is not one of {ON_CORRUPT}"
        )

    def corrupt(path: str) -> CorruptImageError | None:
        try:
            store.read(path)
        except CorruptImageError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        errors = list(pool.map(corrupt, frame["path"]))
    bad = [p for p, e in zip(frame["path"], errors) if e is not None]
    if bad and on_corrupt == "fail":
        first = next(e for e in errors if e is not None)
        raise CorruptImageError(
            f"{first} (under {store.root}; {len(bad)} corrupt in all; "
            "data.on_corrupt=skip drops them)"
        )
    if bad:
        log.warning("skipping %d corrupt image(s), e.g. %s", len(bad), bad[:5])
    kept = frame[~frame["path"].isin(bad)].reset_index(drop=True)
    kept.attrs["n_corrupt_skipped"] = len(bad)
    return kept


def load_captions(data_cfg: Any) -> tuple[pd.DataFrame, FolderImageStore]:
    """The Karpathy frame with every image decoded once (corrupt ones fail or are skipped)."""
    frame = read_karpathy(data_cfg.annotations, data_cfg.image_dir, data_cfg.merge_restval)
    store = FolderImageStore(data_cfg.image_dir)
    workers = max(1, min(8, os.cpu_count() or 1))
    return check_images(frame, store, data_cfg.on_corrupt, workers), store


def image_transform(
    size: int, train: bool, mean, std, interpolation: str = "bilinear"
) -> v2.Compose:
    """Resize the whole image to size x size (no crop: captions describe all of it)."""
    mode = v2.InterpolationMode(interpolation)
    ops = [v2.ToImage(), v2.Resize((size, size), interpolation=mode, antialias=True)]
    if train:
        ops.append(v2.ColorJitter(0.1, 0.1, 0.1))  # no flips: captions say left and right
    return v2.Compose([*ops, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def preprocessing_transform(pre: dict, train: bool) -> v2.Compose:
    """`image_transform` from a `resolve_preprocessing` dict (training and the served model)."""
    return image_transform(pre["image_size"], train, pre["mean"], pre["std"], pre["interpolation"])


def encode_captions(tokenizer, captions: list[str], max_len: int) -> tuple[list[list[int]], int]:
    """BOS + ids + EOS, cut to max_len + 1 tokens; returns the ids and how many were cut."""
    out, cut = [], 0
    for c in captions:
        ids = [tokenizer.bos_id, *tokenizer.encode(c), tokenizer.eos_id]
        if len(ids) > max_len + 1:
            ids, cut = ids[: max_len + 1], cut + 1
        out.append(ids)
    return out, cut


class CaptionDataset(Dataset):
    """(image, caption ids, length) per image; training draws one of its captions at random
    each time (every epoch sees every image once), evaluation takes the first. With `features`
    set (a frozen backbone's tokens, one row per image) those replace the image."""

    def __init__(
        self,
        frame: pd.DataFrame,
        store: FolderImageStore,
        transform,
        token_ids: list[list[list[int]]],
        pad_id: int,
        max_len: int,
        random_caption: bool,
    ) -> None:
        self.paths = frame["path"].tolist()
        self.features: torch.Tensor | None = None  # CaptionDataModule.use_features
        self.store, self.transform = store, transform
        self.token_ids, self.pad_id, self.max_len = token_ids, pad_id, max_len
        self.random_caption = random_caption

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        caps = self.token_ids[i]
        j = int(torch.randint(len(caps), (1,))) if self.random_caption else 0
        ids = caps[j]
        seq = np.full(self.max_len + 1, self.pad_id, dtype=np.int64)
        seq[: len(ids)] = ids
        if self.features is not None:
            image = self.features[i]
        else:
            image = self.transform(self.store.read(self.paths[i]))
        return image, torch.from_numpy(seq), torch.tensor(len(ids))


class CaptionDataModule(L.LightningDataModule):
    """Karpathy train/val/test splits as loaders; captions encoded once with the tokenizer.

    Training draws one of an image's captions at random each epoch; val and test keep every
    reference in `self.splits[s]["raw"]` for scoring. `use_features` swaps the images for a
    frozen backbone's tokens (one tensor per split, in split order).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        tokenizer: Any,
        data_cfg: Any,
        preprocessing: dict,
        eval_batch_size: int,
    ) -> None:
        super().__init__()
        self.cfg, self.tok, self.eval_batch_size = data_cfg, tokenizer, eval_batch_size
        self.preprocessing = preprocessing
        self.store = FolderImageStore(data_cfg.image_dir)
        self.splits = {s: frame[frame["split"] == s].reset_index(drop=True) for s in SPLITS}
        self.truncated = 0
        self.datasets = {s: self._dataset(s) for s in SPLITS}

    def image_loader(self, split: str) -> DataLoader:
        """The split's images in order with the evaluation transform (no augmentation, no
        cached features): what a frozen backbone's features are computed from."""
        ds = self.datasets[split]
        plain = CaptionDataset(
            self.splits[split],
            self.store,
            preprocessing_transform(self.preprocessing, False),
            ds.token_ids,
            ds.pad_id,
            ds.max_len,
            random_caption=False,
        )
        return DataLoader(plain, batch_size=self.eval_batch_size, num_workers=self.cfg.num_workers)

    def use_features(self, features: dict[str, torch.Tensor]) -> None:
        """Serve `features[split]` instead of each split's images from now on."""
        for split, ds in self.datasets.items():
            if len(features[split]) != len(ds):
                raise ValueError(
                    f"{len(features[split])} feature rows for {len(ds)} {split} images"
                )
            ds.features = features[split]

    def _dataset(self, split: str) -> CaptionDataset:
        ids = []
        for caps in self.splits[split]["tokens"]:
            enc, cut = encode_captions(self.tok, caps, self.cfg.max_len)
            ids.append(enc)
            self.truncated += cut
        train = split == "train"
        transform = preprocessing_transform(self.preprocessing, train)
        return CaptionDataset(
            self.splits[split],
            self.store,
            transform,
            ids,
            self.tok.pad_id,
            self.cfg.max_len,
            random_caption=train,
        )

    def loader(self, split: str) -> DataLoader:
        train = split == "train"
        return DataLoader(
            self.datasets[split],
            batch_size=self.cfg.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.cfg.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")


def most_common_caption(frame: pd.DataFrame) -> str:
    """The training split's most frequent caption, tokenised (the trivial baseline to beat);
    ties go to the alphabetically first."""
    counts = frame.loc[frame["split"] == "train", "tokens"].explode().value_counts()
    return str(min(counts[counts == counts.max()].index))
