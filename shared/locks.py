"""Cross-process locks for what two runs on one machine share: a generated data set and its
fold file, a brand-new SQLite store, and the champion alias of a registry.

Lock files live beside what they guard (`.<name>.lock`). A lock held by a process that dies is
released by the kernel (flock), so a killed run never leaves the next one waiting.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock

LOCK_TIMEOUT_S = 1800  # a smoke data set takes seconds; a full one may take minutes


def lock_for(path: str | Path, timeout: float = LOCK_TIMEOUT_S) -> FileLock:
    """The lock guarding `path` (a file or folder, existing or not)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.parent / f".{path.name}.lock"), timeout=timeout)


def sqlite_file(uri: str) -> Path | None:
    """The file behind a `sqlite:///` URI, whose creation two processes must not race (None for
    a server or an in-memory database)."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return None
    return Path(uri[len("sqlite:///") :])


def write_atomically(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
