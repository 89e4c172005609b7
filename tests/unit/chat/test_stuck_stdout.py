"""Issue 24.5: a server whose stdout nobody reads (Ctrl-S in its terminal, a parent that stopped
reading the pipe) must go on serving: it logs through a queue, never from its loop."""

from __future__ import annotations

import fcntl
import socket
import subprocess
import sys

import pytest

from projects.chat.protocol import recv_frame, send_frame
from tests.helpers import REPO
from tests.unit.chat.conftest import overrides_for, stop_server

pytestmark = pytest.mark.timeout(120)

F_SETPIPE_SZ = 1031  # Linux: shrink the pipe so a few log lines fill it


@pytest.mark.skipif(sys.platform != "linux", reason="F_SETPIPE_SZ is Linux only")
def test_a_stdout_nobody_reads_does_not_freeze_the_server(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "projects.chat.server", *overrides_for(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, 4096)
        line = proc.stdout.readline().decode()  # the last line anyone reads
        port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        # Every login and hang-up logs a line: 150 of each is ~25 KB, far over the 4 KiB pipe.
        for i in range(150):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                send_frame(s, {"type": "hello", "name": f"u{i}"})
                assert recv_frame(s)["type"] == "welcome", f"no welcome for login {i}"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            send_frame(s, {"type": "ping", "token": "still there"})
            assert recv_frame(s) == {"type": "pong", "token": "still there"}
    finally:
        stop_server(proc)
