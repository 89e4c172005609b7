"""What every part of the shell shares: its name and prompts, the signals it changes, the exit
exception, and the raw file-descriptor and signal helpers."""

from __future__ import annotations

import fcntl
import os
import signal
import termios
from contextlib import suppress

from projects.shell.jobs import Job

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


def dup_or_none(fd: int) -> int | None:
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    except OSError:
        return None


def close_quietly(fd: int) -> None:
    with suppress(OSError):
        os.close(fd)


def stdin_from_devnull() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    if fd != 0:
        os.dup2(fd, 0)
        os.close(fd)


def set_tmodes(fd: int, modes: list) -> None:
    with suppress(termios.error):
        termios.tcsetattr(fd, termios.TCSADRAIN, modes)


def signal_job(job: Job, sig: int) -> None:
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
