"""Issue 24.1: no frame the server builds may exceed the clients' limit, or every receiver is
disconnected (and, replayed from history, every later joiner, across restarts)."""

from __future__ import annotations

import pytest

from projects.chat.client import ChatClient
from projects.chat.config import ServerConfig, load
from projects.chat.history import HistoryStore
from projects.chat.limits import CLIPPED, clip_text, fit_messages, json_size
from projects.chat.protocol import encode
from projects.chat.server import serve_in_thread
from tests.unit.chat.conftest import joined, overrides_for

pytestmark = pytest.mark.timeout(60)


def frame_bytes(msg: dict) -> int:
    return len(encode(msg)) - 4


def test_a_say_that_fits_the_frame_but_whose_broadcast_would_not_is_refused(server, connect):
    limit = server.cfg.max_frame_bytes
    alice, bob = connect("alice"), connect("bob")
    joined(alice, "lobby")
    joined(bob, "lobby")
    huge = "x" * (limit - 100)  # the say frame fits; the message frame would be ~65,590 bytes
    assert frame_bytes({"type": "say", "room": "lobby", "text": huge}) <= limit
    alice.say("lobby", huge)
    assert alice.wait_for("error", ref="say")["code"] == "too_long"
    quote = '"' * 5000  # JSON doubles it: 10,002 bytes in a frame, over max_text_bytes
    alice.say("lobby", quote)
    assert alice.wait_for("error", ref="say")["code"] == "too_long"
    alice.pm("bob", huge)
    assert alice.wait_for("error", ref="pm")["code"] == "too_long"

    longest = "y" * (server.cfg.max_text_bytes - 2)  # exactly at the limit, with the quotes
    for _ in range(20):  # twenty of the longest texts: the old replay of 20 was ~160 KB
        alice.say("lobby", longest)
    for _ in range(20):
        got = bob.wait_for("message", room="lobby", timeout=20)
        assert got["text"] == longest and frame_bytes(got) <= limit
    carol = connect("carol")
    replay = joined(carol, "lobby")
    assert frame_bytes(replay) <= limit
    assert 0 < len(replay["history"]) < 20 and replay["more"] is True
    assert json_size(replay["history"]) <= server.cfg.replay_max_bytes
    carol.history("lobby", before=replay["history"][0]["id"], limit=100)
    page = carol.wait_for("history")
    assert frame_bytes(page) <= limit and page["messages"] and page["more"] is True
    for c in (alice, bob, carol):  # nobody was disconnected
        c.ping("alive")
        c.wait_for("pong", token="alive")
        assert not c.closed.is_set()


def test_history_stored_before_the_limit_never_breaks_a_join(tmp_path):
    """A 65 KB message and twenty 4 KB ones, written before the bound existed, in #lobby."""
    cfg = load("server", ServerConfig, overrides_for(tmp_path))
    store = HistoryStore(tmp_path / "history.sqlite3")
    store.append("lobby", "mallory", "m" * 65_500, 1.0)
    for i in range(20):
        store.append("lobby", "alice", f"{i:02d}" + "a" * 4_000, 2.0 + i)
    store.close()
    with serve_in_thread(cfg) as srv:  # a restart: the server only finds them on disk
        for _ in range(2):
            with ChatClient(*srv.address, "bob", max_frame=cfg.max_frame_bytes) as bob:
                replay = joined(bob, "lobby")
                assert frame_bytes(replay) <= cfg.max_frame_bytes
                texts = [m["text"] for m in replay["history"]]
                assert texts[-1].startswith("19") and replay["more"] is True
                before = None  # every page, down to the huge one, fits too
                while True:
                    bob.history("lobby", before=before, limit=100)
                    page = bob.wait_for("history", timeout=10)
                    assert frame_bytes(page) <= cfg.max_frame_bytes
                    if not page["more"]:
                        break
                    before = page["messages"][0]["id"]
                oldest = page["messages"][0]
                assert oldest["from"] == "mallory" and oldest["text"].endswith(CLIPPED)
                assert json_size(oldest["text"]) <= cfg.max_text_bytes
                assert not bob.closed.is_set()


def test_clipping_and_fitting_measure_json_bytes():
    assert clip_text("short", 100) == "short"
    clipped = clip_text("é\n" * 1000, 300)  # é is 2 bytes, \n is 2 bytes escaped
    assert json_size(clipped) <= 300 and clipped.endswith(CLIPPED)
    msgs = [{"id": i, "text": "t" * 100} for i in range(10)]
    kept, cut = fit_messages(msgs, 500, 1000)
    assert cut and kept == msgs[-len(kept) :] and json_size(kept) <= 500
    assert fit_messages(msgs, 10_000, 1000) == (msgs, False)
