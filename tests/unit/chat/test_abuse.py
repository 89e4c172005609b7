"""Issue 24.4 and 24.6: rate limits, bounded history, loopback-only binding, expiring offers."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from projects.chat.client import ChatClient
from projects.chat.config import ServerConfig, load
from projects.chat.history import HistoryStore
from projects.chat.p2p import MAX_OFFERS
from projects.chat.protocol import encode, recv_frame
from projects.chat.server import serve_in_thread
from projects.chat.tui import format_event
from shared.errors import InputError
from tests.helpers import REPO
from tests.unit.chat.conftest import joined, overrides_for, raw_login

pytestmark = pytest.mark.timeout(60)


def test_a_flooding_client_is_rate_limited(tmp_path):
    cfg = load("server", ServerConfig, overrides_for(tmp_path, "rate_per_s=5", "rate_burst=10"))
    with serve_in_thread(cfg) as srv, raw_login(srv.address, "flood", "lobby") as s:
        n = 300
        t0 = time.monotonic()
        s.sendall(
            b"".join(encode({"type": "say", "room": "lobby", "text": f"{i}"}) for i in range(n))
        )
        replies = [recv_frame(s) for _ in range(n)]
        elapsed = time.monotonic() - t0
        accepted = sum(r["type"] == "message" for r in replies)
        limited = sum(r.get("code") == "rate_limited" for r in replies)
        assert accepted + limited == n
        # the burst (10, minus the join) plus 5 per second of however long this machine took
        assert 1 <= accepted <= 10 + 5 * elapsed + 2, (accepted, elapsed)
    store = HistoryStore(cfg.db_path)
    assert store.count("lobby") == accepted
    store.close()


def test_history_is_capped_per_room_and_in_total(tmp_path):
    caps = ["rate_per_s=0", "history_max_per_room=50", "history_max_total=80"]
    cfg = load("server", ServerConfig, overrides_for(tmp_path, *caps))
    with serve_in_thread(cfg) as srv:
        for room in ("a", "b"):
            with raw_login(srv.address, f"w{room}", room) as s:
                frames = (encode({"type": "say", "room": room, "text": str(i)}) for i in range(300))
                s.sendall(b"".join(frames))
                for _ in range(300):
                    assert recv_frame(s)["type"] == "message"
    store = HistoryStore(cfg.db_path)
    assert store.count("a") <= 50 and store.count("b") == 50 and store.count() == 80
    assert [m["text"] for m in store.page("b", limit=3)] == ["297", "298", "299"]  # newest kept
    store.close()


def test_a_non_loopback_bind_is_refused_unless_allowed(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "projects.chat.server", *overrides_for(tmp_path, "host=0.0.0.0")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    assert "allow_remote=true" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "history.sqlite3").exists(), "refused before creating any file"
    with pytest.raises(InputError, match="allow_remote"):
        with serve_in_thread(load("server", ServerConfig, overrides_for(tmp_path, "host=0.0.0.0"))):
            pass
    allowed = load(
        "server", ServerConfig, overrides_for(tmp_path, "host=0.0.0.0", "allow_remote=true")
    )
    with serve_in_thread(allowed) as srv:
        assert srv.address[0] == "0.0.0.0"


def test_unused_p2p_offers_are_bounded_and_print_nothing(tmp_path):
    cfg = load("server", ServerConfig, overrides_for(tmp_path, "rate_per_s=0"))
    with serve_in_thread(cfg) as srv, ChatClient(*srv.address, "bob") as bob:
        with raw_login(srv.address, "mallory", None) as s:
            n = 500
            s.sendall(b"".join(encode({"type": "p2p_lookup", "user": "bob"}) for _ in range(n)))
            for _ in range(n):
                assert recv_frame(s)["type"] == "p2p_peer"
        offers = [bob.wait_for("p2p_offer") for _ in range(n)]
        assert bob.peer is not None and bob.peer.pending_offers() <= MAX_OFFERS
        assert all(format_event(o) == [] for o in offers)  # no "opened a direct connection"
        with ChatClient(*srv.address, "alice") as alice:  # a real one still works, and says so
            alice.dm("bob", "hi")
            assert bob.wait_for("dm")["text"] == "hi"
            opened = bob.wait_for("p2p_opened")
            assert format_event(opened) == ["-- alice opened a direct connection to you"]
            joined(alice, "lobby")
