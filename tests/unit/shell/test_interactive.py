"""The interactive shell driven through a pseudo-terminal (pexpect): prompt, commands, Ctrl-C,
job control, history. Every session and every process it starts is killed at teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.unit.shell.conftest import shell_env

pytestmark = pytest.mark.timeout(30)

PROMPT = r"pyshell:~/work[#$] "  # the default PS1, `pyshell:\w\$ `, with HOME = tmp_path


def _terminal_signals() -> None:
    """Start the shell with the default job-control signal dispositions, as a terminal emulator
    does: a test runner launched in the background (`cmd &` in a script) ignores SIGINT and
    SIGQUIT, and the shell and its jobs would inherit that, so Ctrl-C would reach nothing."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_DFL)


class Session:
    """One interactive shell on a pty, plus the pids of jobs it started (killed at teardown)."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "projects.shell"],
            cwd=tmp_path / "work",
            env=shell_env(tmp_path, **env),
            encoding="utf-8",
            codec_errors="replace",  # the terminal echoes bytes that are not UTF-8
            timeout=10,
            dimensions=(24, 200),
            preexec_fn=_terminal_signals,
        )
        self.pids: list[int] = []
        self.prompt()

    def prompt(self) -> str:
        """Wait for the next prompt; return what was printed before it."""
        self.child.expect(PROMPT)
        return self.child.before

    def run(self, line: str) -> list[str]:
        """Type a line, wait for the prompt; the output lines (the echoed input dropped)."""
        self.child.sendline(line)
        lines = self.prompt().replace("\r\n", "\n").split("\n")
        assert lines[0] == line
        return [x for x in lines[1:] if x]

    def wait_for_foreground(self, not_pgid: int, timeout: float = 10) -> int:
        """Poll the terminal's foreground process group until a job (not `not_pgid`) owns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pgid = os.tcgetpgrp(self.child.child_fd)
            if pgid != not_pgid:
                return pgid
            time.sleep(0.02)
        raise AssertionError("no job took the terminal")

    def close(self) -> None:
        self.child.close(force=True)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def start(tmp_path):
    (tmp_path / "work").mkdir()
    sessions: list[Session] = []

    def _start(**env: str) -> Session:
        sessions.append(Session(tmp_path, **env))
        return sessions[-1]

    yield _start
    for session in sessions:
        session.close()


def test_prompt_and_commands(start):
    sh = start()
    assert sh.run("echo hello | tr a-z A-Z") == ["HELLO"]
    assert sh.run("cd ..; pwd; cd work") == [str(Path(sh.child.cwd).parent)]
    assert sh.run("nosuch") == ["pyshell: nosuch: command not found"]
    assert sh.run("echo $?") == ["127"]


def test_incomplete_line_continues_and_syntax_errors_do_not_end_the_shell(start):
    sh = start()
    sh.child.sendline("echo 'one")
    sh.child.expect_exact("> ")
    sh.child.sendline("two' |")
    sh.child.expect_exact("> ")
    sh.child.sendline("tr a-z A-Z")
    assert "ONE\r\nTWO\r\n" in sh.prompt()
    assert sh.run("ls | | wc") == ["pyshell: syntax error near unexpected token '|'"]
    assert sh.run("echo $?") == ["2"]


def test_ctrl_c_kills_the_foreground_job_not_the_shell(start):
    sh = start()
    started = time.monotonic()
    sh.child.sendline("sleep 10")
    job = sh.wait_for_foreground(not_pgid=sh.child.pid)  # the job got its own group + terminal
    sh.pids.append(job)
    sh.child.sendintr()
    sh.prompt()
    assert time.monotonic() - started < 8
    assert os.tcgetpgrp(sh.child.child_fd) == sh.child.pid  # the shell took the terminal back
    assert sh.run("echo $?") == ["130"]
    assert sh.child.isalive()


def test_ctrl_c_at_the_prompt_discards_the_line(start):
    sh = start()
    sh.child.send("echo never-run")
    sh.child.expect_exact("echo never-run")  # typed and shown: readline is waiting for more
    time.sleep(0.2)  # CPython's readline defers a signal that lands mid-keystroke to Enter
    sh.child.sendintr()
    sh.prompt()
    assert sh.run("echo $?") == ["130"]
    assert sh.run("history") == ["    1  echo $?", "    2  history"]


def test_background_jobs_jobs_fg_and_ctrl_z(start):
    sh = start()
    sh.child.sendline("sleep 30 &")
    sh.child.expect(r"\[1\] (\d+)")
    pid = int(sh.child.match.group(1))
    sh.pids.append(pid)
    sh.prompt()
    assert sh.run("jobs") == ["[1]+  Running                 sleep 30 &"]
    assert sh.run("echo $!") == [str(pid)]

    sh.child.sendline("fg")
    sh.child.expect_exact("sleep 30\r\n")
    assert sh.wait_for_foreground(not_pgid=sh.child.pid) == pid
    sh.child.sendcontrol("z")
    assert "[1]+  Stopped                 sleep 30" in sh.prompt()
    assert sh.run("echo $?") == [str(128 + signal.SIGTSTP)]
    assert sh.run("jobs") == ["[1]+  Stopped                 sleep 30"]

    sh.child.sendline("fg %1")
    sh.child.expect_exact("sleep 30\r\n")
    assert sh.wait_for_foreground(not_pgid=sh.child.pid) == pid
    sh.child.sendintr()
    sh.prompt()
    assert sh.run("jobs") == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the job is gone (and reaped)


