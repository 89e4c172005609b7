import io
import os

import h5py
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from projects.image_classifier.config import AugmentConfig, LoaderConfig, SamplingConfig
from projects.image_classifier.data import (
    LesionDataModule,
    LesionDataset,
    NegativeSubsampler,
    build_transforms,
    check_images,
    check_options,
    inner_split,
    make_sampler,
)
from shared.config import ConfigError, validate
from shared.images import CorruptImageError, DecodedImageCache, HDF5ImageStore
from tests.helpers import REPO

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


def _aug():
    """The loader's augmentation with the normalisation a timm ImageNet backbone resolves."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    aug = OmegaConf.load(LOADER_YAML).augment
    aug.mean, aug.std = list(IMAGENET_DEFAULT_MEAN), list(IMAGENET_DEFAULT_STD)
    return validate(aug, AugmentConfig)


def test_dataset_decodes_real_hdf5_jpeg_bytes(tmp_path):
    store = _store(tmp_path, ["ISIC_1", "ISIC_2"])
    aug = _aug()
    for images in (store, DecodedImageCache.open_or_build(store, 32, tmp_path / "cache")):
        ds = LesionDataset(
            ["ISIC_1", "ISIC_2"],
            np.array([0, 1]),
            images,
            build_transforms(aug, 32, train=True),
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


def test_subsampler_draw_depends_on_the_epoch_it_is_given():
    """A resumed fold gets `set_epoch(e)` from Lightning and must draw epoch e's negatives."""
    targets = np.array([1] * 5 + [0] * 100)
    uninterrupted = NegativeSubsampler(targets, neg_per_pos=3, seed=7)
    epochs = [list(uninterrupted) for _ in range(3)]
    resumed = NegativeSubsampler(targets, neg_per_pos=3, seed=7)
    resumed.set_epoch(2)
    assert list(resumed) == epochs[2]
    assert epochs[1] != epochs[2]


@pytest.mark.parametrize("mode", ["weighted", "subsample"])
def test_sampler_draws_neg_per_pos_negatives_per_positive(mode):
    targets = np.array([1] * 100 + [0] * 5000)
    sampling = OmegaConf.structured(SamplingConfig(mode=mode, neg_per_pos=20))
    sampler = make_sampler(targets, sampling, 0)
    drawn = targets[list(sampler)]
    assert len(drawn) == 100 * 21
    assert abs(drawn.mean() - 1 / 21) < 0.01  # 4.8% positives, not 95%


def test_weighted_sampler_redraws_each_epoch_and_replays_a_given_epoch():
    targets = np.array([1] * 10 + [0] * 300)
    sampling = OmegaConf.structured(SamplingConfig(mode="weighted", neg_per_pos=4))
    a = make_sampler(targets, sampling, 3)
    first, second = list(a), list(a)
    b = make_sampler(targets, sampling, 3)
    b.set_epoch(1)
    assert first != second and list(b) == second


def test_inner_split_is_grouped_by_patient_and_holds_positives():
    rng = np.random.default_rng(0)
    patients = np.repeat([f"IP_{i}" for i in range(50)], 10)
    target = np.zeros(500, dtype=int)
    target[rng.choice(np.flatnonzero(patients < "IP_2"), 8, replace=False)] = 1  # ~12 patients
    frame = pd.DataFrame({"patient_id": patients, "target": target})
    inner = inner_split(frame, 0.2, seed=1)
    assert set(frame.patient_id[inner]).isdisjoint(frame.patient_id[~inner])
    assert frame.patient_id[inner].nunique() == pytest.approx(10, abs=1)
    assert frame.target[inner].sum() > 0 and frame.target[~inner].sum() > 0
    assert (inner_split(frame, 0.2, seed=1) == inner).all()


def test_hdf5_store_opened_before_fork_is_reopened_in_each_worker(tmp_path, monkeypatch):
    """HDF5 handles are not fork-safe: a DataLoader worker must never read through the
    parent's. Each open is recorded (by pid) in a file, which forked workers append to."""
    ids = [f"ISIC_{i}" for i in range(8)]
    store = _store(tmp_path, ids)
    opens = tmp_path / "opens.txt"
    real_file = h5py.File

    def recording_file(*args, **kwargs):
        with opens.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return real_file(*args, **kwargs)

    monkeypatch.setattr(h5py, "File", recording_file)
    assert store.missing(ids) == []  # the parent opens the file first, as load_lesions does
    ds = LesionDataset(ids, np.zeros(8), store, build_transforms(_aug(), 16, train=False))
    loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
    assert sum(len(x) for x, _ in loader) == 8
    pids = set(opens.read_text().split())
    assert str(os.getpid()) in pids and len(pids) == 3  # the parent and both workers


