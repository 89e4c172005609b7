"""The interactive loop: prompts (PS1 escapes), line editing and history through readline.

Readline runs in the C locale with 8-bit input (`bytewise`): in a UTF-8 locale it drops or merges
invalid bytes, so the line run would differ from the line typed. A line that is not valid UTF-8
is then refused whole with one message. At the prompt (and only there: no foreground job or
`parallel` worker is waiting then) a SIGCHLD handler reaps finished background jobs at once.

Methods of `Shell` (projects/shell/executor.py), split out by concern; the state they use
is set in `Shell.__init__`.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext

from projects.shell import history
from projects.shell.base import (
    DEFAULT_PS1,
    DEFAULT_PS2,
    ExitShell,
)
from projects.shell.lexer import IncompleteInput, ShellSyntaxError
from projects.shell.parser import parse


class Repl:
    """Read a line, run it, report finished jobs; until EOF or `exit`."""

    def prompt(self, continuation: bool) -> str:
        if continuation:
            return self.lookup("PS2") or DEFAULT_PS2
        try:
            cwd = os.getcwd()
            self.cwd_lost = False
        except OSError as exc:  # the current directory was removed: say so once, go on
            cwd = self.lookup("PWD") or "?"
            if not self.cwd_lost:
                self.error(f"cannot read the current directory: {exc.strerror}")
                self.cwd_lost = True
        return render_prompt(self.lookup("PS1") or DEFAULT_PS1, self.env, cwd)

    def read_line(self, prompt: str) -> str | None:
        """One line from the terminal; None at end of input. Ctrl-C raises KeyboardInterrupt.
        Background jobs that end meanwhile are reaped at once (reported at the next prompt)."""
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, self._reap_at_prompt)
        try:
            self.reap()  # those that ended before the handler was set
            with bytewise(self.readline) if self.readline else nullcontext():
                return input(prompt)
        except EOFError:
            return None
        finally:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _reap_at_prompt(self, signum: int, frame: object) -> None:
        self.reap()

    def add_history(self, entry: str) -> None:
        entry = entry.strip()
        if not entry:
            return
        self.history.append(entry)
        if self.readline is not None:
            self.readline.add_history(as_bytes_for_readline(entry))
        if self.histfile is not None:
            try:
                history.append(self.histfile, entry)
            except OSError as exc:
                self.error(f"history: {self.histfile}: {exc.strerror}")
                self.histfile = None

    def interactive_loop(self) -> int:
        """Prompt, read (more lines while the input is incomplete), expand history, run."""
        self.histfile = history.history_path(self.env)
        try:
            self.history = history.load(self.histfile)
        except OSError as exc:
            self.error(f"history: {self.histfile}: {exc.strerror}")
        self.readline = load_readline(self.history)
        for stream in (sys.stdin, sys.stdout):  # bytes that are not UTF-8 reach us, not a crash
            stream.reconfigure(errors="surrogateescape")
        buffer = ""
        while True:
            try:
                buffer = self.interact(buffer)
            except (ExitShell, SystemExit):
                raise
            except Exception as exc:  # the session outlives any bug of ours
                self.error(f"internal error: {type(exc).__name__}: {exc}")
                buffer, self.last_status = "", 1

    def interact(self, buffer: str) -> str:
        """One prompt: read a line, add it to `buffer`; run it once complete. The new buffer."""
        try:
            if not buffer:
                self.notify()
            line = self.read_line(self.prompt(continuation=bool(buffer)))
        except KeyboardInterrupt:
            self.out("\n")
            self.last_status = 130
            return ""
        if line is None:
            if buffer:
                self.error("syntax error: unexpected end of file")
            self.out("exit\n")
            raise ExitShell(self.last_status)
        try:
            expanded = history.expand(line, self.history)
        except history.HistoryError as exc:
            self.error(str(exc))
            self.last_status = 1
            return ""
        if expanded != line:
            self.out(expanded + "\n")
        buffer += expanded + "\n"
        if bad := not_utf8(buffer):
            self.add_history(buffer)  # kept, so the line can be recalled and mended
            self.error(f"the line is not valid UTF-8 (byte {bad}): nothing was run")
            self.last_status = 2
            return ""
        try:
            tree = parse(buffer)
        except IncompleteInput:
            return buffer
        except ShellSyntaxError as exc:
            self.add_history(buffer)
            self.error(str(exc))
            self.last_status = 2
            return ""
        self.add_history(buffer)
        self.run_tree(tree)
        return ""


def not_utf8(text: str) -> str | None:
    """The first byte of `text` (read with surrogateescape) that is not UTF-8, as `0xff`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"0x{ord(text[exc.start]) - 0xDC00:02x}"
    return None


def as_bytes_for_readline(entry: str) -> str:
    """Every non-ASCII byte as a surrogate escape: readline's encoder (the locale's, maybe
    ASCII) then gives back exactly the bytes typed."""
    return entry.encode("utf-8", "surrogateescape").decode("ascii", "surrogateescape")


@contextmanager
def bytewise(readline) -> Iterator[None]:
    """Run readline in the C locale (CPython sets LC_CTYPE from the environment around each
    call): one byte, one character, so no byte is dropped. Children get `self.env`, not this."""
    saved = os.environ.get("LC_ALL")
    os.putenv("LC_ALL", "C")
    try:
        yield
    finally:
        if saved is None:
            os.unsetenv("LC_ALL")
        else:
            os.putenv("LC_ALL", saved)


def render_prompt(template: str, env: Mapping[str, str], cwd: str) -> str:
    r"""PS1 escapes: \w cwd (~ for $HOME), \W its last part, \u user, \h host, \$ (# for root)."""
    home = env.get("HOME", "")
    short = (
        "~" + cwd[len(home) :] if home and (cwd + "/").startswith(home.rstrip("/") + "/") else cwd
    )
    swaps = {
        "w": short,
        "W": os.path.basename(cwd) or "/",
        "u": env.get("USER") or env.get("LOGNAME") or str(os.getuid()),
        "h": os.uname().nodename.split(".")[0],
        "$": "#" if os.geteuid() == 0 else "$",
        "n": "\n",
        "\\": "\\",
        "[": "",
        "]": "",
    }
    out, i = [], 0
    while i < len(template):
        if template[i] == "\\" and template[i + 1 : i + 2] in swaps:
            out.append(swaps[template[i + 1]])
            i += 2
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def load_readline(entries: list[str]):
    """GNU readline for line editing and arrow-key history, when Python has it."""
    if os.environ.get("TERM") == "dumb":
        return None
    try:
        import readline
    except ImportError:
        return None
    for setting in ("input-meta on", "output-meta on", "convert-meta off"):
        readline.parse_and_bind(f"set {setting}")  # 8-bit bytes are text, not Meta keys
    readline.clear_history()
    for entry in entries:
        readline.add_history(as_bytes_for_readline(entry))
    return readline
