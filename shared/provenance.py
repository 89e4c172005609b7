"""What a run records about where it came from: the git commit and whether the tree was dirty,
a fingerprint of its data files, the flattened config, package versions and the device."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from shared import REPO_ROOT

_SMALL_FILE = 32 * 1024 * 1024  # hash whole content below this size, else size+mtime+edges
_VERSIONED_PACKAGES = (
    "torch",
    "lightning",
    "mlflow",
    "hydra-core",
    "lightgbm",
    "catboost",
    "timm",
    "transformers",
    "sentence-transformers",
    "faiss-cpu",
    "numpy",
    "pandas",
)


def git_state(root: Path = REPO_ROOT) -> tuple[str, bool]:
    """(commit SHA, whether the work tree differs from it); 'unknown' outside git. A file git
    does not track and does not ignore counts as a change: an untracked module can change what
    a run does, and no commit holds it."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=normal"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        return sha, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def data_fingerprint(paths: Iterable[str | Path]) -> str:
    """A short hash over the input files' names, sizes and contents.

    Files over 32 MiB are hashed by size, mtime and their first and last MiB, so a
    multi-GB HDF5 fingerprints in milliseconds while any rewrite still changes the hash.
    """
    h = hashlib.sha256()
    files: list[tuple[str, Path]] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += [
                (str(f.relative_to(p.parent)), f) for f in sorted(p.rglob("*")) if f.is_file()
            ]
        elif p.is_file():
            files.append((p.name, p))
        else:
            h.update(f"missing:{p.name}".encode())
    for name, f in sorted(files):
        size = f.stat().st_size
        h.update(f"{name}:{size}".encode())
        with f.open("rb") as fh:
            if size <= _SMALL_FILE:
                h.update(fh.read())
            else:
                h.update(str(f.stat().st_mtime_ns).encode())
                h.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()[:16]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> {'a.b.c': 'value'} with values as strings (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def config_to_container(config: Any) -> dict:
    if config is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return dict(config)


def package_versions() -> dict[str, str]:
    out = {}
    for pkg in _VERSIONED_PACKAGES:
        try:
            out[f"version.{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    except ImportError:  # pragma: no cover
        pass
    return f"cpu:{os.cpu_count()} cores"
