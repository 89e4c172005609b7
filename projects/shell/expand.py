"""Word expansion at run time: parameters, then field splitting and globbing of unquoted text.

POSIX order: `$VAR` is substituted; unquoted results are split on blanks; each field with an
unquoted `*`, `?` or `[` is matched against file names (no match leaves it as written).
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable

from projects.shell.lexer import Lit, Part

Lookup = Callable[[str], str | None]
IFS = " \t\n"
GLOB_CHARS = frozenset("*?[")


class _Field:
    """One field being built: its text, its glob pattern (quoted text escaped), and whether globbing
    applies (some unquoted glob character)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.pattern: list[str] = []
        self.magic = False

    def add(self, text: str, quoted: bool) -> None:
        self.text.append(text)
        self.pattern.append(glob.escape(text) if quoted else text)
        if not quoted and GLOB_CHARS.intersection(text):
            self.magic = True


def expand_word(word: Iterable[Part], lookup: Lookup, globbing: bool = True) -> list[str]:
    """A word -> zero or more fields (`$EMPTY` unquoted vanishes; `"$EMPTY"` is one empty field)."""
    fields: list[_Field] = []
    current: _Field | None = None
    for part in word:
        if isinstance(part, Lit) or part.quoted:
            text = part.text if isinstance(part, Lit) else lookup(part.name) or ""
            current = current or _Field()
            current.add(text, part.quoted)
            continue
        value = lookup(part.name) or ""
        if value[:1] in tuple(IFS) and current is not None:  # leading blank ends the field
            fields.append(current)
            current = None
        pieces = value.split()
        for k, piece in enumerate(pieces):
            current = current or _Field()
            current.add(piece, quoted=False)
            if k < len(pieces) - 1:
                fields.append(current)
                current = None
        if value[-1:] in tuple(IFS) and current is not None:
            fields.append(current)
            current = None
    if current is not None:
        fields.append(current)
    out: list[str] = []
    for field in fields:
        text = "".join(field.text)
        if globbing and field.magic:
            matches = sorted(glob.glob("".join(field.pattern)))
            out.extend(matches or [text])
        else:
            out.append(text)
    return out


def expand_string(word: Iterable[Part], lookup: Lookup) -> str:
    """A word as one string, no splitting or globbing: the right-hand side of `NAME=value`."""
    return "".join(p.text if isinstance(p, Lit) else lookup(p.name) or "" for p in word)
