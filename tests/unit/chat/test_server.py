"""Server + clients over real loopback sockets: login, rooms, private messages, history."""

from __future__ import annotations

import pytest

from projects.chat.client import ChatClient, ChatError
from projects.chat.history import HistoryStore
from projects.chat.server import serve_in_thread
from tests.unit.chat.conftest import joined

pytestmark = pytest.mark.timeout(60)


def test_server_binds_loopback_from_the_config(server):
    host, port = server.address
    assert host == "127.0.0.1" and port > 0


def test_login_refuses_a_taken_or_malformed_name(connect):
    connect("alice")
    with pytest.raises(ChatError, match="name_taken"):
        connect("alice")
    with pytest.raises(ChatError, match="bad_name"):
        connect("no spaces allowed")


def test_join_say_and_leave_reach_exactly_the_room_members(connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    assert joined(alice, "lobby")["users"] == ["alice"]
    assert joined(bob, "lobby")["users"] == ["alice", "bob"]
    joined(carol, "dev")
    assert alice.wait_for("presence", user="bob")["event"] == "join"

    bob.say("lobby", "hello lobby")
    for c in (alice, bob):  # the sender gets its own message back: that is its receipt
        got = c.wait_for("message", room="lobby")
        assert (got["from"], got["text"]) == ("bob", "hello lobby")
    carol.ping("sync")
    carol.wait_for("pong", token="sync")
    assert all(m["type"] != "message" for m in list(carol._skipped)), "carol is not in lobby"

    bob.leave("lobby")
    bob.wait_for("left", room="lobby")
    assert alice.wait_for("presence", user="bob")["event"] == "leave"
    alice.list_rooms()
    rooms = alice.wait_for("room_list")["rooms"]
    assert rooms == [{"room": "dev", "users": 1}, {"room": "lobby", "users": 1}]
    alice.who("dev")
    assert alice.wait_for("user_list")["users"] == ["carol"]


def test_speaking_or_leaving_without_joining_is_refused(connect):
    alice = connect("alice")
    alice.say("lobby", "anyone?")
    assert alice.wait_for("error")["code"] == "not_in_room"
    alice.leave("lobby")
    assert alice.wait_for("error")["code"] == "not_in_room"


def test_requests_before_hello_are_refused(server):
    import socket

    from projects.chat.protocol import recv_frame, send_frame

    with socket.create_connection(server.address, timeout=5) as s:
        send_frame(s, {"type": "join", "room": "lobby"})
        assert recv_frame(s)["code"] == "not_logged_in"


def test_private_message_reaches_the_recipient_and_echoes_to_the_sender_only(connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    for c in (alice, bob, carol):
        joined(c, "lobby")
    alice.pm("bob", "just for you")
    for c in (bob, alice):
        got = c.wait_for("private")
        assert (got["from"], got["to"], got["text"]) == ("alice", "bob", "just for you")
    carol.ping("sync")
    carol.wait_for("pong")
    assert all(m["type"] != "private" for m in list(carol._skipped))
    alice.pm("nobody", "hello?")
    assert alice.wait_for("error")["code"] == "no_such_user"


def test_joining_replays_the_last_messages_and_history_pages_backwards(server_cfg):
    cfg = server_cfg
    with serve_in_thread(cfg) as srv:
        with ChatClient(*srv.address, "alice") as alice:
            joined(alice, "lobby")
            for i in range(45):
                alice.say("lobby", f"m{i}")
            for i in range(45):
                assert alice.wait_for("message", room="lobby")["text"] == f"m{i}"
        with ChatClient(*srv.address, "bob") as bob:
            first = joined(bob, "lobby")
            assert [m["text"] for m in first["history"]] == [f"m{i}" for i in range(25, 45)]
            assert first["more"] is True
            bob.history("lobby", before=first["history"][0]["id"], limit=15)
            page = bob.wait_for("history")
            assert [m["text"] for m in page["messages"]] == [f"m{i}" for i in range(10, 25)]
            assert page["more"] is True
            bob.history("lobby", before=page["messages"][0]["id"], limit=15)
            last = bob.wait_for("history")
            assert [m["text"] for m in last["messages"]] == [f"m{i}" for i in range(10)]
            assert last["more"] is False
            bob.history("lobby", limit=10_000)  # clamped to history_page_max
            assert len(bob.wait_for("history")["messages"]) == min(45, cfg.history_page_max)


def test_history_survives_a_server_restart(server_cfg):
    with serve_in_thread(server_cfg) as srv, ChatClient(*srv.address, "alice") as alice:
        joined(alice, "lobby")
        alice.say("lobby", "before the restart")
        alice.wait_for("message")
    # a fresh server process state, the same SQLite file
    with serve_in_thread(server_cfg) as srv, ChatClient(*srv.address, "bob") as bob:
        replay = joined(bob, "lobby")["history"]
        assert [(m["from"], m["text"]) for m in replay] == [("alice", "before the restart")]
        store = HistoryStore(server_cfg.db_path)
        assert store.page("lobby")[0]["text"] == "before the restart"
        store.close()
