"""Checks on every uploaded file before any model sees it.

The byte limit is checked on the file's size before it is read, the pixel limit from the image
header before its pixels are decoded (a decompression bomb is a few KB that decodes to GBs),
and anything PIL cannot decode is refused with a message instead of a traceback.
"""

from __future__ import annotations

import base64
from pathlib import Path

from PIL import Image

from shared.errors import InputError
from shared.images import CorruptImageError, decode_image
from tools.demo.config import UploadConfig


class UploadError(InputError, ValueError):
    """An upload was refused; the message says why and names the file."""


def read_image(path: str | Path, limits: UploadConfig) -> Image.Image:
    """An uploaded file as an RGB image, or UploadError naming the file and the limit hit."""
    p = Path(path)
    name = p.name
    if not p.is_file():
        raise UploadError(f"upload '{name}' is missing (upload it again)")
    if limits.extensions and p.suffix.lower() not in limits.extensions:
        raise UploadError(
            f"'{name}' is not an image file we accept ({', '.join(limits.extensions)})"
        )
    size = p.stat().st_size
    if size > limits.max_bytes:
        raise UploadError(
            f"'{name}' is {size:,} bytes, over the {limits.max_bytes:,} byte limit "
            "(uploads.max_bytes)"
        )
    if size == 0:
        raise UploadError(f"'{name}' is empty")
    return image_from_bytes(p.read_bytes(), name, limits)


def image_from_bytes(data: bytes, name: str, limits: UploadConfig) -> Image.Image:
    """Decode with the pixel limit; a non-image or a bomb becomes an UploadError."""
    if len(data) > limits.max_bytes:
        raise UploadError(f"'{name}' is over the {limits.max_bytes:,} byte limit")
    try:
        return decode_image(data, name, max_pixels=limits.max_pixels)
    except CorruptImageError as exc:
        if "pixel limit" in str(exc):
            raise UploadError(f"{exc} (uploads.max_pixels)") from None
        raise UploadError(f"'{name}' is not an image we can read (JPEG, PNG ...): {exc}") from None


def image_from_base64(text: str, name: str, limits: UploadConfig) -> Image.Image:
    """A model's input example (base64 image bytes) as an RGB image, with the same checks."""
    return image_from_bytes(base64.b64decode(text), name, limits)
