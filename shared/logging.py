"""Readable console logging (rich) and progress bars for long loops."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.logging import RichHandler
from rich.progress import track

T = TypeVar("T")
_CONFIGURED = False


def get_logger(name: str) -> logging.Logger:
    """A logger writing through rich; configures the root handler once."""
    global _CONFIGURED
    if not _CONFIGURED:
        root = logging.getLogger()
        if not any(isinstance(h, RichHandler) for h in root.handlers):
            root.addHandler(RichHandler(show_path=False, rich_tracebacks=False, markup=False))
        root.setLevel(logging.INFO)
        for noisy in ("alembic", "urllib3", "filelock", "httpx", "numexpr", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        _CONFIGURED = True
    return logging.getLogger(name)


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """A rich progress bar around an iterable (plain iteration when not a terminal)."""
    yield from track(items, description=description, total=total, transient=True)
