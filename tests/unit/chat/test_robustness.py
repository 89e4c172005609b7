"""Bad input, vanishing clients, slow readers and load: one client's trouble is its own."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from projects.chat.client import ChatClient
from projects.chat.config import ServerConfig, load
from projects.chat.protocol import HEADER, encode, recv_frame, send_frame
from projects.chat.server import serve_in_thread
from tests.unit.chat.conftest import joined, overrides_for, raw_login

pytestmark = pytest.mark.timeout(60)


def test_malformed_frames_get_an_error_and_the_connection_keeps_working(server):
    with raw_login(server.address, "mallory") as s:
        cases = [
            (struct.pack(">I", 9) + b"{not json", "bad_json"),
            (struct.pack(">I", 2) + b"\xc3\x28", "bad_json"),  # invalid UTF-8
            (encode([1, 2, 3]), "bad_frame"),  # type: ignore[arg-type]
            (encode({"text": "no type"}), "bad_field"),
            (encode({"type": "say", "room": "lobby"}), "bad_field"),
            (encode({"type": "say", "room": "lobby", "text": 42}), "bad_field"),
            (encode({"type": "teleport"}), "unknown_type"),
            (encode({"type": "join", "room": "../etc"}), "bad_name"),
        ]
        for frame, code in cases:
            s.sendall(frame)
            reply = recv_frame(s)
            assert (reply["type"], reply["code"]) == ("error", code), frame
        send_frame(s, {"type": "say", "room": "lobby", "text": "still here"})
        assert recv_frame(s)["text"] == "still here"


def test_oversized_length_prefix_gets_an_error_then_a_clean_close(server, connect):
    alice = connect("alice")
    joined(alice, "lobby")
    s = raw_login(server.address, "mallory")
    with s:
        alice.wait_for("presence", user="mallory")
        too_big = server.cfg.max_frame_bytes + 1
        s.sendall(HEADER.pack(too_big) + b"x" * 4096)  # and a body it will never read
        reply = recv_frame(s)
        assert (reply["type"], reply["code"]) == ("error", "too_large")
        assert s.recv(1) == b"", "expected an orderly close (FIN), not a reset or more data"
    assert alice.wait_for("presence", user="mallory")["event"] == "leave"
    alice.say("lobby", "unaffected")
    assert alice.wait_for("message")["text"] == "unaffected"


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_vanishing_mid_frame_does_not_affect_the_others(server, connect, how):
    alice, bob = connect("alice"), connect("bob")
    joined(alice, "lobby")
    joined(bob, "lobby")
    ghost = raw_login(server.address, "ghost")
    alice.wait_for("presence", user="ghost")
    body = encode({"type": "say", "room": "lobby", "text": "never finished"})
    ghost.sendall(body[:10])  # header says more is coming
    if how == "reset":
        ghost.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ghost.close()
    assert alice.wait_for("presence", user="ghost")["event"] == "leave"
    bob.say("lobby", "after the ghost")
    got = alice.wait_for("message")
    assert (got["from"], got["text"]) == ("bob", "after the ghost")
    alice.history("lobby")
    assert "never finished" not in [m["text"] for m in alice.wait_for("history")["messages"]]
    with raw_login(server.address, "ghost", room=None):  # its name is free again
        pass


def test_no_message_is_lost_or_reordered_per_sender_under_load(tmp_path):
    cfg = load("server", ServerConfig, overrides_for(tmp_path, "rate_per_s=0"))  # flat out
    with serve_in_thread(cfg) as srv:
        clients = [ChatClient(*srv.address, f"user{i}", p2p=False) for i in range(6)]
        try:
            check_order_under_load(clients, per_sender=200)
        finally:
            for c in clients:
                c.close()


def check_order_under_load(clients: list[ChatClient], per_sender: int) -> None:
    senders = len(clients)
    for c in clients:
        joined(c, "load")
    for c in clients:  # everyone sees everyone join before the race starts
        c.who("load")
        while len(c.wait_for("user_list")["users"]) < senders:
            c.who("load")
    start = threading.Barrier(senders)

    def blast(c: ChatClient) -> None:
        start.wait()
        for i in range(per_sender):
            c.say("load", f"{c.name}:{i}")

    threads = [threading.Thread(target=blast, args=(c,), name="chat-test-blast") for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for receiver in clients:
        seen: dict[str, list[int]] = {c.name: [] for c in clients}
        for _ in range(senders * per_sender):
            msg = receiver.wait_for("message", room="load", timeout=20)
            name, seq = msg["text"].split(":")
            assert name == msg["from"]
            seen[name].append(int(seq))
        for name, seqs in seen.items():
            assert seqs == list(range(per_sender)), f"{receiver.name} saw {name} out of order"


def test_a_client_that_stops_reading_is_dropped_and_the_room_goes_on(tmp_path):
    cfg = load(
        "server", ServerConfig, overrides_for(tmp_path, "max_outbuf_bytes=262144", "rate_per_s=0")
    )
    with serve_in_thread(cfg) as srv, ChatClient(*srv.address, "alice", p2p=False) as alice:
        joined(alice, "lobby")
        sleeper = socket.socket()
        sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # no autotuning
        sleeper.connect(srv.address)
        with sleeper:
            send_frame(sleeper, {"type": "hello", "name": "sleeper"})
            send_frame(sleeper, {"type": "join", "room": "lobby"})
            alice.wait_for("presence", user="sleeper")
            chunk, sent, left = "z" * 8_000, 0, None
            # Send 1.6 MB at a time until the server gives up on the sleeper: the kernel's
            # socket buffers take the first few MB, then the 256 KiB limit is reached.
            while left is None and sent < 3200:  # 25 MB at most
                for _ in range(200):
                    alice.say("lobby", chunk)
                sent += 200
                try:
                    left = alice.wait_for("presence", user="sleeper", timeout=1)
                except TimeoutError:
                    continue
            assert left is not None and left["event"] == "leave"
            for _ in range(sent):  # alice, still reading, got every message
                assert alice.wait_for("message", timeout=30)["text"] == chunk
