import io

import h5py
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from PIL import Image

from projects.image_classifier.config import AugmentConfig, SamplingConfig
from projects.image_classifier.data import (
    LesionDataset,
    NegativeSubsampler,
    build_transforms,
    check_images,
    make_sampler,
)
from shared.config import validate
from shared.images import CorruptImageError, HDF5ImageStore
from tests.conftest import REPO

LOADER_YAML = REPO / "configs/image_classifier/loader/default.yaml"


def _store(tmp_path, ids, corrupt=()):
    path = tmp_path / "train-image.hdf5"
    with h5py.File(path, "w") as f:
        for i in ids:
            buf = io.BytesIO()
            Image.new("RGB", (40, 40), (150, 90, 60)).save(buf, "JPEG")
            data = b"garbage" if i in corrupt else buf.getvalue()
            f.create_dataset(i, data=np.bytes_(data))
    return HDF5ImageStore(path)


def test_dataset_decodes_real_hdf5_jpeg_bytes(tmp_path):
    store = _store(tmp_path, ["ISIC_1", "ISIC_2"])
    aug = validate(OmegaConf.load(LOADER_YAML).augment, AugmentConfig)
    for cache in (False, True):
        ds = LesionDataset(
            ["ISIC_1", "ISIC_2"],
            np.array([0, 1]),
            store,
            build_transforms(aug, 32, train=True),
            cache=cache,
        )
        x, y = ds[1]
        assert x.shape == (3, 32, 32) and x.dtype.is_floating_point and y.item() == 1.0


def test_subsampler_keeps_every_positive_and_redraws_negatives():
    targets = np.array([1] * 5 + [0] * 100)
    s = NegativeSubsampler(targets, neg_per_pos=3, seed=0)
    first, second = list(s), list(s)
    assert len(first) == len(s) == 20
    assert set(range(5)) <= set(first) and set(range(5)) <= set(second)
    assert set(first) != set(second)


def test_weighted_sampler_balances_classes():
    targets = np.array([1] * 10 + [0] * 990)
    sampler = make_sampler(
        targets, OmegaConf.structured(SamplingConfig(mode="weighted", neg_per_pos=1)), 0
    )
    drawn = targets[list(sampler)]
    assert 0.3 < drawn.mean() < 0.7


def test_ids_missing_from_the_hdf5_fail_before_training(tmp_path):
    store = _store(tmp_path, ["ISIC_1"])
    frame = pd.DataFrame({"isic_id": ["ISIC_1", "ISIC_7", "ISIC_8"], "target": [0, 0, 1]})
    with pytest.raises(KeyError, match=r"2 isic_id\(s\).*ISIC_7"):
        check_images(frame, store, "fail")


def test_corrupt_jpeg_fails_naming_it_or_is_skipped_with_a_count(tmp_path):
    store = _store(tmp_path, ["ISIC_1", "ISIC_2", "ISIC_3"], corrupt={"ISIC_2"})
    frame = pd.DataFrame({"isic_id": ["ISIC_1", "ISIC_2", "ISIC_3"], "target": [0, 1, 0]})
    with pytest.raises(CorruptImageError, match="ISIC_2"):
        check_images(frame, store, "fail")
    kept = check_images(frame, store, "skip")
    assert kept["isic_id"].tolist() == ["ISIC_1", "ISIC_3"]
    assert kept.attrs["n_corrupt_skipped"] == 1
