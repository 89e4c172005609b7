"""Reading lesion/caption images: HDF5 stores of JPEG bytes (ISIC 2024) and plain folders.

Decoding checks a pixel limit (a decompression bomb or a mislabelled file fails fast) and
names the image id in every error, so a corrupt record among 400k is findable.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel

from shared.errors import DataNotFoundError, InputError

DEFAULT_MAX_PIXELS = 40_000_000


class CorruptImageError(InputError, ValueError):
    """An image's bytes could not be decoded; the message names its id."""


class EncodedImage(BaseModel):
    """One input row of the image models' pyfuncs (the `predict` type hint MLflow infers the
    signature from and validates against): `image`, the base64 text of a JPEG/PNG file."""

    image: str


def decode_image(data: bytes, image_id: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode encoded image bytes to an RGB PIL image, checking size before decoding pixels."""
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > max_pixels:
            raise CorruptImageError(
                f"image '{image_id}' is {w}x{h}, over the {max_pixels} pixel limit"
            )
        img.load()
    except CorruptImageError:
        raise
    except Exception as exc:  # PIL raises several types for bad bytes
        raise CorruptImageError(f"image '{image_id}' cannot be decoded: {exc}") from exc
    return img.convert("RGB")


class HDF5ImageStore:
    """JPEG bytes keyed by id in one HDF5 file (`file[id][()]` -> bytes), as ISIC 2024 ships.

    The file is opened lazily in each process: a handle opened before DataLoader workers
    fork is never used by them (HDF5 handles are not fork-safe), each worker opens its own.
    """

    def __init__(self, path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataNotFoundError(f"HDF5 image file not found: {self.path}")
        self.max_pixels = max_pixels
        self._file = None
        self._pid: int | None = None  # the process that opened `_file`

    def _h5(self):
        if self._file is None or self._pid != os.getpid():
            import h5py

            # A handle inherited through fork is the parent's: this process opens its own.
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None}

    def keys(self) -> set[str]:
        return set(self._h5().keys())

    def missing(self, ids: Iterable[str]) -> list[str]:
        keys = self.keys()
        return [i for i in ids if i not in keys]

    def read_bytes(self, image_id: str) -> bytes:
        try:
            raw = self._h5()[image_id][()]
        except KeyError as exc:
            raise KeyError(f"image '{image_id}' is not in {self.path}") from exc
        return bytes(raw)

    def read(self, image_id: str) -> Image.Image:
        return decode_image(self.read_bytes(image_id), image_id, self.max_pixels)


class FolderImageStore:
    """Images as files under one root; ids are paths relative to it (Flickr / COCO layout)."""

    def __init__(self, root: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataNotFoundError(f"image folder not found: {self.root}")
        self.max_pixels = max_pixels

    def missing(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if not (self.root / i).is_file()]

    def read_bytes(self, image_id: str) -> bytes:
        path = self.root / image_id
        if not path.is_file():
            raise DataNotFoundError(f"image '{image_id}' not found under {self.root}")
        return path.read_bytes()

    def read(self, image_id: str) -> Image.Image:
        return decode_image(self.read_bytes(image_id), image_id, self.max_pixels)


def write_hdf5_jpegs(
    path: str | Path,
    images: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]],
    quality: int = 90,
) -> None:
    """Write uint8 HxWx3 arrays as JPEG bytes keyed by id, in the ISIC 2024 layout.

    `images` may be a mapping or a lazy iterable of (id, array) pairs, so a large set is
    encoded one image at a time instead of held in memory.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs = images.items() if isinstance(images, Mapping) else images
    with h5py.File(path, "w") as f:
        for image_id, arr in pairs:
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
            f.create_dataset(image_id, data=np.bytes_(buf.getvalue()))