def test_finished_background_job_is_reported_before_the_next_prompt(start):
    sh = start()
    sh.child.sendline("sleep 0.2 &")
    sh.child.expect(r"\[1\] (\d+)")
    sh.pids.append(int(sh.child.match.group(1)))
    sh.prompt()
    time.sleep(0.6)
    assert sh.run("") == ["[1]+  Done                    sleep 0.2"]
    assert sh.run("jobs") == []


def test_history_bang_bang_and_bang_n(start):
    sh = start()
    assert sh.run("echo one") == ["one"]
    assert sh.run("echo two") == ["two"]
    assert sh.run("!!") == ["echo two", "two"]  # the expansion is shown, then run
    assert sh.run("!1 more") == ["echo one more", "one more"]
    assert sh.run("history") == [
        "    1  echo one",
        "    2  echo two",
        "    3  echo two",
        "    4  echo one more",
        "    5  history",
    ]
    assert sh.run("!42") == ["pyshell: !42: event not found"]


def test_history_file_persists_across_sessions(start, tmp_path):
    first = start()
    first.run("echo from-first-session")
    first.child.sendline("exit 0")
    first.child.expect(pexpect.EOF)
    first.child.close()
    assert first.child.exitstatus == 0
    assert (tmp_path / "history").read_text() == "echo from-first-session\nexit 0\n"

    second = start()
    assert second.run("history") == [
        "    1  echo from-first-session",
        "    2  exit 0",
        "    3  history",
    ]
    assert second.run("!1") == ["echo from-first-session", "from-first-session"]
    second.child.sendeof()  # Ctrl-D leaves too, with the last status
    second.child.expect(pexpect.EOF)
    second.child.close()
    assert second.child.exitstatus == 0
    assert (tmp_path / "history").read_text().splitlines()[-2:] == [
        "history",
        "echo from-first-session",
    ]


def _in_wait4(pid: int) -> bool:
    """Whether `pid` is blocked in the wait4 system call (x86-64: 61; aarch64: 260)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] in ("61", "260")
    return False


def _until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_a_line_that_is_not_utf8_is_refused_and_the_session_goes_on(start, tmp_path, locale):
    sh = start(LC_ALL=locale)
    for typed in (b"touch a\xffb", b"touch c\xc3d"):  # in UTF-8, readline dropped the \xc3
        os.write(sh.child.child_fd, typed + b"\r")
        sh.child.expect(r"the line is not valid UTF-8 \(byte 0x(ff|c3)\): nothing was run")
        sh.prompt()
    assert sh.run("echo $?; ls") == ["2"]  # and nothing was created
    sh.child.sendline("echo caf\u00e9 | wc -c")  # valid UTF-8 runs as typed (in a UTF-8
    assert sh.prompt().endswith("\r\n6\r\n")  # locale readline echoes it as caf\303\251)
    assert b"touch a\xffb" in (tmp_path / "history").read_bytes()  # kept as typed


def test_a_removed_current_directory_does_not_end_the_session(start):
    sh = start()
    sh.child.sendline("mkdir gone; cd gone; rmdir ../gone")
    sh.child.expect_exact("pyshell: cannot read the current directory: No such file or directory")
    sh.child.expect(r"pyshell:~/work/gone[#$] ")  # the prompt falls back to $PWD
    sh.child.sendline("echo still here")
    sh.child.expect_exact("still here")
    sh.child.expect(r"pyshell:~/work/gone[#$] ")
    assert sh.run("cd ..") == []
    assert sh.run("pwd") == [str(sh.child.cwd)]


def test_a_finished_background_job_is_reaped_without_waiting_for_enter(start):
    sh = start()
    sh.child.sendline("sleep 0.2 &")
    sh.child.expect(r"\[1\] (\d+)")
    pid = int(sh.child.match.group(1))
    sh.pids.append(pid)
    sh.prompt()
    stat = Path(f"/proc/{pid}/stat")
    _until(lambda: not stat.exists(), "the finished job stayed a zombie until Enter")
    assert sh.run("") == ["[1]+  Done                    sleep 0.2"]


def test_ctrl_c_interrupts_wait_and_ctrl_z_does_not_stop_it(start):
    sh = start()
    sh.child.sendline("sleep 30 & wait; echo never")
    sh.child.expect(r"\[1\] (\d+)")
    sh.pids.append(int(sh.child.match.group(1)))
    _until(lambda: _in_wait4(sh.child.pid), "the shell never waited")
    sh.child.sendcontrol("z")  # ignored, as in bash: `wait` goes on waiting
    sh.child.expect_exact("^Z")
    assert _in_wait4(sh.child.pid) and sh.child.isalive()
    sh.child.sendintr()
    assert "never" not in sh.prompt()  # Ctrl-C ends `wait` and the rest of the line
    assert sh.run("echo $?") == ["130"]
    assert sh.run("jobs") == ["[1]+  Running                 sleep 30 &"]
