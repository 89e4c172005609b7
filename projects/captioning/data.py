"""Karpathy caption splits (`dataset_flickr8k.json`, `dataset_coco.json`, ...) and their images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from shared.errors import DataNotFoundError
from shared.images import FolderImageStore

HOW_TO_GET = (
    "Get the Karpathy split files (dataset_flickr8k.json, dataset_coco.json) from "
    "https://cs.stanford.edu/people/karpathy/deepimagesent/ and the images of the data set; "
    "set data.annotations and data.image_dir."
)
SPLITS = ("train", "val", "test")


def read_karpathy(
    annotations: str | Path, image_dir: str | Path, merge_restval: bool = True
) -> pd.DataFrame:
    """One row per image: `image_id, path, split, raw (list[str]), tokens (list[str])`.

    Fails naming the problem when a split is missing or an image file does not exist.
    """
    annotations = Path(annotations)
    if not annotations.is_file():
        raise DataNotFoundError(f"annotation file not found: {annotations.resolve()}. {HOW_TO_GET}")
    store = FolderImageStore(image_dir)
    data = json.loads(annotations.read_text())
    rows = []
    for img in data["images"]:
        split = "train" if merge_restval and img["split"] == "restval" else img["split"]
        rel = f"{img['filepath']}/{img['filename']}" if img.get("filepath") else img["filename"]
        rows.append(
            {
                "image_id": img.get("cocoid", img.get("imgid")),
                "path": rel,
                "split": split,
                "raw": [s["raw"] for s in img["sentences"]],
                "tokens": [" ".join(s["tokens"]) for s in img["sentences"]],
            }
        )
    df = pd.DataFrame(rows)
    missing_splits = [s for s in SPLITS if s not in set(df["split"])]
    if missing_splits:
        raise ValueError(f"{annotations.name} has no images in split(s) {missing_splits}")
    missing = store.missing(df["path"])
    if missing:
        raise DataNotFoundError(
            f"{len(missing)} image file(s) of {annotations.name} are missing under "
            f"{Path(image_dir).resolve()}, e.g. {missing[:3]}"
        )
    return df


def image_transform(size: int, train: bool, mean, std) -> v2.Compose:
    ops = [v2.ToImage(), v2.Resize((size, size), antialias=True)]
    if train:
        ops.append(v2.ColorJitter(0.1, 0.1, 0.1))  # no flips: captions say left and right
    return v2.Compose([*ops, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


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
    each time (every epoch sees every image once), evaluation takes the first."""

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
        image = self.transform(self.store.read(self.paths[i]))
        return image, torch.from_numpy(seq), torch.tensor(len(ids))


class CaptionDataModule(L.LightningDataModule):
    """Karpathy train/val/test splits as loaders; captions encoded once with the tokenizer.

    Training draws one of an image's captions at random each epoch; val and test keep every
    reference in `self.splits[s]["raw"]` for scoring.
    """

    def __init__(self, frame: pd.DataFrame, tokenizer: Any, data_cfg: Any, eval_batch_size: int):
        super().__init__()
        self.cfg, self.tok, self.eval_batch_size = data_cfg, tokenizer, eval_batch_size
        self.store = FolderImageStore(data_cfg.image_dir)
        self.splits = {s: frame[frame["split"] == s].reset_index(drop=True) for s in SPLITS}
        self.truncated = 0
        self.datasets = {s: self._dataset(s) for s in SPLITS}

    def _dataset(self, split: str) -> CaptionDataset:
        ids = []
        for caps in self.splits[split]["tokens"]:
            enc, cut = encode_captions(self.tok, caps, self.cfg.max_len)
            ids.append(enc)
            self.truncated += cut
        train = split == "train"
        transform = image_transform(self.cfg.image_size, train, self.cfg.mean, self.cfg.std)
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
