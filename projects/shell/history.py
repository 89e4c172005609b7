"""Command history: the file it persists to, and `!!` / `!n` / `!-n` / `!prefix` expansion.

Each entry is appended to the file as it is entered, so a crash or two shells at once lose
nothing. A multi-line entry is written as its first line followed by its other lines, each
prefixed with a tab (entries themselves never start with a blank: they are stripped).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

HISTFILE_ENV = "PYSHELL_HISTFILE"
DEFAULT_HISTFILE = "~/.pyshell_history"
HISTSIZE = 1000
_WORD_END = frozenset(" \t\n;&|<>()\"'")


class HistoryError(Exception):
    """A `!` event that names no entry; the message is what the shell prints."""


def history_path(env: Mapping[str, str]) -> Path:
    """$PYSHELL_HISTFILE, else ~/.pyshell_history (tests point the variable at a temp file)."""
    return Path(os.path.expanduser(env.get(HISTFILE_ENV) or DEFAULT_HISTFILE))


def encode(entry: str) -> str:
    first, *rest = entry.split("\n")
    return "".join([first, *("\n\t" + line for line in rest)]) + "\n"


def decode(text: str) -> list[str]:
    entries: list[str] = []
    for line in text.splitlines():
        if line.startswith("\t") and entries:
            entries[-1] += "\n" + line[1:]
        elif line.strip():
            entries.append(line)
    return entries


def load(path: Path, limit: int = HISTSIZE) -> list[str]:
    """The last `limit` entries; a file grown past twice that is rewritten to them."""
    try:
        entries = decode(path.read_text(encoding="utf-8", errors="surrogateescape"))
    except FileNotFoundError:
        return []
    if len(entries) > 2 * limit:
        entries = entries[-limit:]
        path.write_text(
            "".join(encode(e) for e in entries), encoding="utf-8", errors="surrogateescape"
        )
    return entries[-limit:]


def append(path: Path, entry: str) -> None:
    """Add one entry to the file (created with mode 600, like bash's)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, encode(entry).encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def expand(line: str, entries: Sequence[str]) -> str:
    """Replace history events (`!!`, `!n`, `!-n`, `!prefix`) outside single quotes, as bash does.

    `entries[0]` is event 1. A `!` before a blank, `=`, `(` or the end of the line stays literal.
    """
    out: list[str] = []
    i, n = 0, len(line)
    in_single = in_double = False
    while i < n:
        c = line[i]
        if c == "\\" and not in_single and i + 1 < n:
            out.append(line[i : i + 2])
            i += 2
            continue
        if c == "'" and not in_double:
            in_single = not in_single
        elif c == '"' and not in_single:
            in_double = not in_double
        elif c == "!" and not in_single:
            event, end = _event(line, i + 1, in_double)
            if event is not None:
                out.append(_lookup(event, entries))
                i = end
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _event(line: str, i: int, in_double: bool) -> tuple[str | None, int]:
    """The event designator after a `!` at i-1 and where it ends (None: the `!` is literal)."""
    nxt = line[i : i + 1]
    if nxt == "" or nxt in " \t\n=(" or (in_double and nxt == '"'):
        return None, i
    if nxt == "!":
        return "!!", i + 1
    j = i + 1 if nxt == "-" else i
    if line[j : j + 1].isdigit():
        while j < len(line) and line[j].isdigit():
            j += 1
        return line[i - 1 : j], j
    j = i
    while j < len(line) and line[j] not in _WORD_END:
        j += 1
    return (line[i - 1 : j], j) if j > i else (None, i)


def _lookup(event: str, entries: Sequence[str]) -> str:
    body = event[1:]
    index: int | None = None
    if body == "!":
        index = len(entries)
    elif body.lstrip("-").isdigit():
        number = int(body)
        index = len(entries) + 1 + number if number < 0 else number
    else:
        for k in range(len(entries), 0, -1):
            if entries[k - 1].startswith(body):
                index = k
                break
    if index is None or not 1 <= index <= len(entries):
        raise HistoryError(f"{event}: event not found")
    return entries[index - 1]
