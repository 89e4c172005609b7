"""Builtins: commands that must change the shell itself (`cd`, `export`, `exit`, the job table)
or that would be pointless as programs (`history`, `parallel`). Each takes the shell and its
expanded argv and returns an exit status; output goes straight to file descriptors 1 and 2.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

from projects.shell.base import ExitShell, write_all
from projects.shell.lexer import NAME, ShellSyntaxError
from projects.shell.parser import parse

if TYPE_CHECKING:  # for the annotations only: the executor imports this module, not the reverse
    from projects.shell.executor import Shell

Builtin = Callable[["Shell", list[str]], int]
PARALLEL_SEPARATOR = ":::"
MAX_PARALLEL_THREADS = 64


def cd(shell: Shell, argv: list[str]) -> int:
    """`cd [DIR | -]`: no DIR means $HOME, `-` the previous directory (printed, as in sh)."""
    if len(argv) > 2:
        shell.error("cd: too many arguments")
        return 1
    target = argv[1] if len(argv) > 1 else shell.lookup("HOME")
    if target is None:
        shell.error("cd: HOME not set")
        return 1
    if target == "-":
        target = shell.lookup("OLDPWD")
        if not target:
            shell.error("cd: OLDPWD not set")
            return 1
        shell.out(target + "\n")
    old = _cwd(shell)
    try:
        os.chdir(target or ".")
    except OSError as exc:
        shell.error(f"cd: {target}: {exc.strerror}")
        return 1
    shell.env["OLDPWD"] = old
    shell.env["PWD"] = _cwd(shell)
    return 0


def _cwd(shell: Shell) -> str:
    """The current directory; $PWD if it has been removed (getcwd fails then)."""
    try:
        return os.getcwd()
    except OSError:
        return shell.lookup("PWD") or "."


def pwd(shell: Shell, argv: list[str]) -> int:
    """`pwd`: print the current directory."""
    try:
        shell.out(os.getcwd() + "\n")
    except OSError as exc:
        shell.error(f"pwd: cannot read the current directory: {exc.strerror}")
        return 1
    return 0


def exit_(shell: Shell, argv: list[str]) -> int:
    """`exit [N]`; the first `exit` with stopped jobs only warns, as bash does."""
    status = shell.last_status
    if len(argv) > 1:
        try:
            status = int(argv[1]) & 0xFF
        except ValueError:
            shell.error(f"exit: {argv[1]}: numeric argument required")
            raise ExitShell(2) from None
    if shell.interactive and not shell.warned_stopped:
        shell.reap()
        if any(job.stopped for job in shell.jobs.jobs.values()):
            shell.warned_stopped = True
            shell.error("There are stopped jobs.")
            return 1
    if shell.interactive:
        shell.out("exit\n")
    raise ExitShell(status)


def export(shell: Shell, argv: list[str]) -> int:
    """`export NAME[=value]...`; with no operand, list the environment in re-usable form."""
    if len(argv) == 1:
        for name in sorted(shell.env):
            shell.out(f"export {name}={shlex.quote(shell.env[name])}\n")
        return 0
    status = 0
    for arg in argv[1:]:
        name, eq, value = arg.partition("=")
        if not NAME.fullmatch(name):
            shell.error(f"export: '{arg}': not a valid identifier")
            status = 1
            continue
        if eq:
            shell.vars.pop(name, None)
            shell.env[name] = value
        elif name in shell.vars:
            shell.env[name] = shell.vars.pop(name)
    return status


def unset(shell: Shell, argv: list[str]) -> int:
    """`unset NAME...`: remove variables."""
    for name in argv[1:]:
        shell.vars.pop(name, None)
        shell.env.pop(name, None)
    return 0


def history_(shell: Shell, argv: list[str]) -> int:
    """`history [N]` lists (numbered as `!n` uses them); `history -c` clears, file included."""
    if argv[1:] == ["-c"]:
        shell.history.clear()
        if shell.readline is not None:
            shell.readline.clear_history()
        if shell.histfile is not None and shell.histfile.exists():
            shell.histfile.write_text("")
        return 0
    entries = list(enumerate(shell.history, start=1))
    if len(argv) > 1:
        if not argv[1].isdigit():
            shell.error(f"history: {argv[1]}: numeric argument required")
            return 2
        entries = entries[-int(argv[1]) :] if int(argv[1]) else []
    shell.out("".join(f"{n:5d}  {entry}\n" for n, entry in entries))
    return 0


def jobs(shell: Shell, argv: list[str]) -> int:
    """`jobs [-p]`: list jobs (finished ones once, then forget them); -p prints process ids."""
    shell.reap()
    only_pids = "-p" in argv[1:]
    for number in sorted(shell.jobs.jobs):
        job = shell.jobs.jobs[number]
        if only_pids:
            shell.out(f"{job.pgid or job.processes[0].pid}\n")
        else:
            shell.out(shell.jobs.describe(job) + "\n")
            job.reported = job.state()
        if job.done:
            shell.jobs.remove(job)
    return 0


def _job(shell: Shell, name: str, argv: list[str]):
    if not shell.job_control:
        shell.error(f"{name}: no job control")
        return None
    shell.reap()
    try:
        job = shell.jobs.resolve(argv[1] if len(argv) > 1 else None)
    except LookupError as exc:
        shell.error(f"{name}: {exc}")
        return None
    if job.done:
        shell.error(f"{name}: job has terminated")
        shell.jobs.remove(job)
        return None
    return job


def fg(shell: Shell, argv: list[str]) -> int:
    """`fg [%n]`: bring a background or stopped job to the foreground and wait for it."""
    job = _job(shell, "fg", argv)
    return 1 if job is None else shell.foreground(job)


def bg(shell: Shell, argv: list[str]) -> int:
    """`bg [%n]`: let a stopped job go on running in the background."""
    job = _job(shell, "bg", argv)
    if job is None:
        return 1
    shell.background(job)
    shell.out(f"[{job.number}]{shell.jobs.mark(job)} {job.text} &\n")
    return 0


def wait(shell: Shell, argv: list[str]) -> int:
    """`wait [%n | PID]...`: wait for the named jobs (all of them by default); their status."""
    targets = []
    for spec in argv[1:] or [None]:
        if spec is None:
            targets.extend(shell.jobs.jobs.values())
            continue
        if spec.isdigit():
            match = [
                j for j in shell.jobs.jobs.values() if any(p.pid == int(spec) for p in j.processes)
            ]
            if not match:
                shell.error(f"wait: pid {spec} is not a child of this shell")
                return 127
            targets.extend(match)
            continue
        try:
            targets.append(shell.jobs.resolve(spec))
        except LookupError as exc:
            shell.error(f"wait: {exc}")
            return 127
    status = 0
    with interruptible(shell):
        for job in targets:
            shell.wait_until(job, stop_counts=False)
            status = job.status
            shell.jobs.remove(job)
    return status


@contextmanager
def interruptible(shell: Shell) -> Iterator[None]:
    """Ctrl-C ends a `wait` (and the rest of the line: KeyboardInterrupt reaches `run_tree`),
    as in bash; a script stops with 130. Ctrl-Z stays ignored, as in bash. A forked subshell
    keeps SIGINT's default, which ends it."""
    if shell.in_child or signal.SIGINT in shell.ignored_at_start:
        yield
        return
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt:
        if not shell.interactive:
            raise ExitShell(128 + signal.SIGINT) from None
        raise
    finally:
        signal.signal(signal.SIGINT, old)


