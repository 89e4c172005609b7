"""Timing helpers shared by the benchmark scripts (figures, never pass/fail)."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(fn: Callable, repeat: int = 1) -> tuple[float, object]:
    """Best wall time of `repeat` calls (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def report(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
