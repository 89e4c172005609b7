"""The one entry point shape: `python -m projects.<project>.train [overrides]` and the predict CLIs.

Expected errors (`shared.errors.InputError`: a bad config key, missing data, a malformed row)
print one line, `error: ...`, and exit with status 2; unexpected ones keep their traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from shared import REPO_ROOT
from shared.errors import InputError


@contextmanager
def expected_errors() -> Iterator[None]:
    """Turn an InputError into `error: <message>` on stderr and exit status 2."""
    try:
        yield
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def hydra_entry(run: Callable[[Any], dict[str, float]], project: str) -> Callable[[], Any]:
    """`main()` for `projects/<project>/train.py`: compose configs/<project>/train.yaml with the
    command line's overrides, call `run(cfg)` and return the headline metric (for sweeps)."""
    import hydra

    config_dir = str(REPO_ROOT / "configs" / project)

    @hydra.main(version_base="1.3", config_path=config_dir, config_name="train")
    def main(cfg) -> float | None:
        with expected_errors():
            return run(cfg).get(cfg.tracking.headline_metric)

    return main
