import io

import h5py
import numpy as np
import pytest
from PIL import Image

from shared.images import (
    CorruptImageError,
    FolderImageStore,
    HDF5ImageStore,
    decode_image,
    write_hdf5_jpegs,
)


def _jpeg(size=(20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, "JPEG")
    return buf.getvalue()


def test_hdf5_store_round_trips_jpeg_bytes(tmp_path):
    arr = np.full((16, 24, 3), 120, np.uint8)
    write_hdf5_jpegs(tmp_path / "x.hdf5", {"ISIC_0000001": arr})
    with h5py.File(tmp_path / "x.hdf5") as f:
        assert isinstance(f["ISIC_0000001"][()], bytes | np.bytes_)
    store = HDF5ImageStore(tmp_path / "x.hdf5")
    img = store.read("ISIC_0000001")
    assert img.size == (24, 16) and img.mode == "RGB"
    assert store.missing(["ISIC_0000001", "ISIC_9"]) == ["ISIC_9"]


def test_corrupt_jpeg_names_its_id(tmp_path):
    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        f.create_dataset("ISIC_0000042", data=np.bytes_(b"\xff\xd8 not a jpeg"))
    with pytest.raises(CorruptImageError, match="ISIC_0000042"):
        HDF5ImageStore(tmp_path / "bad.hdf5").read("ISIC_0000042")


def test_pixel_limit_is_enforced_before_decoding():
    with pytest.raises(CorruptImageError, match="pixel limit"):
        decode_image(_jpeg((100, 100)), "big", max_pixels=5000)


def test_missing_key_and_missing_file_are_clear(tmp_path):
    write_hdf5_jpegs(tmp_path / "x.hdf5", {"a": np.zeros((4, 4, 3), np.uint8)})
    with pytest.raises(KeyError, match="'b'"):
        HDF5ImageStore(tmp_path / "x.hdf5").read("b")
    with pytest.raises(FileNotFoundError, match="nope.hdf5"):
        HDF5ImageStore(tmp_path / "nope.hdf5")


def test_folder_store_reads_relative_paths(tmp_path):
    (tmp_path / "train2014").mkdir()
    (tmp_path / "train2014" / "a.jpg").write_bytes(_jpeg())
    store = FolderImageStore(tmp_path)
    assert store.read("train2014/a.jpg").size == (20, 30)
    assert store.missing(["train2014/a.jpg", "b.jpg"]) == ["b.jpg"]
