"""The curses client: its pure parts directly, and the real program in a tmux pseudo-terminal."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time

import pytest

from projects.chat.client import ChatClient
from projects.chat.tui import TuiState, apply_event, parse_input, visible_lines
from tests.helpers import REPO
from tests.unit.chat.conftest import joined

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("line", "action"),
    [
        ("hello all", ("say", "lobby", "hello all")),
        ("/join #dev", ("join", "dev")),
        ("/leave", ("leave", "lobby")),
        ("/msg bob see you", ("msg", "bob", "see you")),
        ("/dm bob  direct  ", ("dm", "bob", "direct")),
        ("/dm bob", ("error", "usage: /dm USER TEXT")),
        ("/who", ("who", "lobby")),
        ("/more", ("more", "lobby")),
        ("/quit", ("quit",)),
        ("/frobnicate", ("error", "unknown command /frobnicate (/help lists them)")),
        ("   ", ("noop",)),
    ],
)
def test_input_lines_become_actions(line, action):
    assert parse_input(line, "lobby") == action


def test_plain_text_before_joining_a_room_is_refused_locally():
    assert parse_input("hi", "")[0] == "error"


def test_events_update_the_room_user_list_and_pane():
    state = TuiState(me="alice")
    earlier = {"id": 7, "room": "lobby", "from": "bob", "text": "earlier", "ts": 0.0}
    joined = {"type": "joined", "room": "lobby", "users": ["alice"], "history": [earlier]}
    apply_event(state, {**joined, "more": True})
    apply_event(state, {"type": "presence", "room": "lobby", "user": "carol", "event": "join"})
    apply_event(state, {"type": "presence", "room": "other", "user": "dave", "event": "join"})
    apply_event(state, {"type": "dm", "from": "bob", "text": "psst", "ts": 0.0})
    assert (state.room, state.users, state.oldest_id) == ("lobby", ["alice", "carol"], {"lobby": 7})
    text = "\n".join(state.lines)
    assert "<bob> earlier" in text and "/more" in text and "[direct from bob] psst" in text
    apply_event(state, {"type": "left", "room": "lobby"})
    assert (state.room, state.users) == ("", [])


def test_pane_wraps_long_lines_and_scrolls_within_bounds():
    lines = [f"line {i}" for i in range(10)] + ["x" * 25]
    shown, scroll = visible_lines(lines, width=10, height=4, scroll=0)
    assert shown == ["line 9", "xxxxxxxxxx", "  xxxxxxxx", "  xxxxxxx"] and scroll == 0
    shown, scroll = visible_lines(lines, width=10, height=4, scroll=2)
    assert shown[0] == "line 7" and scroll == 2
    shown, scroll = visible_lines(lines, width=10, height=4, scroll=999)
    assert shown[0] == "line 0" and scroll == 9


def user_column(screen: str) -> list[str]:
    """The names listed right of the pane divider, below the 'users (n)' heading."""
    right = [line.split("|", 1)[1].strip() for line in screen.splitlines() if "|" in line]
    return [name for name in right[1:] if name]


class Tmux:
    """One private tmux server (its own socket) running one program in a fixed-size pane."""

    def __init__(self, socket_path: str, command: str, width: int = 100, height: int = 24) -> None:
        self.sock = socket_path
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), command)

    def _tmux(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["tmux", "-S", self.sock, *args], capture_output=True, text=True, timeout=10
        )

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)
        self._tmux("send-keys", "-t", "t", "Enter")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t").stdout

    def alive(self) -> bool:
        return self._tmux("has-session", "-t", "t").returncode == 0

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; screen:\n{self.screen()}")

    def kill(self) -> None:
        self._tmux("kill-server")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (Debian package tmux)")
def test_curses_client_in_a_terminal_sends_shows_and_quits(server, tmp_path):
    host, port = server.address
    cmd = (
        f"cd {shlex.quote(str(REPO))} && TERM=xterm-256color exec {shlex.quote(sys.executable)} "
        "-m projects.chat.tui "
        f"--name alice host={host} port={port}"
    )
    term = Tmux(str(tmp_path / "tmux.sock"), cmd)
    try:
        term.wait_for("you joined #lobby")
        with ChatClient(host, port, "bob", p2p=True) as bob:
            if "alice" not in joined(bob, "lobby")["users"]:
                bob.wait_for("presence", user="alice")
            term.wait_for("bob joined #lobby")
            assert user_column(term.wait_for("users (2)")) == ["alice", "bob"]

            term.type("hello from the terminal")
            got = bob.wait_for("message", room="lobby")
            assert (got["from"], got["text"]) == ("alice", "hello from the terminal")
            term.wait_for("<alice> hello from the terminal")

            bob.say("lobby", "hi alice, I see you")
            term.wait_for("<bob> hi alice, I see you")
            bob.dm("alice", "a direct word")
            term.wait_for("[direct from bob] a direct word")
            term.type("/dm bob straight back")
            assert bob.wait_for("dm")["text"] == "straight back"

        term.type("/quit")
        deadline = time.monotonic() + 10
        while term.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not term.alive(), "the client should exit on /quit"
    finally:
        term.kill()
