"""Jobs: the processes of one pipeline, their process group, and the table `jobs`/`fg` work on.

This module only keeps state; it never forks or waits. The executor feeds it `os.waitpid`
results through `JobTable.record`.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field


@dataclass
class Process:
    pid: int
    status: int | None = None  # exit status once finished, 128+N when killed by signal N
    stopped: bool = False
    signaled: bool = False


@dataclass
class Job:
    """One pipeline (or backgrounded and-or list) and its process group (0 without job control)."""

    pgid: int
    text: str
    processes: list[Process]
    background: bool = False
    negated: bool = False
    number: int = 0  # 0 until the job enters the table (a background or stopped job)
    tmodes: list | None = None  # terminal modes saved when the job stopped
    reported: str = ""  # the state last announced to the user (Running, Stopped)

    @property
    def done(self) -> bool:
        return all(p.status is not None for p in self.processes)

    @property
    def stopped(self) -> bool:
        return not self.done and all(p.stopped or p.status is not None for p in self.processes)

    @property
    def status(self) -> int:
        """A pipeline's status is its last command's (inverted by `!`)."""
        last = self.processes[-1].status or 0
        return int(last == 0) if self.negated else last

    def state(self) -> str:
        """The word `jobs` prints: Running, Stopped, Done, Exit N or the signal's name."""
        if self.stopped:
            return "Stopped"
        if not self.done:
            return "Running"
        last = self.processes[-1]
        status = last.status or 0
        if last.signaled:
            sig = status - 128
            return _SIGNAL_WORDS.get(sig) or signal.strsignal(sig) or f"Signal {sig}"
        return "Done" if status == 0 else f"Exit {status}"


_SIGNAL_WORDS = {
    signal.SIGHUP: "Hangup",
    signal.SIGINT: "Interrupt",
    signal.SIGQUIT: "Quit",
    signal.SIGKILL: "Killed",
    signal.SIGSEGV: "Segmentation fault",
    signal.SIGTERM: "Terminated",
    signal.SIGABRT: "Aborted",
}


def decode_wait_status(wait_status: int) -> tuple[int | None, bool, bool]:
    """`os.waitpid`'s status -> (exit status, None while stopped; stopped?; killed by a signal?)."""
    if os.WIFSTOPPED(wait_status):
        return None, True, False
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status), False, True
    return os.WEXITSTATUS(wait_status), False, False


@dataclass
class JobTable:
    """Numbered jobs; `order` is oldest first, so the current job (`%+`) is order[-1]."""

    jobs: dict[int, Job] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)

    def add(self, job: Job) -> int:
        if not job.number:
            job.number = next(n for n in range(1, len(self.jobs) + 2) if n not in self.jobs)
            self.jobs[job.number] = job
        self.make_current(job)
        return job.number

    def make_current(self, job: Job) -> None:
        if job.number in self.order:
            self.order.remove(job.number)
        self.order.append(job.number)

    def remove(self, job: Job) -> None:
        self.jobs.pop(job.number, None)
        if job.number in self.order:
            self.order.remove(job.number)
        job.number = 0

    def record(self, jobs: list[Job], pid: int, wait_status: int) -> Job | None:
        """Apply one waitpid result to whichever of `jobs` owns `pid`; returns that job."""
        status, stopped, signaled = decode_wait_status(wait_status)
        for job in jobs:
            for proc in job.processes:
                if proc.pid == pid:
                    proc.status, proc.stopped, proc.signaled = status, stopped, signaled
                    return job
        return None

    def mark(self, job: Job) -> str:
        if self.order and self.order[-1] == job.number:
            return "+"
        if len(self.order) > 1 and self.order[-2] == job.number:
            return "-"
        return " "

    def describe(self, job: Job) -> str:
        """`[1]+  Running                 sleep 10 &`, laid out as bash does."""
        state = job.state()
        suffix = " &" if job.background and state == "Running" else ""
        return f"[{job.number}]{self.mark(job)}  {state:<24}{job.text}{suffix}"

    def resolve(self, spec: str | None) -> Job:
        """A job spec (`%1`, `1`, `%+`, `%%`, `%-`, `%name`; none = current) -> the job."""
        if spec in (None, "%", "%%", "%+", "+"):
            if not self.order:
                raise LookupError("current: no such job")
            return self.jobs[self.order[-1]]
        if spec in ("%-", "-"):
            if len(self.order) < 2:
                raise LookupError("previous: no such job")
            return self.jobs[self.order[-2]]
        body = spec[1:] if spec.startswith("%") else spec
        if body.isdigit():
            if int(body) in self.jobs:
                return self.jobs[int(body)]
        else:
            matches = [j for j in self.jobs.values() if j.text.startswith(body)]
            if len(matches) == 1:
                return matches[0]
        raise LookupError(f"{spec}: no such job")
