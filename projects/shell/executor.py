"""The executor: runs the AST with fork/execvp/waitpid, pipes with pipe/dup2, and job control.

Processes: every command of a pipeline is a forked child; an external command then `execvpe`s,
a builtin or `( subshell )` runs in the child's copy of the shell. A lone foreground builtin runs
in the shell itself (so `cd` and `export` stick), its redirections applied to the shell's own file
descriptors and undone afterwards.

Job control (interactive only): each pipeline is a process group; the foreground one owns the
terminal (`tcsetpgrp`), so Ctrl-C / Ctrl-Z from the keyboard reach it and not the shell. The shell
ignores SIGINT while a command runs (at the prompt a Ctrl-C discards the line), and ignores SIGTSTP,
SIGTTIN, SIGTTOU and SIGQUIT; children put back the default dispositions before they exec.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import signal
import sys
import termios
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager, suppress
from pathlib import Path

from projects.shell import history
from projects.shell.expand import expand_string, expand_word
from projects.shell.jobs import Job, JobTable, Process, decode_wait_status
from projects.shell.lexer import IncompleteInput, ShellSyntaxError
from projects.shell.parser import AndOr, Command, CommandList, Pipeline, Redirect, Subshell, parse

PROG = "pyshell"
DEFAULT_PS1 = "pyshell:\\w\\$ "
DEFAULT_PS2 = "> "
# Dispositions the shell changes and its children put back (Python itself ignores SIGPIPE/SIGXFSZ).
CHILD_DEFAULT_SIGNALS = (
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGPIPE,
    signal.SIGXFSZ,
    signal.SIGHUP,
    signal.SIGCHLD,
)
# Blocked across fork: a keyboard signal that arrives before the child has put back the default
# dispositions then stays pending (and is delivered when the child unblocks) instead of being lost.
FORK_BLOCKED = {signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGHUP}


class ExitShell(Exception):
    """Raised by `exit` (and fatal errors): unwinds to the top level, or ends a forked child."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class RedirectError(Exception):
    """A redirection that failed (missing file, ambiguous target): the command does not run."""


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Shell:
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
        from projects.shell.builtins import BUILTINS

        return name in BUILTINS

    def run_builtin(self, argv: list[str]) -> int:
        from projects.shell.builtins import BUILTINS

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
                saved.append((fd, _dup_or_none(fd)))
            if redirect.op in (">&", "<&"):
                if target == "-":
                    _close_quietly(fd)
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
                _close_quietly(fd)
            else:
                os.dup2(copy, fd)
                os.close(copy)
        saved.clear()

    # ------------------------------------------------------------------ processes
    def launch(
        self,
        pipeline: Pipeline,
        background: bool,
        argv: list[str] | None = None,
        text: str | None = None,
    ) -> Job:
        """Fork one child per command, wired with pipes, in one process group under job control."""
        job = Job(
            pgid=0,
            text=pipeline.text if text is None else text,
            processes=[],
            background=background,
            negated=pipeline.negated,
        )
        last = len(pipeline.commands) - 1
        prev_read: int | None = None
        for k, command in enumerate(pipeline.commands):
            read_end, write_end = os.pipe() if k < last else (None, None)
            pid = self.fork()
            if pid == 0:
                self._child(
                    command, job, background, prev_read, write_end, read_end, argv, first=k == 0
                )
            job.processes.append(Process(pid))
            if self.job_control:
                job.pgid = job.pgid or pid
                with suppress(OSError):  # the child got there first, or has already exec'd
                    os.setpgid(pid, job.pgid)
            for fd in (prev_read, write_end):
                if fd is not None:
                    os.close(fd)
            prev_read = read_end
        if self.job_control and not background:
            self.give_terminal(job.pgid)
        return job

    def _child(
        self,
        command: Command | Subshell,
        job: Job,
        background: bool,
        stdin_fd: int | None,
        stdout_fd: int | None,
        unused_fd: int | None,
        argv: list[str] | None,
        first: bool,
    ) -> None:
        """In the forked child: join the job's process group, wire the pipes, run; never returns."""
        status = 1
        try:
            if self.job_control:  # keyboard signals are blocked and SIGTTOU ignored until
                pgid = job.pgid or os.getpid()  # become_child: nothing is lost meanwhile
                with suppress(OSError):
                    os.setpgid(0, pgid)
                    if not background:
                        os.tcsetpgrp(self.tty_fd, pgid)
            no_job_control_bg = background and not self.job_control
            self.become_child(ignore_interrupts=no_job_control_bg)
            if stdin_fd is not None:
                os.dup2(stdin_fd, 0)
                os.close(stdin_fd)
            elif no_job_control_bg and first:  # sh: a background job without job control
                _stdin_from_devnull()  # must not compete for the terminal
            if stdout_fd is not None:
                os.dup2(stdout_fd, 1)
                os.close(stdout_fd)
            if unused_fd is not None:
                os.close(unused_fd)
            status = self.run_child_command(command, argv)
        except ExitShell as exc:
            status = exc.status
        except BaseException as exc:  # report, then leave the child whatever happened
            self.error(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            os._exit(status & 0xFF)

    def fork(self) -> int:
        """os.fork with FORK_BLOCKED blocked across it (the child unblocks in `become_child`)."""
        with self.fork_lock:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, FORK_BLOCKED)
            pid = os.fork()
            if pid == 0:
                self.child_mask = old
                return 0
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            return pid

    def become_child(self, ignore_interrupts: bool = False) -> None:
        """A forked copy of the shell is a non-interactive subshell with default signals."""
        self.in_child = True
        self.interactive = False
        self.job_control = False  # (its copy of the job table still lets `jobs | cat` list them)
        self.fork_lock = threading.RLock()
        for sig in (signal.SIGINT, signal.SIGQUIT):
            ignored = ignore_interrupts or sig in self.ignored_at_start
            signal.signal(sig, signal.SIG_IGN if ignored else signal.SIG_DFL)
        for sig in CHILD_DEFAULT_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.child_mask)

    def run_child_command(self, command: Command | Subshell, argv: list[str] | None) -> int:
        """Run one pipeline element inside its child: exec, builtin, or subshell body."""
        if isinstance(command, Subshell):
            try:
                self.apply_redirects(command.redirects, None)
            except RedirectError as exc:
                self.error(str(exc))
                return 1
            return self.execute(command.body)
        if argv is None:
            argv = self.expand_argv(command)
        try:
            self.apply_redirects(command.redirects, None)
        except RedirectError as exc:
            self.error(str(exc))
            return 1
        if not argv:
            return 0
        if self.is_builtin(argv[0]):
            with self.temporary_vars(command.assigns):
                return self.run_builtin(argv)
        env = dict(self.env)
        env.update((name, expand_string(value, self.lookup)) for name, value in command.assigns)
        return self.exec_external(argv, env)

    def exec_external(self, argv: list[str], env: Mapping[str, str]) -> int:
        """execvpe, which returns only on failure: 127 not found, 126 found but not runnable."""
        name = argv[0]
        try:
            os.execvpe(name, argv, env)
        except FileNotFoundError:
            if "/" in name:
                self.error(f"{name}: No such file or directory")
            else:
                self.error(f"{name}: command not found")
            return 127
        except PermissionError:
            reason = "Is a directory" if os.path.isdir(name) else "Permission denied"
            self.error(f"{name}: {reason}")
            return 126
        except (OSError, ValueError) as exc:
            self.error(f"{name}: {getattr(exc, 'strerror', None) or exc}")
            return 126
        return 126  # not reached: execvpe does not return

    def capture(self, tree: CommandList) -> tuple[bytes, bytes, int]:
        """Run `tree` in a forked subshell; return its stdout, stderr and status (used by the
        `parallel` builtin from worker threads, each command with its own pair of pipes)."""
        with self.fork_lock:  # so no other child inherits this pipe's write end
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            pid = self.fork()
            if pid == 0:
                status = 1
                try:
                    self.become_child()
                    os.dup2(out_w, 1)
                    os.dup2(err_w, 2)
                    _stdin_from_devnull()
                    for fd in (out_r, out_w, err_r, err_w):
                        os.close(fd)
                    status = self.execute(tree)
                except ExitShell as exc:
                    status = exc.status
                except BaseException as exc:
                    self.error(f"internal error: {type(exc).__name__}: {exc}")
                finally:
                    os._exit(status & 0xFF)
            os.close(out_w)
            os.close(err_w)
        chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
        with selectors.DefaultSelector() as sel:
            for fd in chunks:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                for key, _ in sel.select():
                    data = os.read(key.fd, 65536)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        sel.unregister(key.fd)
                        os.close(key.fd)
        _, wait_status = os.waitpid(pid, 0)
        status, _, _ = decode_wait_status(wait_status)
        return b"".join(chunks[out_r]), b"".join(chunks[err_r]), status or 0

    # ------------------------------------------------------------------ waiting
    def wait_foreground(self, job: Job) -> int:
        """Wait until the job ends or stops; then take the terminal back."""
        self.wait_until(job, stop_counts=self.job_control)
        self.take_terminal(job)
        if job.stopped:
            self.jobs.add(job)
            job.reported = "Stopped"
            self.out(f"\n{self.jobs.describe(job)}\n")
            return 128 + signal.SIGTSTP
        if job.number:
            self.jobs.remove(job)
        last = job.processes[-1]
        if last.signaled and last.status == 128 + signal.SIGINT:
            if self.interactive:
                self.out("\n")
            elif self.got_sigint and not self.in_child:  # Ctrl-C while a script ran: stop it
                raise ExitShell(130)
        elif self.interactive and last.signaled and last.status != 128 + signal.SIGPIPE:
            write_all(2, f"{job.state()}\n".encode())  # "Killed", "Terminated", as bash says
        self.got_sigint = False
        return job.status

    def wait_until(self, job: Job, stop_counts: bool) -> None:
        """Reap children (any of ours, background ones too) until `job` is done or stopped."""
        options = os.WUNTRACED if stop_counts else 0
        while not job.done and not (stop_counts and job.stopped):
            try:
                pid, wait_status = os.waitpid(-1, options)
            except ChildProcessError:  # nothing left to wait for
                for proc in job.processes:
                    if proc.status is None:
                        proc.status = 0
                return
            self.jobs.record([job, *self.jobs.jobs.values()], pid, wait_status)

    def reap(self) -> None:
        """Collect finished or stopped background children without blocking."""
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.jobs.record(list(self.jobs.jobs.values()), pid, wait_status)

    def notify(self) -> None:
        """Before a prompt: report background jobs that finished or stopped since the last one."""
        self.reap()
        for number in sorted(self.jobs.jobs):
            job = self.jobs.jobs[number]
            state = job.state()
            if job.done:
                self.out(self.jobs.describe(job) + "\n")
                self.jobs.remove(job)
            elif state != job.reported:
                if job.reported or state == "Stopped":
                    self.out(self.jobs.describe(job) + "\n")
                job.reported = state

    def foreground(self, job: Job) -> int:
        """`fg`: give the job the terminal, continue it, wait for it."""
        job.background = False
        self.jobs.make_current(job)
        self.out(job.text + "\n")
        if self.job_control:
            if job.tmodes is not None:
                _set_tmodes(self.tty_fd, job.tmodes)
            self.give_terminal(job.pgid)
        for proc in job.processes:
            proc.stopped = False
        job.reported = "Running"
        _signal_job(job, signal.SIGCONT)
        return self.wait_foreground(job)

    def background(self, job: Job) -> None:
        """`bg`: continue a stopped job without giving it the terminal."""
        job.background = True
        for proc in job.processes:
            proc.stopped = False
        job.reported = "Running"
        _signal_job(job, signal.SIGCONT)

    def hang_up_jobs(self, running_too: bool) -> None:
        """Leaving: stopped jobs get SIGHUP then SIGCONT (so they see it); on a hangup of the
        terminal itself, running jobs get SIGHUP too (as bash does)."""
        self.reap()
        for job in list(self.jobs.jobs.values()):
            if job.stopped or (running_too and not job.done):
                _signal_job(job, signal.SIGHUP)
                _signal_job(job, signal.SIGCONT)

    # ------------------------------------------------------------------ terminal
    def init_interactive(self) -> None:
        """Take control of the terminal: own process group, foreground, job-control signals."""
        self.interactive = True
        try:
            self.tty_fd = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 10)
        except OSError:
            return
        while os.tcgetpgrp(self.tty_fd) != os.getpgrp():  # started in the background: wait
            os.killpg(os.getpgrp(), signal.SIGTTIN)
        for sig in (signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, self._on_hangup)
        if os.getpgrp() != os.getpid():
            with suppress(OSError):
                os.setpgid(0, 0)
        self.shell_pgid = os.getpgrp()
        try:
            os.tcsetpgrp(self.tty_fd, self.shell_pgid)
            self.tmodes = termios.tcgetattr(self.tty_fd)
        except (OSError, termios.error):
            return
        self.job_control = True

    def init_noninteractive(self) -> None:
        """Without a terminal: a Ctrl-C is only noted, so that a killed child stops the script."""
        self.interactive = False
        if signal.SIGINT not in self.ignored_at_start:
            signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: object) -> None:
        self.got_sigint = True

    def _on_hangup(self, signum: int, frame: object) -> None:
        self.hang_up_jobs(running_too=True)
        os._exit(128 + signal.SIGHUP)

    def give_terminal(self, pgid: int) -> None:
        if self.job_control and pgid:
            with suppress(OSError):
                os.tcsetpgrp(self.tty_fd, pgid)

    def take_terminal(self, job: Job | None = None) -> None:
        """Back to the shell's process group and terminal modes (a job may have changed them)."""
        if not self.job_control:
            return
        try:
            os.tcsetpgrp(self.tty_fd, self.shell_pgid)
            if job is not None and job.stopped:
                job.tmodes = termios.tcgetattr(self.tty_fd)
            if self.tmodes is not None:
                _set_tmodes(self.tty_fd, self.tmodes)
        except (OSError, termios.error):
            pass

    # ------------------------------------------------------------------ interactive loop
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
        self.readline = _load_readline(self.history)
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


