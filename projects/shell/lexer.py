"""Source text -> tokens. Quoting is resolved here; `$` expansions are kept as parts for later.

A word is a tuple of parts (`Lit` and `Param`) that remember whether they were quoted, because
expansion happens when the command runs (`$?` must see the status of the command before it) and
only unquoted parts are split into fields and globbed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPERATORS = ("&&", "||", ";;", ">>", "<<", ">&", "<&", "|", "&", ";", "<", ">", "(", ")")
REDIRECT_OPS = frozenset({">", ">>", "<", ">&", "<&", "<<"})
SPECIAL_PARAMS = frozenset("?$!#0123456789@*")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DOUBLE_QUOTE_ESCAPES = frozenset('$`"\\')
_PARAM_OPERATOR = re.compile(r"[#!]?([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?$!#@*])[-:=?+#%/^,@\[]|[#!]\w")


class ShellSyntaxError(Exception):
    """Input that can never parse; the message is what the shell prints."""


class Unsupported(ShellSyntaxError):
    """Valid (bash) syntax that this shell does not implement: the whole input is refused."""


class IncompleteInput(ShellSyntaxError):
    """Input that may still parse once more lines arrive (open quote, trailing `|` or `\\`)."""


@dataclass(frozen=True)
class Lit:
    """Literal text; `quoted` text is neither split into fields nor globbed."""

    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Param:
    """`$NAME`, `${NAME}` or a special parameter (`$?`, `$$`, `$!`, `$1`...), expanded later."""

    name: str
    quoted: bool = False


Part = Lit | Param


@dataclass(frozen=True)
class Token:
    """`kind` is WORD, OP, IO_NUMBER, NEWLINE or EOF; `pos` indexes the source (for job text)."""

    kind: str
    value: str
    pos: int
    end: int
    parts: tuple[Part, ...] = ()

    def is_op(self, *values: str) -> bool:
        return self.kind == "OP" and self.value in values


def describe(token: Token) -> str:
    """The token as bash names it in `syntax error near unexpected token '...'`."""
    if token.kind in ("NEWLINE", "EOF"):
        return "newline"
    return token.value


def _ends_tilde(nxt: str) -> bool:
    """`~` means $HOME only as a whole word or before `/`."""
    return nxt == "" or nxt in "/ \t\n;&|<>()"


def tokenize(source: str) -> list[Token]:
    """Split `source` into tokens; raises IncompleteInput for an unterminated quote."""
    return _Lexer(source).run()


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.i = 0
        self.tokens: list[Token] = []
        self.parts: list[Part] = []
        self.in_word = False
        self.start = 0
        self.quoted = False  # whether the current word has any quoting

    def run(self) -> list[Token]:
        src = self.src
        while self.i < len(src):
            c = src[self.i]
            if c in " \t":
                self._end_word()
                self.i += 1
            elif c == "\n":
                self._end_word()
                self.tokens.append(Token("NEWLINE", "\n", self.i, self.i + 1))
                self.i += 1
            elif c == "#" and not self.in_word:
                while self.i < len(src) and src[self.i] != "\n":
                    self.i += 1
            elif c in "|&;<>()":
                self._operator()
            elif c == "\\":
                self._backslash()
            elif c == "'":
                self._single_quote()
            elif c == '"':
                self._double_quote()
            elif c == "$":
                self._dollar(quoted=False)
            elif c == "`":
                raise Unsupported("command substitution (`...`) is not supported")
            elif c == "~" and not self.in_word and _ends_tilde(src[self.i + 1 : self.i + 2]):
                self._begin()
                self.parts.append(Param("HOME", quoted=True))
                self.i += 1
            else:
                self._literal(c, quoted=False)
                self.i += 1
        self._end_word()
        self.tokens.append(Token("EOF", "", len(src), len(src)))
        return self.tokens

    # -- words
    def _begin(self) -> None:
        if not self.in_word:
            self.start, self.in_word = self.i, True

    def _literal(self, text: str, quoted: bool) -> None:
        self._begin()
        if quoted:
            self.quoted = True
        last = self.parts[-1] if self.parts else None
        if isinstance(last, Lit) and last.quoted == quoted:
            self.parts[-1] = Lit(last.text + text, quoted)
        else:
            self.parts.append(Lit(text, quoted))

    def _end_word(self) -> None:
        if not self.in_word:
            return
        value = self.src[self.start : self.i]
        self.tokens.append(Token("WORD", value, self.start, self.i, tuple(self.parts)))
        self.parts, self.in_word, self.quoted = [], False, False

    def _backslash(self) -> None:
        nxt = self.src[self.i + 1 : self.i + 2]
        if nxt == "" or (nxt == "\n" and self.i + 2 == len(self.src)):  # continued next line
            raise IncompleteInput("unexpected end of file after '\\'")
        if nxt != "\n":  # backslash-newline is a line continuation: it vanishes
            self._literal(nxt, quoted=True)
        self.i += 2

    def _single_quote(self) -> None:
        end = self.src.find("'", self.i + 1)
        if end < 0:
            raise IncompleteInput("unexpected EOF while looking for matching `''")
        self._begin()
        self._literal(self.src[self.i + 1 : end], quoted=True)
        self.i = end + 1

    def _double_quote(self) -> None:
        src = self.src
        self._begin()
        self._literal("", quoted=True)  # "" is an empty word, not nothing
        self.i += 1
        while True:
            if self.i >= len(src):
                raise IncompleteInput("unexpected EOF while looking for matching `\"'")
            c = src[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\" and src[self.i + 1 : self.i + 2] in DOUBLE_QUOTE_ESCAPES:
                self._literal(src[self.i + 1], quoted=True)
                self.i += 2
            elif c == "\\" and src[self.i + 1 : self.i + 2] == "\n":
                self.i += 2
            elif c == "$":
                self._dollar(quoted=True)
            elif c == "`":
                raise Unsupported("command substitution (`...`) is not supported")
            else:
                self._literal(c, quoted=True)
                self.i += 1

    def _dollar(self, quoted: bool) -> None:
        src, i = self.src, self.i
        nxt = src[i + 1 : i + 2]
        self._begin()
        if nxt == "{":
            end = src.find("}", i + 2)
            if end < 0:
                raise IncompleteInput("unexpected EOF while looking for matching `}'")
            name = src[i + 2 : end]
            if not (NAME.fullmatch(name) or (len(name) == 1 and name in SPECIAL_PARAMS)):
                if _PARAM_OPERATOR.match(name):  # `${X:-y}`, `${#X}`, `${X%.*}`...: valid bash
                    raise Unsupported(f"'{src[i : end + 1]}': ${{...}} operators are not supported")
                raise ShellSyntaxError(f"{src[i : end + 1]}: bad substitution")
            self.parts.append(Param(name, quoted))
            self.i = end + 1
        elif nxt == "(":
            raise Unsupported(
                "command substitution $(...) and arithmetic $((...)) are not supported"
            )
        elif nxt and nxt in SPECIAL_PARAMS:
            self.parts.append(Param(nxt, quoted))
            self.i = i + 2
        elif m := NAME.match(src, i + 1):
            self.parts.append(Param(m.group(), quoted))
            self.i = m.end()
        else:  # a lone `$` is literal
            self._literal("$", quoted)
            self.i = i + 1

    # -- operators
    def _operator(self) -> None:
        src, i = self.src, self.i
        op = next(o for o in OPERATORS if src.startswith(o, i))
        if op == "&" and src.startswith(">", i + 1):  # sh: `a &` then `> f`; bash: both to f
            raise Unsupported("'&>' is not supported (use '> file 2>&1')")
        word = self.src[self.start : i] if self.in_word else ""
        if op in REDIRECT_OPS and word.isdigit() and not self.quoted:  # `2>`: an IO number
            self.tokens.append(Token("IO_NUMBER", word, self.start, i))
            self.parts, self.in_word = [], False
        else:
            self._end_word()
        self.tokens.append(Token("OP", op, i, i + len(op)))
        self.i = i + len(op)
