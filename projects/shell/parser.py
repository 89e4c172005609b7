"""Tokens -> AST, by recursive descent over this grammar (a subset of POSIX sh):

    list     := and_or ((';' | '&' | NEWLINE) and_or)* [';' | '&']
    and_or   := pipeline (('&&' | '||') NEWLINE* pipeline)*
    pipeline := ['!'] command ('|' NEWLINE* command)*
    command  := '(' list ')' redirect* | (ASSIGNMENT | WORD | redirect)+
    redirect := [IO_NUMBER] ('<' | '>' | '>>' | '<&' | '>&') WORD

Nodes keep their source text, which `jobs` prints. Errors name the token, as bash does.

Compound commands are not part of this grammar, so their reserved words are refused wherever
bash would read them as such (the first word of a command, even after assignments or
redirections): run as commands, `[ -d x ] && { cd x; rm f; }` would remove `f` even when `x`
is missing. A refused line raises `Unsupported` before anything in it runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from projects.shell.lexer import (
    NAME,
    IncompleteInput,
    Lit,
    Part,
    ShellSyntaxError,
    Token,
    Unsupported,
    describe,
    tokenize,
)

Word = tuple[Part, ...]

_IF = "if/then/elif/else/fi statements are not supported"
_LOOP = "for/while/until/select loops are not supported"
_CASE = "case statements are not supported"
_BRACE = "brace groups '{ ...; }' are not supported (use a subshell '( ... )')"
_TEST = "'[[ ... ]]' tests are not supported (use '[ ... ]')"
# Bash's reserved words (and `[[`), refused in command position, with what they would begin.
RESERVED = {
    "{": _BRACE,
    "}": _BRACE,
    **dict.fromkeys(("if", "then", "elif", "else", "fi"), _IF),
    **dict.fromkeys(("for", "while", "until", "select", "do", "done"), _LOOP),
    **dict.fromkeys(("case", "esac", "in"), _CASE),
    "function": "functions are not supported",
    "[[": _TEST,
    "]]": _TEST,
    "time": "timed pipelines are not supported",
    "coproc": "coprocesses are not supported",
}
# `{a,b}` / `{1..3}` with unquoted braces: bash expands it into several words.
_BRACE_EXPANSION = re.compile(r"\{[^{}\s]*(,|\.\.)[^{}\s]*\}")


@dataclass(frozen=True)
class Redirect:
    """`fd op target`, op one of < > >> <& >& (the last two duplicate `target`: a number or -)."""

    fd: int
    op: str
    target: Word


@dataclass(frozen=True)
class Command:
    """A simple command: `NAME=value ... argv... redirects...`."""

    assigns: tuple[tuple[str, Word], ...]
    argv: tuple[Word, ...]
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Subshell:
    """`( list )`: runs in a forked copy of the shell, so `cd` inside does not leak out."""

    body: CommandList
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[Command | Subshell, ...]
    negated: bool = False
    text: str = ""


@dataclass(frozen=True)
class AndOr:
    """`p1 && p2 || p3`, run in the background as one job when `background`."""

    first: Pipeline
    rest: tuple[tuple[str, Pipeline], ...] = ()
    background: bool = False
    text: str = ""


@dataclass(frozen=True)
class CommandList:
    items: tuple[AndOr, ...] = ()


def parse(source: str) -> CommandList:
    """Parse a complete input; raises IncompleteInput when more lines could complete it."""
    return _Parser(source, tokenize(source)).parse_program()


def split_assignment(token: Token) -> tuple[str, Word] | None:
    """`NAME=value` (NAME unquoted) -> (NAME, value parts); anything else -> None."""
    first = token.parts[0] if token.parts else None
    if not isinstance(first, Lit) or first.quoted or "=" not in first.text:
        return None
    name, _, rest = first.text.partition("=")
    if not NAME.fullmatch(name):
        return None
    value: Word = ((Lit(rest),) if rest else ()) + token.parts[1:]
    return name, value


def refuse_brace_expansion(word: Word) -> None:
    """Bash would make several words of `a{b,c}`; left as written it would mean another thing."""
    shape = "".join(
        part.text if isinstance(part, Lit) and not part.quoted else "q" for part in word
    )
    if match := _BRACE_EXPANSION.search(shape):
        raise Unsupported(f"'{match.group()}': brace expansion is not supported")


class _Parser:
    def __init__(self, source: str, tokens: list[Token]) -> None:
        self.src = source
        self.tokens = tokens
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def unexpected(self, eof_incomplete: bool = True) -> ShellSyntaxError:
        """The error for the current token; at EOF more input may complete it (after `|`, `&&`)."""
        token = self.tok
        if token.kind == "EOF" and eof_incomplete:
            return IncompleteInput("syntax error: unexpected end of file")
        return ShellSyntaxError(f"syntax error near unexpected token '{describe(token)}'")

    def skip_newlines(self) -> None:
        while self.tok.kind == "NEWLINE":
            self.advance()

    def parse_program(self) -> CommandList:
        body = self.parse_list(closing=None)
        if self.tok.kind != "EOF":
            raise self.unexpected()
        return body

    def parse_list(self, closing: str | None) -> CommandList:
        """and_or items up to EOF or the `closing` operator (left for the caller)."""
        items: list[AndOr] = []
        while True:
            self.skip_newlines()
            if self.tok.kind == "EOF" or (closing and self.tok.is_op(closing)):
                return CommandList(tuple(items))
            item = self.parse_and_or()
            if self.tok.is_op("&", ";"):
                sep = self.advance()
                item = AndOr(item.first, item.rest, background=sep.value == "&", text=item.text)
            elif not (self.tok.kind in ("NEWLINE", "EOF") or (closing and self.tok.is_op(closing))):
                raise self.unexpected()
            items.append(item)

    def parse_and_or(self) -> AndOr:
        start = self.tok.pos
        first = self.parse_pipeline()
        rest: list[tuple[str, Pipeline]] = []
        while self.tok.is_op("&&", "||"):
            op = self.advance().value
            self.skip_newlines()
            rest.append((op, self.parse_pipeline()))
        return AndOr(first, tuple(rest), text=self.text_from(start))

    def parse_pipeline(self) -> Pipeline:
        start = self.tok.pos
        negated = False
        while self.tok.kind == "WORD" and self.tok.value == "!":  # `! ! cmd` is `cmd` (bash)
            self.advance()
            negated = not negated
        commands = [self.parse_command()]
        while self.tok.is_op("|"):
            self.advance()
            self.skip_newlines()
            commands.append(self.parse_command())
        return Pipeline(tuple(commands), negated, self.text_from(start))

    def parse_command(self) -> Command | Subshell:
        if self.tok.is_op("("):
            nxt = self.tokens[self.i + 1]
            if nxt.is_op("(") and nxt.pos == self.tok.end:
                raise Unsupported(
                    "'((': arithmetic commands are not supported (nested subshells: '( (')"
                )
            self.advance()
            body = self.parse_list(closing=")")
            if not self.tok.is_op(")"):
                raise self.unexpected()
            if not body.items:
                raise ShellSyntaxError("syntax error near unexpected token ')'")
            self.advance()
            redirects = []
            while self.at_redirect():
                redirects.append(self.parse_redirect())
            if self.tok.kind == "WORD" or self.tok.is_op("("):
                raise self.unexpected()
            return Subshell(body, tuple(redirects))
        assigns: list[tuple[str, Word]] = []
        argv: list[Word] = []
        redirects: list[Redirect] = []
        while True:
            if self.at_redirect():
                redirects.append(self.parse_redirect())
            elif self.tok.kind == "WORD":
                if not argv:
                    self.refuse_reserved(self.tok)
                token = self.advance()
                assignment = None if argv else split_assignment(token)
                if assignment:
                    assigns.append(assignment)
                else:
                    refuse_brace_expansion(token.parts)
                    argv.append(token.parts)
            else:
                break
        if not (assigns or argv or redirects):
            raise self.unexpected()
        if self.tok.is_op("("):
            defines = self.tokens[self.i + 1].is_op(")")  # `name ( )`: a function definition
            if defines and len(argv) == 1 and not assigns and not redirects:
                raise Unsupported("function definitions 'name() ...' are not supported")
            raise self.unexpected()
        return Command(tuple(assigns), tuple(argv), tuple(redirects))

    def refuse_reserved(self, token: Token) -> None:
        """A reserved word where a command name goes: refuse (a `!` here is misplaced)."""
        if len(token.parts) != 1 or token.parts[0] != Lit(token.value):
            return  # quoted or expanded: `'if'` is an ordinary command name
        if token.value == "!":
            raise self.unexpected()
        if token.value in RESERVED:
            raise Unsupported(f"'{token.value}': {RESERVED[token.value]}")

    def at_redirect(self) -> bool:
        return self.tok.kind == "IO_NUMBER" or self.tok.is_op(">", ">>", "<", ">&", "<&", "<<")

    def parse_redirect(self) -> Redirect:
        fd = int(self.advance().value) if self.tok.kind == "IO_NUMBER" else None
        op = self.advance().value
        if op == "<<":
            raise Unsupported("here-documents (<<) are not supported")
        if self.tok.kind != "WORD":
            raise self.unexpected(eof_incomplete=False)
        target = self.advance().parts
        if fd is None:
            fd = 0 if op.startswith("<") else 1
        return Redirect(fd, op, target)

    def text_from(self, start: int) -> str:
        end = self.tokens[self.i - 1].end if self.i else start
        return self.src[start:end].strip()
