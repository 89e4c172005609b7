"""Reading lesion/caption images: HDF5 stores of JPEG bytes (ISIC 2024) and plain folders.

Decoding checks a pixel limit (a decompression bomb or a mislabelled file fails fast) and
names the image id in every error, so a corrupt record among 400k is findable.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from shared.errors import DataNotFoundError, InputError
from shared.rows import Row

DEFAULT_MAX_PIXELS = 40_000_000


class CorruptImageError(InputError, ValueError):
    """An image's bytes could not be decoded; the message names its id."""


class EncodedImage(Row):
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


def resize_uint8(img: Image.Image | np.ndarray, size: int):
    """HxWx3 image -> 3xSxS uint8 tensor, resized as the eval transform's `Resize((S, S))` does.

    The decode cache stores exactly this, so evaluation on cached images sees the tensors the
    uncached path computes (torchvision's antialiased resize of the uint8 image).
    """
    from torchvision.transforms.v2 import functional as F

    return F.resize(F.to_image(img), [size, size], antialias=True)


CACHE_FORMAT = 1  # bump when the cache's layout or resize changes: old caches are not reused


class DecodedImageCache:
    """Every image of an HDF5 store decoded once, resized to SxS, as one N x S x S x 3 uint8
    array on disk that DataLoader workers memory-map (no JPEG decoding per epoch or fold).

    Keyed by the HDF5 file's fingerprint (`shared.provenance.data_fingerprint`) and the size, so
    a changed file or size builds a new cache and every fold and run reuses the old one. A
    build writes into a temporary folder and renames it into place: an interrupted build
    leaves only a `.tmp-*` folder, which is never read (and is removed by the next build).
    Corrupt images are recorded by id with their decode error (their rows stay zero);
    `corrupt` lets callers fail or skip them as before.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        self.size: int = meta["size"]
        self.ids: list[str] = meta["ids"]
        self.corrupt: dict[str, str] = meta["corrupt"]
        self.index = {i: n for n, i in enumerate(self.ids)}
        self._array: np.ndarray | None = None  # opened lazily, in each worker

    @staticmethod
    def key(h5_path: str | Path, size: int) -> str:
        from shared.provenance import data_fingerprint

        return f"{data_fingerprint([h5_path])}-{size}px-v{CACHE_FORMAT}"

    @classmethod
    def open_or_build(
        cls, store: HDF5ImageStore, size: int, cache_dir: str | Path, workers: int = 0
    ) -> DecodedImageCache:
        """The cache of `store` at `size`, building it (once, under a lock) when missing."""
        import fcntl

        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = cls.key(store.path, size)
        final = cache_dir / key
        if (final / "meta.json").is_file():
            return cls(final)
        # One builder per cache (DDP ranks, parallel runs): the others wait, then read it.
        with open(cache_dir / f".{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (final / "meta.json").is_file():
                _build(store, size, cache_dir, key, workers)
        return cls(final)

    def _images(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.folder / "images.npy", mmap_mode="r")
        return self._array

    def __getstate__(self) -> dict:
        # Workers re-map the file instead of receiving a pickled copy of the array.
        return {**self.__dict__, "_array": None}

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, image_id: str) -> np.ndarray:
        """The cached SxSx3 uint8 image; a corrupt or unknown id fails naming it."""
        if image_id in self.corrupt:
            raise CorruptImageError(self.corrupt[image_id])
        try:
            n = self.index[image_id]
        except KeyError as exc:
            raise KeyError(f"image '{image_id}' is not in the decode cache {self.folder}") from exc
        return np.array(self._images()[n])

    @property
    def nbytes(self) -> int:
        return (self.folder / "images.npy").stat().st_size


def _decode_chunk(args: tuple[HDF5ImageStore, list[str], int, int, str]) -> dict[str, str]:
    """Decode ids[start:...] into rows start.. of the memory-mapped array; returns corrupt ids."""
    store, ids, start, size, array_path = args
    out = np.load(array_path, mmap_mode="r+")
    corrupt = {}
    for n, image_id in enumerate(ids, start):
        try:
            out[n] = resize_uint8(store.read(image_id), size).permute(1, 2, 0).numpy()
        except CorruptImageError as exc:
            corrupt[image_id] = str(exc)
    out.flush()
    return corrupt


def _build(store: HDF5ImageStore, size: int, cache_dir: Path, key: str, workers: int) -> None:
    import shutil
    import time
    from concurrent.futures import ProcessPoolExecutor

    for stale in cache_dir.glob(f".tmp-{key}-*"):  # an interrupted build's leftovers
        shutil.rmtree(stale, ignore_errors=True)
    tmp = cache_dir / f".tmp-{key}-{os.getpid()}"
    tmp.mkdir()
    ids = sorted(store.keys())
    array_path = tmp / "images.npy"
    np.lib.format.open_memmap(array_path, "w+", np.uint8, (len(ids), size, size, 3)).flush()
    t0 = time.perf_counter()
    step = max(1, min(4096, -(-len(ids) // max(1, 4 * workers))))
    jobs = [(store, ids[i : i + step], i, size, str(array_path)) for i in range(0, len(ids), step)]
    corrupt: dict[str, str] = {}
    if workers > 0:
        with ProcessPoolExecutor(workers) as pool:
            for part in pool.map(_decode_chunk, jobs):
                corrupt.update(part)
    else:
        for job in jobs:
            corrupt.update(_decode_chunk(job))
    meta = {"size": size, "ids": ids, "corrupt": corrupt, "source": str(store.path)}
    meta["build_seconds"] = round(time.perf_counter() - t0, 3)
    (tmp / "meta.json").write_text(json.dumps(meta))
    os.rename(tmp, cache_dir / key)  # atomic: the cache appears complete or not at all