def kill(shell: Shell, argv: list[str]) -> int:
    """`kill [-SIGNAL | -s SIGNAL] (PID | %n)...`; job specs signal the whole process group."""
    args = argv[1:]
    sig = signal.SIGTERM
    if args[:1] == ["-s"] and len(args) > 1:
        name, args = args[1], args[2:]
    elif args and args[0].startswith("-") and len(args[0]) > 1:
        name, args = args[0][1:], args[1:]
    else:
        name = None
    if name is not None:
        try:
            sig = (
                int(name)
                if name.isdigit()
                else signal.Signals["SIG" + name.upper().removeprefix("SIG")]
            )
        except KeyError:
            shell.error(f"kill: {name}: invalid signal specification")
            return 1
    if not args:
        shell.error("kill: usage: kill [-s sigspec | -sigspec] pid | jobspec ...")
        return 2
    status = 0
    for target in args:
        try:
            if target.startswith("%"):
                job = shell.jobs.resolve(target)
                if job.pgid:
                    os.killpg(job.pgid, sig)
                else:
                    for proc in job.processes:
                        os.kill(proc.pid, sig)
            else:
                os.kill(int(target), sig)
        except LookupError as exc:
            shell.error(f"kill: {exc}")
            status = 1
        except ValueError:
            shell.error(f"kill: {target}: arguments must be process or job IDs")
            status = 1
        except ProcessLookupError:
            shell.error(f"kill: ({target}) - No such process")
            status = 1
    return status


def parallel(shell: Shell, argv: list[str]) -> int:
    """`parallel CMD ::: CMD ...`: run the commands at once on a thread pool, then print each
    one's output whole and in the order given. Each worker thread forks its command with its own
    stdout and stderr pipes and reads them to the end, so outputs never interleave. The status is
    that of the first command (in order) that failed, else 0."""
    groups: list[list[str]] = [[]]
    for arg in argv[1:]:
        if arg == PARALLEL_SEPARATOR:
            groups.append([])
        else:
            groups[-1].append(arg)
    sources = [" ".join(group) for group in groups]
    if not any(sources):
        shell.error(f"parallel: usage: parallel COMMAND [{PARALLEL_SEPARATOR} COMMAND]...")
        return 2
    if not all(sources):
        shell.error(f"parallel: empty command around '{PARALLEL_SEPARATOR}'")
        return 2
    try:
        trees = [parse(source) for source in sources]
    except ShellSyntaxError as exc:
        shell.error(f"parallel: {exc}")
        return 2
    status = 0
    workers = min(len(trees), MAX_PARALLEL_THREADS)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parallel") as pool:
        futures = [pool.submit(shell.capture, tree) for tree in trees]
        for future in futures:  # in the order given, each as soon as it and those before are done
            out, err, code = future.result()
            if out:
                write_all(1, out)
            if err:
                write_all(2, err)
            if code and not status:
                status = code
    return status


def help_(shell: Shell, argv: list[str]) -> int:
    """`help`: list the builtins."""
    lines = [
        f"  {name:<10} {(fn.__doc__ or '').strip().splitlines()[0]}"
        for name, fn in BUILTINS.items()
    ]
    shell.out("pyshell builtins:\n" + "\n".join(lines) + "\n")
    return 0


def colon(shell: Shell, argv: list[str]) -> int:
    """`:` / `true`: do nothing, successfully."""
    return 0


def false(shell: Shell, argv: list[str]) -> int:
    """`false`: do nothing, unsuccessfully."""
    return 1


BUILTINS: dict[str, Builtin] = {
    "cd": cd,
    "pwd": pwd,
    "exit": exit_,
    "export": export,
    "unset": unset,
    "history": history_,
    "jobs": jobs,
    "fg": fg,
    "bg": bg,
    "wait": wait,
    "kill": kill,
    "parallel": parallel,
    "help": help_,
    ":": colon,
    "true": colon,
    "false": false,
}
