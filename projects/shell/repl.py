"""The interactive loop: prompts (PS1 escapes), line editing and history through readline.

Methods of `Shell` (projects/shell/executor.py), split out by concern; the state they use
is set in `Shell.__init__`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

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
        return render_prompt(self.lookup("PS1") or DEFAULT_PS1, self.env)

    def read_line(self, prompt: str) -> str | None:
        """One line from the terminal; None at end of input. Ctrl-C raises KeyboardInterrupt."""
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return input(prompt)
        except EOFError:
            return None
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def add_history(self, entry: str) -> None:
        entry = entry.strip()
        if not entry:
            return
        self.history.append(entry)
        if self.readline is not None:
            self.readline.add_history(entry)
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
        buffer = ""
        while True:
            try:
                if not buffer:
                    self.notify()
                line = self.read_line(self.prompt(continuation=bool(buffer)))
            except KeyboardInterrupt:
                self.out("\n")
                buffer, self.last_status = "", 130
                continue
            if line is None:
                if buffer:
                    self.error("syntax error: unexpected end of file")
                self.out("exit\n")
                raise ExitShell(self.last_status)
            try:
                expanded = history.expand(line, self.history)
            except history.HistoryError as exc:
                self.error(str(exc))
                buffer, self.last_status = "", 1
                continue
            if expanded != line:
                self.out(expanded + "\n")
            buffer += expanded + "\n"
            try:
                tree = parse(buffer)
            except IncompleteInput:
                continue
            except ShellSyntaxError as exc:
                self.add_history(buffer)
                self.error(str(exc))
                buffer, self.last_status = "", 2
                continue
            self.add_history(buffer)
            buffer = ""
            self.run_tree(tree)


def render_prompt(template: str, env: Mapping[str, str]) -> str:
    r"""PS1 escapes: \w cwd (~ for $HOME), \W its last part, \u user, \h host, \$ (# for root)."""
    cwd = os.getcwd()
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
    readline.clear_history()
    for entry in entries:
        readline.add_history(entry)
    return readline
