"""Timing helpers shared by the benchmark scripts (figures, never pass/fail)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path


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


def machine() -> str:
    """CPU model, cores this process may use, load average: the context of every figure."""
    model = platform.processor() or "unknown CPU"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next(
            ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if "model name" in ln
        )
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    cores = len(os.sched_getaffinity(0))
    return f"{model}, {cores} cores (load average 1/5/15 min at the end: {load})"
