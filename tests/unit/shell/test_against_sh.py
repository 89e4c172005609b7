"""Pipelines and redirections run by our shell (`-c`) and by /bin/sh in fresh temporary folders:
same stdout, same stderr, same files left behind, same exit status."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.shell.conftest import run_ours, shell_env

pytestmark = pytest.mark.timeout(30)

CASES = [
    "echo hello   world",
    "echo 'single  $HOME' \"double $HOME\" back\\ slash",
    'printf \'%s\\n\' "a\\"b" \'c\\d\' "e\\\\f"',
    "x=hello; printf '%s\\n' \"${x}world\" $x",
    'A="a   b"; printf "[%s]" $A "$A"; echo',
    "printf '[%s]' '' $UNSET \"\"; echo",
    "printf 'b\\na\\nc\\n' | sort | head -n 2",
    "seq 1 20 | grep 1 | tr 1 X | wc -l",
    "yes | head -n 3",  # `yes` must die of SIGPIPE, not hang or complain
    "echo out > f; echo more >> f; cat < f",
    "seq 3 > f; wc -l < f > g; cat g",
    "> empty; ls",
    "ls nosuchfile 2> err; echo status $?; cat err",
    "ls nosuchfile > both 2>&1; cat both",
    "ls nosuchfile 2>&1 > out | tr a-z A-Z; cat out",  # 2>&1 first: errors go to the pipe
    "ls nosuchfile 2>&1 | wc -l",
    "echo to-stderr >&2",
    "echo a 2>> log; ls nosuchfile 2>> log; wc -l < log",
    "false; echo $?; true; echo $?",
    "true && echo yes || echo no; false && echo yes || echo no",
    "false | true; echo $?; true | false; echo $?",
    "! false; echo $?; ! true; echo $?",
    "nosuchcommand 2>/dev/null; echo $?",
    "X=1; export Y=2; sh -c 'echo \"[$X] [$Y]\"'",
    "Z=only-for-env env | grep '^Z='; echo \"[$Z]\"",
    "(cd /; pwd); pwd | sed 's|.*/||'",
    "touch b a c; echo *; echo '*' \\*; echo nomatch*",
    'echo ~ | sed "s|$HOME|HOME|"',
    "echo $$ | grep -c '^[0-9][0-9]*$'",
    "sleep 0.1 & wait; echo waited $?",
    "echo a # a comment",
    "echo a |\n tr a A &&\n echo b",
    "echo start; exit 3; echo never",
    "echo a; false",
]


def run_sh(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/sh", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=20
    )


def files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("script", CASES)
def test_same_as_sh(script, tmp_path):
    env = shell_env(tmp_path)
    results = {}
    for name, runner in (("sh", run_sh), ("ours", run_ours)):
        folder = tmp_path / name / "work"  # same last name: `pwd | sed` cases match
        folder.mkdir(parents=True)
        proc = runner(script, folder, env)
        results[name] = (proc.stdout, proc.stderr, proc.returncode, files(folder))
    assert results["ours"] == results["sh"]
