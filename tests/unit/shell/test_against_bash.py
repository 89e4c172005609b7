"""Command lines from `bash_cases.txt`, run by our shell (`-c`) and by `bash --norc -c` in fresh
temporary folders: same stdout, same stderr (the shell's own prefix aside), same files left
behind, same exit status. Lines marked `[refused]` are valid bash that this shell refuses: it
must print one error, exit 2 and run nothing at all (not even the line's first command)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.unit.shell.conftest import run_ours, shell_env

pytestmark = pytest.mark.timeout(30)

CASES_FILE = Path(__file__).with_name("bash_cases.txt")
REFUSED = "[refused] "
VICTIM = "victim.txt"
# `bash: line 1: x: command not found` / `pyshell: x: command not found` -> `SHELL: x: ...`
_PREFIX = re.compile(r"^(bash: line \d+|pyshell(: line \d+)?): ", re.MULTILINE)


def load_cases() -> list:
    cases = []
    for number, raw in enumerate(CASES_FILE.read_text().splitlines(), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        refused = raw.startswith(REFUSED)
        line = raw.removeprefix(REFUSED).replace("<NL>", "\n")
        cases.append(pytest.param(line, refused, id=f"{'refused-' * refused}line{number}"))
    return cases


CASES = load_cases()


def run_bash(script: str, cwd: Path, env: dict[str, str], *options: str):
    return subprocess.run(
        ["bash", "--norc", *options, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )


def files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_the_data_file_has_enough_cases():
    assert len(CASES) >= 60
    assert sum(not case.values[1] for case in CASES) >= 60  # compared for equality


@pytest.mark.parametrize(("script", "refused"), CASES)
def test_against_bash(script, refused, tmp_path):
    env = shell_env(tmp_path)
    if refused:
        assert run_bash(script, tmp_path, env, "-n").returncode == 0, "not valid bash"
        folder = tmp_path / "work"
        folder.mkdir()
        (folder / VICTIM).write_text("keep me\n")
        proc = run_ours(script, folder, env)
        assert (proc.stdout, proc.returncode) == ("", 2)
        assert len(proc.stderr.splitlines()) == 1 and "not supported" in proc.stderr
        assert files(folder) == {VICTIM: "keep me\n"}  # nothing ran
        return
    results = {}
    for name, runner in (("bash", run_bash), ("ours", run_ours)):
        folder = tmp_path / name / "work"  # same last name: `pwd | sed` cases match
        folder.mkdir(parents=True)
        proc = runner(script, folder, env)
        stderr = _PREFIX.sub("SHELL: ", proc.stderr)
        results[name] = (proc.stdout, stderr, proc.returncode, files(folder))
    assert results["ours"] == results["bash"]
