"""Checks on every uploaded file before any model sees it.

The byte limit is checked on the file's size before it is read, the pixel limit from the image
header before its pixels are decoded (a decompression bomb is a few KB that decodes to GBs),
and anything PIL cannot decode is refused with a message instead of a traceback. A file over
the byte limit is refused in the browser too (`refusal_js`), by name, before it is sent.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from PIL import Image

from shared.errors import InputError
from shared.images import CorruptImageError, decode_image
from tools.demo.config import UploadConfig


class UploadError(InputError, ValueError):
    """An upload was refused; the message says why and names the file."""


_REPR = re.compile(r"\s*<[^<>]* object at 0x[0-9a-fA-F]+>")


def clean_message(text: str) -> str:
    """`text` without Python object reprs (`<_io.BytesIO object at 0x...>`): they mean nothing
    to a user and would leak memory addresses into the page."""
    return _REPR.sub("", text)


def mib(n: int) -> str:
    """Bytes as the binary unit the limit is set in: 10485760 -> '10 MiB', 31457280 -> '30 MiB'."""
    return f"{n / 2**20:.1f}".removesuffix(".0") + " MiB"


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
            f"'{name}' is {mib(size)} ({size:,} bytes), over the {mib(limits.max_bytes)} "
            "upload limit (uploads.max_bytes)"
        )
    if size == 0:
        raise UploadError(f"'{name}' is empty")
    return image_from_bytes(p.read_bytes(), name, limits)


def image_from_bytes(data: bytes, name: str, limits: UploadConfig) -> Image.Image:
    """Decode with the pixel limit; a non-image or a bomb becomes an UploadError."""
    if len(data) > limits.max_bytes:
        raise UploadError(f"'{name}' is over the {mib(limits.max_bytes)} upload limit")
    try:
        return decode_image(data, name, max_pixels=limits.max_pixels)
    except CorruptImageError as exc:
        if "pixel limit" in str(exc):
            raise UploadError(f"{exc} (uploads.max_pixels)") from None
        cause = exc.__cause__
        why = (
            "its contents are not in an image format (whatever its extension says)"
            if type(cause).__name__ == "UnidentifiedImageError"
            else clean_message(str(cause or exc))
        )
        raise UploadError(f"'{name}' is not an image we can read (JPEG, PNG ...): {why}") from None


def image_from_base64(text: str, name: str, limits: UploadConfig) -> Image.Image:
    """A model's input example (base64 image bytes) as an RGB image, with the same checks."""
    return image_from_bytes(base64.b64decode(text), name, limits)


# Runs once on page load. A file over the limit chosen or dropped on an `*-upload` component is
# stopped before Gradio sees it (Gradio would only toast "10.0 Mb" and leave the component
# empty, so Score would fall back to the example); its name and size go to the tab's hidden
# `*-refused` textbox, whose value the tab shows and which blocks scoring until a valid image.
_REFUSAL_JS = """
() => {
  const LIMIT = __LIMIT__, LIMIT_TEXT = __LIMIT_TEXT__;
  const mib = (n) => (n / 1048576).toFixed(1).replace(/\\.0$/, "") + " MiB";
  const why = (files) => {
    for (const f of files) {
      if (f.size > LIMIT) {
        return `'${f.name}' is ${mib(f.size)} (${f.size.toLocaleString("en")} bytes), over the `
          + `${LIMIT_TEXT} upload limit (uploads.max_bytes): it was not uploaded`;
      }
    }
    return "";
  };
  const guard = (e) => {
    const root = e.target && e.target.closest && e.target.closest("[id$='-upload']");
    if (!root) return;
    const files = e.type === "drop" ? (e.dataTransfer && e.dataTransfer.files) : e.target.files;
    if (!files || !files.length) return;
    const text = why(files);
    if (text) {
      e.preventDefault();
      e.stopImmediatePropagation();
      if (e.target.value) e.target.value = "";
    }
    const id = root.id.replace(/-upload$/, "-refused");
    const box = document.querySelector(`#${id} textarea, #${id} input`);
    if (box && box.value !== text) {
      box.value = text;
      box.dispatchEvent(new Event("input", { bubbles: true }));
    }
  };
  document.addEventListener("change", guard, true);
  document.addEventListener("drop", guard, true);
}
"""


def refusal_js(limits: UploadConfig) -> str:
    """The page-load script that refuses an oversized upload by name (see `_REFUSAL_JS`)."""
    return _REFUSAL_JS.replace("__LIMIT__", str(int(limits.max_bytes))).replace(
        "__LIMIT_TEXT__", json.dumps(mib(limits.max_bytes))
    )
