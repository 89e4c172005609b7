"""The server's bounds, as plain functions and one small class, testable without sockets.

Every frame the server builds must fit `max_frame_bytes`, or each client that receives it is
disconnected (and, for history, every later joiner too). So texts are measured as they will
appear inside a frame (JSON-escaped UTF-8), replays and pages are cut by bytes rather than by
count, and stored messages longer than today's limit (written before it existed) are clipped
on the way out instead of breaking a join.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

CLIPPED = " […clipped]"


def json_size(value: Any) -> int:
    """Bytes `value` takes inside a frame (compact JSON, UTF-8, as `protocol.encode` writes)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def name_pattern(max_len: int) -> re.Pattern[str]:
    """User and room names: ASCII letters, digits, `_ . -` only, so no control or invisible
    character (nor a trailing newline: callers use `fullmatch`, never `match` with `$`)."""
    return re.compile(rf"[A-Za-z0-9_.\-]{{1,{max_len}}}")


def clip_text(text: str, max_bytes: int) -> str:
    """`text` cut (at a character boundary) so that its JSON form fits `max_bytes`."""
    if json_size(text) <= max_bytes:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits together with the marker
        mid = (lo + hi + 1) // 2
        if json_size(text[:mid] + CLIPPED) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + CLIPPED


def fit_messages(
    messages: list[dict[str, Any]], budget: int, max_text_bytes: int
) -> tuple[list[dict[str, Any]], bool]:
    """The newest of `messages` (oldest first) whose JSON fits `budget` bytes, each text clipped
    to `max_text_bytes`; and whether any were left out (then older ones exist)."""
    kept: list[dict[str, Any]] = []
    used = 2  # the list's brackets
    for msg in reversed(messages):
        msg = {**msg, "text": clip_text(msg["text"], max_text_bytes)}
        size = json_size(msg) + 1
        if used + size > budget:
            return kept[::-1], True
        kept.append(msg)
        used += size
    return kept[::-1], False


def fit_list(items: list[Any], budget: int) -> tuple[list[Any], bool]:
    """The first of `items` whose JSON fits `budget` bytes, and whether any were left out."""
    used = 2
    for i, item in enumerate(items):
        used += json_size(item) + 1
        if used > budget:
            return items[:i], True
    return items, False


class TokenBucket:
    """`rate` events per second on average, `burst` at once; rate 0 means no limit."""

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self.tokens, self.stamp = float(burst), clock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        if self.rate <= 0:
            return True
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
