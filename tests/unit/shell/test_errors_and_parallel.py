"""Errors as a shell reports them, a shell that survives its own bugs, and the `parallel`
builtin (commands overlap in time; outputs come out whole and in the order given)."""

from __future__ import annotations

import subprocess

import pytest

from projects.shell import builtins
from projects.shell.executor import Shell
from tests.unit.shell.conftest import run_ours, shell_env

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def env(tmp_path):
    return shell_env(tmp_path)


def test_command_not_found_is_127_with_the_message(workdir, env):
    proc = run_ours("nosuchcmd arg; echo after $?", workdir, env)
    assert proc.stderr == "pyshell: nosuchcmd: command not found\n"
    assert proc.stdout == "after 127\n"
    assert run_ours("nosuchcmd", workdir, env).returncode == 127


def test_missing_path_is_127_and_not_executable_is_126(workdir, env):
    (workdir / "script").write_text("#!/bin/sh\necho ran\n")  # no execute bit
    proc = run_ours("./script; echo $?; ./missing; echo $?; /; echo $?", workdir, env)
    assert proc.stdout == "126\n127\n126\n"
    assert proc.stderr.splitlines() == [
        "pyshell: ./script: Permission denied",
        "pyshell: ./missing: No such file or directory",
        "pyshell: /: Is a directory",
    ]
    (workdir / "script").chmod(0o755)
    assert run_ours("./script", workdir, env).stdout == "ran\n"


def test_syntax_error_names_the_token_and_is_fatal_in_a_script(workdir, env):
    proc = run_ours("echo first\necho a | | wc\necho never", workdir, env)
    assert proc.stdout == "first\n"  # earlier lines ran, the bad one stopped the script
    assert proc.stderr == "pyshell: line 2: syntax error near unexpected token '|'\n"
    assert proc.returncode == 2
    proc = run_ours("echo 'open", workdir, env)
    assert proc.returncode == 2 and "unexpected EOF while looking for matching" in proc.stderr


def test_failed_redirection_skips_the_command(workdir, env):
    proc = run_ours("cat < missing; echo $?; echo x > nodir/f; echo $?", workdir, env)
    assert proc.stdout == "1\n1\n"
    assert proc.stderr.splitlines() == [
        "pyshell: missing: No such file or directory",
        "pyshell: nodir/f: No such file or directory",
    ]


def test_builtin_errors(workdir, env):
    proc = run_ours("cd /nonexistent; echo $?; export 1x=2; echo $?; fg; echo $?", workdir, env)
    assert proc.stdout == "1\n1\n1\n"
    assert proc.stderr.splitlines() == [
        "pyshell: cd: /nonexistent: No such file or directory",
        "pyshell: export: '1x=2': not a valid identifier",
        "pyshell: fg: no job control",
    ]
    proc = run_ours("exit abc", workdir, env)
    assert proc.returncode == 2 and "numeric argument required" in proc.stderr


def test_script_on_stdin_matches_sh(workdir, env):
    script = "x=1\necho $x |\n  tr 1 2\ncd /\npwd\nexit 4\necho never\n"
    ours = run_ours(None, workdir, env, stdin=script)
    sh = subprocess.run(
        ["/bin/sh"], input=script, cwd=workdir, env=env, capture_output=True, text=True, timeout=20
    )
    assert (ours.stdout, ours.stderr, ours.returncode) == (sh.stdout, sh.stderr, sh.returncode)
    assert ours.stdout == "2\n/\n" and ours.returncode == 4


def test_internal_error_prints_a_message_and_the_shell_goes_on(monkeypatch, capfd, tmp_path):
    def broken(shell, argv):
        raise RuntimeError("boom")

    monkeypatch.setitem(builtins.BUILTINS, "pwd", broken)
    shell = Shell(env=shell_env(tmp_path))
    status = shell.run_source("pwd\necho after $?\n")
    out, err = capfd.readouterr()
    assert err == "pyshell: internal error: RuntimeError: boom\n"
    assert out == "after 1\n"
    assert status == 0


def test_builtins_change_the_shell_itself(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # restored after the test, whatever `cd` did
    env = shell_env(tmp_path)
    shell = Shell(env=env)
    (tmp_path / "sub").mkdir()
    shell.run_source("cd sub\nexport NEW=1\nLOCAL=2\nunset HOME\n")
    assert env["NEW"] == "1" and shell.vars == {"LOCAL": "2"} and "HOME" not in env
    assert env["PWD"] == str(tmp_path / "sub") and env["OLDPWD"] == str(tmp_path)
    assert capfd.readouterr() == ("", "")


def _elapsed(stdout: str) -> tuple[float, list[str]]:
    """Seconds between the `date` lines around the command, and the lines in between."""
    lines = stdout.splitlines()
    return float(lines[-1]) - float(lines[0]), lines[1:-1]


def test_parallel_commands_overlap_in_time(workdir, env):
    three = " ::: ".join(f"'sleep 0.5; echo {k}'" for k in "abc")
    proc = run_ours(f"date +%s.%N; parallel {three}; date +%s.%N", workdir, env)
    elapsed, lines = _elapsed(proc.stdout)
    assert lines == ["a", "b", "c"]
    assert 0.5 <= elapsed < 1.2, elapsed  # one after another would take at least 1.5 s
    assert proc.returncode == 0


def test_parallel_prints_each_output_whole_and_in_the_order_given(workdir, env):
    proc = run_ours(
        "parallel 'echo a1; sleep 0.3; echo a2' ::: 'sleep 0.1; echo b1; echo b-err >&2' "
        "::: echo c1 '|' tr c C",
        workdir,
        env,
    )
    assert proc.stdout == "a1\na2\nb1\nC1\n"  # b finished first, yet a is printed first, whole
    assert proc.stderr == "b-err\n"


def test_parallel_status_is_the_first_failure_in_order(workdir, env):
    assert run_ours("parallel true ::: 'exit 3' ::: 'exit 4'", workdir, env).returncode == 3
    proc = run_ours("parallel 'echo |' ::: true", workdir, env)
    assert proc.returncode == 2 and "parallel: syntax error" in proc.stderr
    proc = run_ours("parallel nosuchcmd ::: echo ok", workdir, env)
    assert (proc.stdout, proc.returncode) == ("ok\n", 127)
    assert proc.stderr == "pyshell: nosuchcmd: command not found\n"