@pytest.mark.parametrize(
    "options, key",
    [
        (("weigthed", "inner", 0.2), "loader.sampling.mode"),
        (("weighted", "inne", 0.2), "cv.selection"),
        (("weighted", "inner", 1.0), "cv.inner_fraction"),
    ],
)
def test_a_bad_sampling_or_selection_value_fails_naming_the_key(options, key):
    check_options("subsample", "fixed", 5.0)  # the fraction only matters to inner
    with pytest.raises(ConfigError, match=key):
        check_options(*options)


def _source(store, cached, tmp_path):
    """The store itself, or its decode cache (the checks must hold for both)."""
    return DecodedImageCache.open_or_build(store, 16, tmp_path / "cache") if cached else store


@pytest.mark.parametrize("cached", [False, True])
def test_ids_missing_from_the_hdf5_fail_before_training(tmp_path, cached):
    store = _store(tmp_path, ["ISIC_1"])
    frame = pd.DataFrame({"isic_id": ["ISIC_1", "ISIC_7", "ISIC_8"], "target": [0, 0, 1]})
    with pytest.raises(KeyError, match=r"2 isic_id\(s\).*ISIC_7"):
        check_images(frame, _source(store, cached, tmp_path), "fail")


@pytest.mark.parametrize("cached", [False, True])
def test_corrupt_jpeg_fails_naming_it_or_is_skipped_with_a_count(tmp_path, cached):
    store = _store(tmp_path, ["ISIC_1", "ISIC_2", "ISIC_3"], corrupt={"ISIC_2"})
    images = _source(store, cached, tmp_path)
    frame = pd.DataFrame({"isic_id": ["ISIC_1", "ISIC_2", "ISIC_3"], "target": [0, 1, 0]})
    with pytest.raises(CorruptImageError, match="ISIC_2"):
        check_images(frame, images, "fail")
    kept = check_images(frame, images, "skip")
    assert kept["isic_id"].tolist() == ["ISIC_1", "ISIC_3"]
    assert kept.attrs["n_corrupt_skipped"] == 1


def test_oof_prediction_reads_the_scored_fold_with_the_loader_workers(tmp_path):
    """OOF scoring (3x TTA over ~80k images per fold at full size) is not single-process."""
    ids = [f"ISIC_{i}" for i in range(12)]
    images = DecodedImageCache.open_or_build(_store(tmp_path, ids), 16, tmp_path / "cache")
    frame = pd.DataFrame(
        {"isic_id": ids, "patient_id": ids, "target": [0, 1] * 6, "fold": [0, 1, 2] * 4}
    )
    resolved = {"num_workers": 3, "augment": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    cfg = validate(OmegaConf.merge(OmegaConf.load(LOADER_YAML), resolved), LoaderConfig)
    dm = LesionDataModule(frame, 0, images, cfg, seed=0, selection="fixed", inner_fraction=0.2)
    loader = dm.heldout_dataloader()
    assert loader.num_workers == 3 and not loader.persistent_workers
    assert loader.dataset.images is images and len(loader.dataset) == 4
    assert loader.dataset.ids == dm.heldout_df["isic_id"].tolist()  # in order, not shuffled


@pytest.mark.parametrize(
    ("backbone", "mean"),
    [("efficientnet_b0", [0.485, 0.456, 0.406]), ("tf_efficientnet_lite0", [0.5, 0.5, 0.5])],
)
def test_normalisation_travels_with_the_backbone_unless_overridden(project_config, backbone, mean):
    """timm's pretrained config decides the mean and std (a TF port wants 0.5, not ImageNet's);
    a list in the config overrides it."""
    from projects.image_classifier.config import ImageClassifierConfig
    from projects.image_classifier.model import with_backbone_preprocessing

    raw = project_config("image_classifier", f"model.backbone={backbone}")
    cfg = with_backbone_preprocessing(validate(raw, ImageClassifierConfig))
    assert cfg.loader.augment.mean == pytest.approx(mean)
    raw = project_config(
        "image_classifier", f"model.backbone={backbone}", "loader.augment.mean=[0.1,0.2,0.3]"
    )
    cfg = with_backbone_preprocessing(validate(raw, ImageClassifierConfig))
    assert cfg.loader.augment.mean == [0.1, 0.2, 0.3] and cfg.loader.augment.std is not None
