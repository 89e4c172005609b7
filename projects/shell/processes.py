"""Processes: fork, the child's set-up (process group, signals, redirections), exec, and
command substitution's capture.

Methods of `Shell` (projects/shell/executor.py), split out by concern; the state they use
is set in `Shell.__init__`.
"""

from __future__ import annotations

import os
import selectors
import signal
import threading
from collections.abc import Mapping
from contextlib import suppress

from projects.shell.base import (
    CHILD_DEFAULT_SIGNALS,
    FORK_BLOCKED,
    ExitShell,
    RedirectError,
    stdin_from_devnull,
)
from projects.shell.expand import expand_string
from projects.shell.jobs import Job, Process, decode_wait_status
from projects.shell.parser import Command, CommandList, Pipeline, Subshell


class Processes:
    """Starting the processes of a pipeline and running a command in a child."""

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
                stdin_from_devnull()  # must not compete for the terminal
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
                    stdin_from_devnull()
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
