"""Job control: waiting for jobs, reaping and reporting them, fg/bg, and the terminal's
foreground process group (interactive shells only).

Methods of `Shell` (projects/shell/executor.py), split out by concern; the state they use
is set in `Shell.__init__`.
"""

from __future__ import annotations

import fcntl
import os
import signal
import termios
from contextlib import suppress

from projects.shell.base import (
    ExitShell,
    set_tmodes,
    signal_job,
    write_all,
)
from projects.shell.jobs import Job


class JobControl:
    """Waiting, reaping, foreground/background, and who owns the terminal."""

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
                set_tmodes(self.tty_fd, job.tmodes)
            self.give_terminal(job.pgid)
        for proc in job.processes:
            proc.stopped = False
        job.reported = "Running"
        signal_job(job, signal.SIGCONT)
        return self.wait_foreground(job)

    def background(self, job: Job) -> None:
        """`bg`: continue a stopped job without giving it the terminal."""
        job.background = True
        for proc in job.processes:
            proc.stopped = False
        job.reported = "Running"
        signal_job(job, signal.SIGCONT)

    def hang_up_jobs(self, running_too: bool) -> None:
        """Leaving: stopped jobs get SIGHUP then SIGCONT (so they see it); on a hangup of the
        terminal itself, running jobs get SIGHUP too (as bash does)."""
        self.reap()
        for job in list(self.jobs.jobs.values()):
            if job.stopped or (running_too and not job.done):
                signal_job(job, signal.SIGHUP)
                signal_job(job, signal.SIGCONT)

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
                set_tmodes(self.tty_fd, self.tmodes)
        except (OSError, termios.error):
            pass
