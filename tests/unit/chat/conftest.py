"""Fixtures for the chat tests: a real server on an ephemeral loopback port, logged-in clients,
and a check that every test leaves no chat thread behind."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from projects.chat.client import ChatClient
from projects.chat.config import ServerConfig, load
from projects.chat.protocol import recv_frame, send_frame
from projects.chat.server import ChatServer, serve_in_thread

OURS = ("chat-", "p2p-")


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Fail a test that leaves a server, client or peer thread running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and t.name.startswith(OURS)
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"threads still running: {[t.name for t in left]}"


@pytest.fixture
def server_cfg(tmp_path) -> ServerConfig:
    """The real config file, on port 0 (any free port) with a history file in tmp_path."""
    return load("server", ServerConfig, overrides_for(tmp_path))


def overrides_for(tmp_path, *more: str) -> list[str]:
    """The real config on port 0 with its history file and name secrets in `tmp_path`."""
    return [
        "port=0",
        f"db_path={tmp_path / 'history.sqlite3'}",
        f"secrets_dir={tmp_path / 'secrets'}",
        *more,
    ]


@pytest.fixture
def server(server_cfg) -> Iterator[ChatServer]:
    with serve_in_thread(server_cfg) as srv:
        yield srv


@pytest.fixture
def connect(server) -> Iterator[Callable[..., ChatClient]]:
    """connect(name, **kw) -> a logged-in ChatClient, closed at the end of the test."""
    clients: list[ChatClient] = []

    def make(name: str, **kw) -> ChatClient:
        host, port = server.address
        client = ChatClient(host, port, name, timeout=5, **kw)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


def joined(client: ChatClient, room: str) -> dict:
    """Join `room` and return the server's `joined` reply."""
    client.join(room)
    return client.wait_for("joined", room=room, timeout=5)


def raw_login(address, name: str, room: str | None = "lobby") -> socket.socket:
    """A hand-driven connection, logged in (and in `room`), for sending broken frames."""
    s = socket.create_connection(address, timeout=10)
    send_frame(s, {"type": "hello", "name": name})
    assert recv_frame(s)["type"] == "welcome"
    if room:
        send_frame(s, {"type": "join", "room": room})
        assert recv_frame(s)["type"] == "joined"
    return s


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate a server subprocess, killing it if it has not exited in 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
