"""`python -m projects.shell`: interactive on a terminal, else `-c CMD`, a script file or stdin."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from projects.shell.base import PROG, ExitShell
from projects.shell.executor import Shell


def main(argv: list[str] | None = None) -> int:
    """`python -m projects.shell [-c CMD [NAME [ARGS...]] | SCRIPT [ARGS...]]`; stdin otherwise."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["-c"]:
            if len(args) < 2:
                sys.stderr.write(f"{PROG}: -c: option requires an argument\n")
                return 2
            rest = args[2:]
            shell = Shell(argv0=rest[0] if rest else PROG, args=rest[1:])
            shell.init_noninteractive()
            return shell.run_source(args[1])
        if args[:1] in (["-h"], ["--help"]):
            sys.stdout.write(main.__doc__ + "\n")
            return 0
        if args:
            try:
                text = Path(args[0]).read_text(encoding="utf-8", errors="surrogateescape")
            except OSError as exc:
                sys.stderr.write(f"{PROG}: {args[0]}: {exc.strerror}\n")
                return 127
            shell = Shell(argv0=args[0], args=args[1:])
            shell.init_noninteractive()
            return shell.run_source(text)
        if os.isatty(0):
            shell = Shell()
            shell.init_interactive()
            try:
                return shell.interactive_loop()
            finally:
                shell.hang_up_jobs(running_too=False)
        shell = Shell()
        shell.init_noninteractive()
        return shell.run_source(sys.stdin.read())
    except ExitShell as exc:
        return exc.status & 0xFF


if __name__ == "__main__":
    sys.exit(main())
