"""The decode cache: built once per (HDF5 file, size), atomically, and read by workers as the
same uint8 images the uncached evaluation path computes."""

import os
import pickle

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

import shared.images as images_mod
from projects.image_classifier.config import AugmentConfig
from projects.image_classifier.data import LesionDataset, build_transforms
from shared.config import validate
from shared.images import DecodedImageCache, HDF5ImageStore, write_hdf5_jpegs
from tests.helpers import REPO

SIZES = {"ISIC_1": (70, 90), "ISIC_2": (40, 40), "ISIC_3": (133, 101), "ISIC_4": (20, 28)}


def _write(path, seed=0):
    rng = np.random.default_rng(seed)
    images = {i: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for i, (h, w) in SIZES.items()}
    write_hdf5_jpegs(path, images)
    return HDF5ImageStore(path)


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    real = images_mod.decode_image

    def counting(data, image_id, max_pixels=images_mod.DEFAULT_MAX_PIXELS):
        calls.append(image_id)
        return real(data, image_id, max_pixels)

    monkeypatch.setattr(images_mod, "decode_image", counting)
    return calls


def test_cache_is_built_once_and_reused_without_decoding(tmp_path, count_decodes):
    store = _write(tmp_path / "train-image.hdf5")
    first = DecodedImageCache.open_or_build(store, 32, tmp_path / "cache")
    assert sorted(count_decodes) == sorted(SIZES)  # every image decoded exactly once
    again = DecodedImageCache.open_or_build(store, 32, tmp_path / "cache")  # next fold / run
    again.read("ISIC_3")
    assert len(count_decodes) == len(SIZES)  # no second decode
    assert again.folder == first.folder
    assert np.load(first.folder / "images.npy", mmap_mode="r").shape == (4, 32, 32, 3)


def test_cache_is_keyed_by_the_hdf5_contents_and_the_size(tmp_path):
    path = tmp_path / "train-image.hdf5"
    store = _write(path)
    a = DecodedImageCache.open_or_build(store, 32, tmp_path / "cache")
    b = DecodedImageCache.open_or_build(store, 16, tmp_path / "cache")
    assert a.folder != b.folder and b.read("ISIC_1").shape == (16, 16, 3)
    old = a.read("ISIC_1")
    _write(tmp_path / "new.hdf5", seed=1)
    os.replace(tmp_path / "new.hdf5", path)  # the same file name and ids, new pixels
    c = DecodedImageCache.open_or_build(HDF5ImageStore(path), 32, tmp_path / "cache")
    assert c.folder not in (a.folder, b.folder)
    assert not np.array_equal(c.read("ISIC_1"), old)


@pytest.mark.parametrize("workers", [0, 2])
def test_cached_images_give_the_uncached_eval_tensors(tmp_path, workers):
    """The resize done once at cache time is the eval transform's: identical tensors."""
    store = _write(tmp_path / "train-image.hdf5")
    cache = DecodedImageCache.open_or_build(store, 32, tmp_path / "cache", workers=workers)
    aug = OmegaConf.load(REPO / "configs/image_classifier/loader/default.yaml").augment
    aug.mean, aug.std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # a backbone's, resolved
    aug = validate(aug, AugmentConfig)
    t = build_transforms(aug, 32, train=False)
    ids = list(SIZES)
    plain = LesionDataset(ids, np.zeros(4), store, t)
    cached = LesionDataset(ids, np.zeros(4), cache, t)
    for i in range(len(ids)):
        assert torch.equal(plain[i][0], cached[i][0]), ids[i]


def test_training_transform_runs_on_the_cached_image(tmp_path):
    """Random-resized crops now cut the SxS cached image (documented in the README)."""
    store = _write(tmp_path / "train-image.hdf5")
    cache = DecodedImageCache.open_or_build(store, 32, tmp_path / "cache")
    aug = OmegaConf.load(REPO / "configs/image_classifier/loader/default.yaml").augment
    aug.mean, aug.std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # a backbone's, resolved
    aug = validate(aug, AugmentConfig)
    ds = LesionDataset(list(SIZES), np.zeros(4), cache, build_transforms(aug, 32, train=True))
    assert ds[2][0].shape == (3, 32, 32)


def test_workers_memory_map_the_cache_instead_of_receiving_a_copy(tmp_path):
    store = _write(tmp_path / "train-image.hdf5")
    cache = DecodedImageCache.open_or_build(store, 32, tmp_path / "cache")
    first = cache.read("ISIC_1")  # the parent maps the file
    assert cache.__getstate__()["_array"] is None  # what a spawned worker would be sent
    sent = pickle.loads(pickle.dumps(cache))
    assert len(pickle.dumps(cache)) < cache.nbytes and np.array_equal(sent.read("ISIC_1"), first)
    aug = OmegaConf.load(REPO / "configs/image_classifier/loader/default.yaml").augment
    aug.mean, aug.std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # a backbone's, resolved
    aug = validate(aug, AugmentConfig)
    ds = LesionDataset(list(SIZES), np.zeros(4), cache, build_transforms(aug, 32, train=False))
    loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
    assert sum(len(x) for x, _ in loader) == 4


def test_an_interrupted_build_is_never_loaded(tmp_path, monkeypatch):
    store = _write(tmp_path / "train-image.hdf5")
    real = images_mod._decode_chunk

    def dies(args):
        real(args)
        raise KeyboardInterrupt  # killed mid-build, after writing pixels

    monkeypatch.setattr(images_mod, "_decode_chunk", dies)
    with pytest.raises(KeyboardInterrupt):
        DecodedImageCache.open_or_build(store, 32, tmp_path / "cache")
    key = DecodedImageCache.key(store.path, 32)
    assert not (tmp_path / "cache" / key).exists()  # only a .tmp-* folder is left
    assert list((tmp_path / "cache").glob(f".tmp-{key}-*"))
    monkeypatch.setattr(images_mod, "_decode_chunk", real)
    cache = DecodedImageCache.open_or_build(store, 32, tmp_path / "cache")  # rebuilt whole
    assert cache.folder.name == key and not list((tmp_path / "cache").glob(".tmp-*"))
    assert all(cache.read(i).any() for i in SIZES)


def test_a_corrupt_image_is_recorded_by_id(tmp_path):
    store = _write(tmp_path / "train-image.hdf5")
    import h5py

    with h5py.File(store.path, "a") as f:
        f.create_dataset("ISIC_9", data=np.bytes_(b"garbage"))
    cache = DecodedImageCache.open_or_build(HDF5ImageStore(store.path), 32, tmp_path / "cache")
    assert set(cache.corrupt) == {"ISIC_9"} and "ISIC_9" in cache.corrupt["ISIC_9"]
    with pytest.raises(images_mod.CorruptImageError, match="ISIC_9"):
        cache.read("ISIC_9")
    assert os.path.getsize(cache.folder / "images.npy") == cache.nbytes
