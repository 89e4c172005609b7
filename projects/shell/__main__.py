"""`python -m projects.shell`: interactive on a terminal, else `-c CMD`, a script file or stdin."""

import sys

from projects.shell.executor import main

if __name__ == "__main__":
    sys.exit(main())
