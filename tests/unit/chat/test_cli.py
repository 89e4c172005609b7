"""The chat programs fail like the pipelines: a bad override or an unreachable server is one
`error:` line naming it and exit status 2, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.helpers import REPO


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["projects.chat.server", "prot=1"], "config key 'prot'"),
        (["projects.chat.server", "port=abc"], "port"),
        (["projects.chat.faq_eval", "treshold=0.5"], "config key 'treshold'"),
        (["projects.chat.tui", "--name", "alice", "port=PORT"], "cannot join the chat"),
    ],
)
def test_bad_input_is_one_error_line_and_status_2(args, says):
    args = [a.replace("PORT", str(_closed_port())) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and says in proc.stderr
    assert "Traceback" not in proc.stderr
