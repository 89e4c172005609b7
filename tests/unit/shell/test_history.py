"""History expansion (`!!`, `!n`, ...), the history file, and the job table's bookkeeping."""

from __future__ import annotations

import os
import signal

import pytest

from projects.shell import history
from projects.shell.jobs import Job, JobTable, Process

pytestmark = pytest.mark.timeout(30)

ENTRIES = ["echo one", "ls -l", "echo two"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("!!", "echo two"),
        ("!1", "echo one"),
        ("!2 | wc", "ls -l | wc"),
        ("!-1", "echo two"),
        ("!-3", "echo one"),
        ("!ec", "echo two"),  # the latest entry with that prefix
        ("!l x", "ls -l x"),
        ("echo hi!", "echo hi!"),  # `!` at the end, before a blank or `=` stays literal
        ("echo ! a != b", "echo ! a != b"),
        ("echo '!!'", "echo '!!'"),  # not inside single quotes
        ('echo "!!"', 'echo "echo two"'),  # but inside double quotes, as in bash
        ("echo \\!!", "echo \\!!"),
    ],
)
def test_history_expansion(line, expected):
    assert history.expand(line, ENTRIES) == expected


@pytest.mark.parametrize("line", ["!9", "!0", "!-4", "!zz"])
def test_missing_event_is_an_error_naming_it(line):
    with pytest.raises(history.HistoryError, match=f"^{line}: event not found$"):
        history.expand(line, ENTRIES)


def test_bang_bang_with_empty_history_is_an_error():
    with pytest.raises(history.HistoryError):
        history.expand("!!", [])


def test_file_keeps_entries_across_loads_multiline_included(tmp_path):
    path = tmp_path / "hist"
    for entry in ["echo a", "echo 'x\n  y' |\ncat", "ls"]:
        history.append(path, entry)
    assert history.load(path) == ["echo a", "echo 'x\n  y' |\ncat", "ls"]
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_file_is_trimmed_when_it_grows_past_twice_the_limit(tmp_path):
    path = tmp_path / "hist"
    for k in range(25):
        history.append(path, f"echo {k}")
    assert history.load(path, limit=20) == [f"echo {k}" for k in range(5, 25)]  # not yet trimmed
    for k in range(25, 45):
        history.append(path, f"echo {k}")
    assert history.load(path, limit=20) == [f"echo {k}" for k in range(25, 45)]
    assert len(path.read_text().splitlines()) == 20


def test_missing_file_is_empty_history(tmp_path):
    assert history.load(tmp_path / "none") == []


def test_history_path_honours_the_environment(tmp_path):
    assert history.history_path({"PYSHELL_HISTFILE": str(tmp_path / "h")}) == tmp_path / "h"
    assert history.history_path({}).name == ".pyshell_history"


def _job(text: str, *pids: int) -> Job:
    return Job(pgid=pids[0], text=text, processes=[Process(p) for p in pids], background=True)


def test_job_numbers_reuse_the_lowest_free_and_plus_marks_the_latest():
    table = JobTable()
    a, b, c = _job("sleep 1", 11), _job("sleep 2", 12), _job("sleep 3", 13)
    assert [table.add(j) for j in (a, b, c)] == [1, 2, 3]
    table.remove(b)
    d = _job("sleep 4", 14)
    assert table.add(d) == 2
    assert table.describe(d) == "[2]+  Running                 sleep 4 &"
    assert table.describe(c) == "[3]-  Running                 sleep 3 &"
    assert table.resolve(None) is d and table.resolve("%-") is c
    assert table.resolve("%1") is a and table.resolve("3") is c and table.resolve("%sleep 3") is c
    with pytest.raises(LookupError, match="%7: no such job"):
        table.resolve("%7")


def test_job_state_follows_wait_statuses():
    table = JobTable()
    job = _job("a | b", 21, 22)
    table.add(job)
    stopped = 0x7F | (signal.SIGTSTP << 8)  # what waitpid reports for a stopped child
    assert table.record([job], 21, stopped) is job
    assert job.state() == "Running"  # one of two stopped: not yet
    table.record([job], 22, stopped)
    assert job.stopped and job.state() == "Stopped"
    table.record([job], 21, 0)
    table.record([job], 22, 3 << 8)  # exit status 3
    assert job.done and job.status == 3 and job.state() == "Exit 3"
    killed = _job("sleep 9", 31)
    table.record([killed], 31, signal.SIGTERM)
    assert killed.status == 128 + signal.SIGTERM and killed.state() == "Terminated"
    assert table.record([job], 999, 0) is None
