"""Issue 24.2: out of file descriptors the server must not spin; connections are capped, and a
connection that never logs in, or goes quiet (even mid-frame), is closed."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from projects.chat.config import ServerConfig, load
from projects.chat.protocol import encode, recv_frame, send_frame
from projects.chat.server import serve_in_thread
from tests.helpers import REPO
from tests.unit.chat.conftest import overrides_for, stop_server

pytestmark = pytest.mark.timeout(120)


def hello(address, name: str, timeout: float = 10) -> tuple[socket.socket, dict]:
    s = socket.create_connection(address, timeout=timeout)
    send_frame(s, {"type": "hello", "name": name})
    return s, recv_frame(s)


def closed_by_server(s: socket.socket) -> bool:
    """True once the server has hung up (after any error frame it sent)."""
    with s:
        s.settimeout(30)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    return True


def test_connections_over_the_cap_get_server_full_and_a_freed_slot_is_reused(tmp_path):
    cfg = load("server", ServerConfig, overrides_for(tmp_path, "max_connections=3"))
    with serve_in_thread(cfg) as srv:
        conns = [hello(srv.address, f"u{i}") for i in range(3)]
        assert all(reply["type"] == "welcome" for _, reply in conns)
        extra = socket.create_connection(srv.address, timeout=10)
        assert recv_frame(extra)["code"] == "server_full" and closed_by_server(extra)
        conns[0][0].close()
        deadline = time.monotonic() + 30  # the server notices the hang-up in its next round
        while True:
            s, reply = hello(srv.address, "late")
            if reply["type"] == "welcome":
                s.close()
                break
            s.close()
            assert reply["code"] == "server_full" and time.monotonic() < deadline
            time.sleep(0.1)
        for s, _ in conns[1:]:
            s.close()


def test_silent_and_half_sent_connections_are_closed(tmp_path):
    timeouts = ["login_timeout_s=0.5", "idle_timeout_s=1"]
    cfg = load("server", ServerConfig, overrides_for(tmp_path, *timeouts))
    with serve_in_thread(cfg) as srv:
        mute = socket.create_connection(srv.address, timeout=30)
        assert recv_frame(mute)["code"] == "login_timeout" and closed_by_server(mute)
        half, welcome = hello(srv.address, "slowloris")
        assert welcome["type"] == "welcome"
        half.sendall(encode({"type": "say", "room": "lobby", "text": "x" * 100})[:20])
        half.settimeout(30)
        assert recv_frame(half)["code"] == "idle_timeout" and closed_by_server(half)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def low_fd_limit() -> None:  # preexec_fn: runs in the child before exec
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from /proc")
def test_out_of_descriptors_the_server_backs_off_and_serves_again_once_others_close(tmp_path):
    log = tmp_path / "server.log"
    args = overrides_for(tmp_path, "max_connections=1000", "login_timeout_s=600")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "projects.chat.server", *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=low_fd_limit,
        )
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 90
        while "listening on" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        port = int(log.read_text().split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        for _ in range(100):  # 100 idle connections against a limit of 64 descriptors
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(1.0)  # let it reach the limit
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(4.0)
        cpu, wall = cpu_seconds(proc.pid) - cpu0, time.monotonic() - t0
        assert cpu < 0.25 * wall, f"{cpu:.2f} s of CPU in {wall:.1f} s at the fd limit"
        warnings = log.read_text().count("accept failed")
        assert 1 <= warnings <= 5, f"{warnings} warnings"
        for s in idle:
            s.close()
        idle.clear()
        deadline = time.monotonic() + 60
        while True:  # the pause ends, the closed ones are reaped, a new client is served
            try:
                s, reply = hello(("127.0.0.1", port), "newcomer", timeout=5)
                s.close()
                if reply["type"] == "welcome":
                    break
            except (TimeoutError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "never served after the others closed"
        assert proc.poll() is None
    finally:
        for s in idle:
            s.close()
        stop_server(proc)