def _load_readline(entries: list[str]):
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


def _dup_or_none(fd: int) -> int | None:
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    except OSError:
        return None


def _close_quietly(fd: int) -> None:
    with suppress(OSError):
        os.close(fd)


def _stdin_from_devnull() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    if fd != 0:
        os.dup2(fd, 0)
        os.close(fd)


def _set_tmodes(fd: int, modes: list) -> None:
    with suppress(termios.error):
        termios.tcsetattr(fd, termios.TCSADRAIN, modes)


def _signal_job(job: Job, sig: int) -> None:
    """Signal the job's process group, or each of its processes without job control."""
    try:
        if job.pgid:
            os.killpg(job.pgid, sig)
            return
    except ProcessLookupError:
        return
    for proc in job.processes:
        if proc.status is None:
            with suppress(ProcessLookupError):
                os.kill(proc.pid, sig)


def main(argv: list[str] | None = None) -> int:
    """`python -m projects.shell [-c CMD [NAME [ARGS...]] | SCRIPT [ARGS...]]`; stdin otherwise."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["-c"]:
            if len(args) < 2:
                sys.stderr.write(f"{PROG}: -c: option requires an argument\n")
                return 2
            rest = args[2:]
            shell = Shell(argv0=rest[0] if rest else PROG, args=rest[1:])
            shell.init_noninteractive()
            return shell.run_source(args[1])
        if args[:1] in (["-h"], ["--help"]):
            sys.stdout.write(main.__doc__ + "\n")
            return 0
        if args:
            try:
                text = Path(args[0]).read_text(encoding="utf-8", errors="surrogateescape")
            except OSError as exc:
                sys.stderr.write(f"{PROG}: {args[0]}: {exc.strerror}\n")
                return 127
            shell = Shell(argv0=args[0], args=args[1:])
            shell.init_noninteractive()
            return shell.run_source(text)
        if os.isatty(0):
            shell = Shell()
            shell.init_interactive()
            try:
                return shell.interactive_loop()
            finally:
                shell.hang_up_jobs(running_too=False)
        shell = Shell()
        shell.init_noninteractive()
        return shell.run_source(sys.stdin.read())
    except ExitShell as exc:
        return exc.status & 0xFF
