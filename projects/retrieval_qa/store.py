"""The index store's stage folders (`<stage>-<content hash>/`): built atomically, sealed with a
manifest of every file's size and sha256, verified whenever they are opened, published once.

A truncated `text.bin` opens without error and serves blank passages, and a truncated
`dense.faiss` fails deep inside FAISS; the manifest turns both into one finding that names the
folder, the file and what differs. Training rebuilds a damaged cached stage (`cached_stage`);
serving refuses it (`verify_stage` raises `StoreDamagedError`, an InputError).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from shared.errors import InputError
from shared.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
FIX = (
    "copy the folder again from the training machine's index store, or re-run training to "
    "rebuild and republish it"
)


class StoreDamagedError(InputError):
    """A stage folder's files differ from its manifest, or it has none; the message names the
    folder, each file and what differs (missing, size or checksum)."""


def file_sha256(path: Path) -> str:
    """The file's sha256, streamed (stage files run to gigabytes)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: str | Path) -> dict:
    """Record every file under `folder` (relative path, size, sha256) in `folder/manifest.json`;
    called on a finished build, before it is renamed into place."""
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in _files(folder)
    }
    manifest = {"format": MANIFEST_FORMAT, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def verify_stage(folder: str | Path) -> float:
    """Check every file the manifest lists: present, same size (cheap, all files first), then
    same sha256. Raises StoreDamagedError naming the folder and each differing file; returns
    the seconds it took."""
    folder, t0 = Path(folder), time.perf_counter()
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        raise StoreDamagedError(
            f"index store folder {folder} has no {MANIFEST} (built before stores were "
            f"checksummed, or copied without it), so its files cannot be verified: {FIX}"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreDamagedError(
            f"index store folder {folder}: unreadable {MANIFEST} ({exc}): {FIX}"
        ) from None
    problems = []
    for name, want in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif (size := path.stat().st_size) != want["size"]:
            problems.append(f"{name} is {size} bytes, the manifest says {want['size']}")
    if not problems:
        problems = [
            f"{name} sha256 {got[:12]}... differs from the manifest's {want['sha256'][:12]}... "
            "(same size)"
            for name, want in files.items()
            if (got := file_sha256(folder / name)) != want["sha256"]
        ]
    if problems:
        raise StoreDamagedError(f"index store folder {folder} is damaged: {'; '.join(problems)}")
    return time.perf_counter() - t0


def stage_dir(cache_root: str | Path, stage: str, key: str) -> Path:
    """`cache_root/stage-key`: a stage's outputs live there; a new key means a new folder."""
    return Path(cache_root) / f"{stage}-{key}"


def cached_stage(
    cache_root: str | Path,
    stage: str,
    key: str,
    build: Callable[[Path], T],
    load: Callable[[Path], T],
) -> tuple[T, bool]:
    """(result, from_cache): verify and load `cache_root/stage-key`, or `build(folder)` into a
    temporary folder, sealed with its manifest and renamed into place only once complete. A
    cached folder that is damaged (its manifest names the file) or fails to load is removed
    and rebuilt, with a warning."""
    final = stage_dir(cache_root, stage, key)
    if final.is_dir():
        try:
            seconds = verify_stage(final)
            log.info("cached %s at %s verified in %.2f s", stage, final, seconds)
            return load(final), True
        except Exception as exc:  # damaged or foreign files: rebuild rather than fail forever
            log.warning("cached %s at %s failed to load (%s); rebuilding it", stage, final, exc)
            shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        result = build(tmp)
        write_manifest(tmp)
        try:
            os.rename(tmp, final)  # atomic on one file system
        except OSError:  # another run finished the same stage first: keep theirs
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result, False


def publish_index(stages: dict[str, str], store: str | Path) -> tuple[dict[str, str], list[str]]:
    """Stage folders (`<stage>-<content hash>`) copied into the shared index `store` once per
    hash. A copy lands under a temporary name, is verified against its manifest, then renamed
    into place, so a reader never sees half an index; a folder already there is reused when it
    verifies, else replaced (with a warning). Returns the stages' paths in the store and the
    names actually copied (none when store = cache: `cached_stage` verified those)."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    out, copied = {}, []
    for stage, src in stages.items():
        dst = store / Path(src).name
        out[stage] = str(dst)
        if Path(src).resolve() == dst.resolve():
            continue
        if dst.is_dir():
            try:
                verify_stage(dst)
                continue
            except StoreDamagedError as exc:
                log.warning("published %s is replaced: %s", dst.name, exc)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=store))
        try:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
            verify_stage(tmp)  # a short or corrupt copy never lands in the store
            if _swap_in(tmp, dst):
                copied.append(dst.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out, copied


def _swap_in(tmp: Path, dst: Path) -> bool:
    """Rename `tmp` to `dst` (False: another run published it first); a damaged `dst` is
    first renamed aside, then removed."""
    old = None
    if dst.is_dir():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".damaged", dir=dst.parent))
        os.rename(dst, old / dst.name)
    try:
        os.rename(tmp, dst)
        return True
    except OSError:  # another run published the same hash first: keep theirs
        if not dst.is_dir():
            raise
        return False
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
