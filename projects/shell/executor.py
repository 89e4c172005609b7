"""The executor: runs the AST with fork/execvp/waitpid, pipes with pipe/dup2, and job control.

Processes: every command of a pipeline is a forked child; an external command then `execvpe`s,
a builtin or `( subshell )` runs in the child's copy of the shell. A lone foreground builtin runs
in the shell itself (so `cd` and `export` stick), its redirections applied to the shell's own file
descriptors and undone afterwards.

Job control (interactive only): each pipeline is a process group; the foreground one owns the
terminal (`tcsetpgrp`), so Ctrl-C / Ctrl-Z from the keyboard reach it and not the shell. The shell
ignores SIGINT while a command runs (at the prompt a Ctrl-C discards the line), and ignores SIGTSTP,
SIGTTIN, SIGTTOU and SIGQUIT; children put back the default dispositions before they exec.

The `Shell` class is split by concern: this module holds its state, variables, the walk over the
parsed tree, builtins and redirections; `processes.py`, `jobcontrol.py` and `repl.py` hold the
rest of its methods (mixins over the same state), `base.py` what they all share.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager, suppress
from pathlib import Path

from projects.shell.base import (
    PROG,
    ExitShell,
    RedirectError,
    close_quietly,
    dup_or_none,
    write_all,
)
from projects.shell.builtins import BUILTINS
from projects.shell.expand import expand_string, expand_word
from projects.shell.jobcontrol import JobControl
from projects.shell.jobs import JobTable
from projects.shell.lexer import IncompleteInput, ShellSyntaxError
from projects.shell.parser import AndOr, Command, CommandList, Pipeline, Redirect, Subshell, parse
from projects.shell.processes import Processes
from projects.shell.repl import Repl


class Shell(Processes, JobControl, Repl):
    """The shell's state (variables, jobs, history, terminal) and the methods that run commands."""

    def __init__(
        self,
        env: MutableMapping[str, str] | None = None,
        argv0: str = PROG,
        args: list[str] | None = None,
    ) -> None:
        self.env: MutableMapping[str, str] = os.environ if env is None else env
        self.vars: dict[str, str] = {}  # shell variables not exported to children
        self.argv0 = argv0
        self.args = list(args or [])
        self.last_status = 0
        self.last_bg_pid: int | None = None
        self.pid = os.getpid()
        self.interactive = False
        self.job_control = False
        self.in_child = False
        self.tty_fd = -1
        self.shell_pgid = os.getpgrp()
        self.tmodes: list | None = None
        self.jobs = JobTable()
        self.history: list[str] = []
        self.histfile: Path | None = None
        self.got_sigint = False
        self.warned_stopped = False
        self.fork_lock = threading.RLock()
        self.child_mask: set[signal.Signals] = set()
        # Signals ignored when the shell started stay ignored in its children (as in sh).
        self.ignored_at_start = {
            sig
            for sig in (signal.SIGINT, signal.SIGQUIT)
            if signal.getsignal(sig) == signal.SIG_IGN
        }
        self.readline = None
        self.cwd_lost = False  # the prompt said the current directory is gone

    # ------------------------------------------------------------------ variables and output
    def lookup(self, name: str) -> str | None:
        """$NAME and the special parameters $? $$ $! $# $0 $1..$9 $@ $*."""
        if name == "?":
            return str(self.last_status)
        if name == "$":
            return str(self.pid)
        if name == "!":
            return "" if self.last_bg_pid is None else str(self.last_bg_pid)
        if name == "#":
            return str(len(self.args))
        if name == "0":
            return self.argv0
        if name.isdigit():
            k = int(name)
            return self.args[k - 1] if k <= len(self.args) else ""
        if name in ("@", "*"):
            return " ".join(self.args)
        if name in self.vars:
            return self.vars[name]
        return self.env.get(name)

    def set_var(self, name: str, value: str) -> None:
        """Assign; a variable already exported stays exported (as in sh)."""
        if name in self.env:
            self.env[name] = value
        else:
            self.vars[name] = value

    def out(self, text: str) -> None:
        write_all(1, text.encode("utf-8", "surrogateescape"))

    def error(self, message: str) -> None:
        """`pyshell: message` on stderr; never raises (stderr may be closed)."""
        with suppress(OSError):
            write_all(2, f"{PROG}: {message}\n".encode("utf-8", "surrogateescape"))

    # ------------------------------------------------------------------ running source text
    def run_source(self, text: str) -> int:
        """Run a script or `-c` string one complete command at a time (as sh does: earlier
        commands run before a later syntax error is found, which is fatal here)."""
        buffer, lineno = "", 0
        for line in text.splitlines(keepends=True):
            lineno += 1
            buffer += line
            try:
                tree = parse(buffer)
            except IncompleteInput:
                continue
            except ShellSyntaxError as exc:
                self.error(f"line {lineno}: {exc}")
                raise ExitShell(2) from None
            buffer = ""
            self.run_tree(tree)
        if buffer.strip():
            try:
                parse(buffer)
            except ShellSyntaxError as exc:
                self.error(f"line {lineno}: {exc}")
                raise ExitShell(2) from None
        return self.last_status

    def run_tree(self, tree: CommandList) -> int:
        """Execute, turning any internal error into a message and status 1: the shell goes on."""
        try:
            self.last_status = self.execute(tree)
        except (ExitShell, SystemExit):
            raise
        except KeyboardInterrupt:
            self.out("\n")
            self.last_status = 130
        except Exception as exc:  # a shell must survive its own bugs
            self.error(f"internal error: {type(exc).__name__}: {exc}")
            self.last_status = 1
            self.take_terminal()
        return self.last_status

    def execute(self, tree: CommandList) -> int:
        for item in tree.items:
            if item.background:
                self.last_status = self.launch_background(item)
            else:
                self.last_status = self.run_and_or(item)
        return self.last_status

    def run_and_or(self, item: AndOr) -> int:
        status = self.run_pipeline(item.first)
        for op, pipeline in item.rest:
            self.last_status = status
            if (op == "&&") == (status == 0):
                status = self.run_pipeline(pipeline)
        return status

    def run_pipeline(self, pipeline: Pipeline) -> int:
        only = pipeline.commands[0]
        if len(pipeline.commands) == 1 and isinstance(only, Command):
            argv = self.expand_argv(only)
            if not argv or self.is_builtin(argv[0]):
                status = self.run_in_shell(only, argv)
                return int(status == 0) if pipeline.negated else status
            job = self.launch(pipeline, background=False, argv=argv)
        else:
            job = self.launch(pipeline, background=False)
        return self.wait_foreground(job)

    def launch_background(self, item: AndOr) -> int:
        """`... &`: a pipeline becomes a job; an and-or list runs in one forked subshell."""
        if item.rest:
            pipeline = Pipeline((Subshell(CommandList((AndOr(item.first, item.rest),))),))
        else:
            pipeline = item.first
        job = self.launch(pipeline, background=True, text=item.text)
        self.jobs.add(job)
        self.last_bg_pid = job.processes[-1].pid
        if self.interactive:
            self.out(f"[{job.number}] {self.last_bg_pid}\n")
        return 0

    # ------------------------------------------------------------------ builtins in the shell
    def is_builtin(self, name: str) -> bool:
        return name in BUILTINS

    def run_builtin(self, argv: list[str]) -> int:
        try:
            return BUILTINS[argv[0]](self, argv)
        except BrokenPipeError:
            self.error(f"{argv[0]}: write error: Broken pipe")
            return 1

    def run_in_shell(self, command: Command, argv: list[str]) -> int:
        """A builtin or a bare assignment, in this process; redirections are undone after."""
        saved: list[tuple[int, int | None]] = []
        try:
            self.apply_redirects(command.redirects, saved)
        except RedirectError as exc:
            self.restore_fds(saved)
            self.error(str(exc))
            return 1
        try:
            if not argv:
                for name, value in command.assigns:
                    self.set_var(name, expand_string(value, self.lookup))
                return 0
            with self.temporary_vars(command.assigns):
                return self.run_builtin(argv)
        finally:
            self.restore_fds(saved)

    @contextmanager
    def temporary_vars(self, assigns: tuple) -> Iterator[None]:
        """`NAME=value builtin`: the assignment holds for that builtin only."""
        values = [(name, expand_string(value, self.lookup)) for name, value in assigns]
        old = {name: (self.vars.get(name), self.env.get(name)) for name, _ in values}
        for name, value in values:
            self.set_var(name, value)
        try:
            yield
        finally:
            for name, (local, exported) in old.items():
                for store, value in ((self.vars, local), (self.env, exported)):
                    if value is None:
                        store.pop(name, None)
                    else:
                        store[name] = value

    def expand_argv(self, command: Command) -> list[str]:
        return [field for word in command.argv for field in expand_word(word, self.lookup)]

    # ------------------------------------------------------------------ redirections
    def apply_redirects(
        self, redirects: tuple[Redirect, ...], saved: list[tuple[int, int | None]] | None
    ) -> None:
        """Point file descriptors where the redirections say, in order (`>f 2>&1` differs from
        `2>&1 >f`). With `saved`, each fd's old target is kept for `restore_fds`."""
        for redirect in redirects:
            words = expand_word(redirect.target, self.lookup)
            if len(words) != 1:
                raise RedirectError(
                    f"{expand_string(redirect.target, self.lookup)}: ambiguous redirect"
                )
            target, fd = words[0], redirect.fd
            if saved is not None:
                saved.append((fd, dup_or_none(fd)))
            if redirect.op in (">&", "<&"):
                if target == "-":
                    close_quietly(fd)
                    continue
                if not target.isdigit():
                    raise RedirectError(f"{target}: ambiguous redirect")
                try:
                    os.dup2(int(target), fd)
                except OSError:
                    raise RedirectError(f"{target}: Bad file descriptor") from None
                continue
            flags = {
                "<": os.O_RDONLY,
                ">": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                ">>": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            }[redirect.op]
            try:
                opened = os.open(target, flags, 0o666)
            except OSError as exc:
                raise RedirectError(f"{target}: {exc.strerror}") from None
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
            else:
                os.set_inheritable(fd, True)

    def restore_fds(self, saved: list[tuple[int, int | None]]) -> None:
        for fd, copy in reversed(saved):
            if copy is None:
                close_quietly(fd)
            else:
                os.dup2(copy, fd)
                os.close(copy)
        saved.clear()
