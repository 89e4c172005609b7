"""Direct messages: the server introduces two clients, then never carries their text."""

from __future__ import annotations

import contextlib
import socket

import pytest

from projects.chat.client import ChatClient, ChatError
from projects.chat.history import HistoryStore
from projects.chat.protocol import recv_frame, send_frame
from projects.chat.server import ChatServer, serve_in_thread

pytestmark = pytest.mark.timeout(60)


class TappedServer(ChatServer):
    """The real server, recording every byte its sockets receive."""

    received = bytearray()

    def _recv(self, conn):
        data = super()._recv(conn)
        self.received += data
        return data


def test_direct_messages_never_pass_through_the_server(server_cfg):
    TappedServer.received = bytearray()
    secret, reply = "the cake is a lie 7f3a", "and the answer is 42 c9d1"
    with serve_in_thread(server_cfg, server_cls=TappedServer) as srv:
        with ChatClient(*srv.address, "alice") as alice, ChatClient(*srv.address, "bob") as bob:
            alice.dm("bob", secret)
            got = bob.wait_for("dm")
            assert (got["from"], got["text"]) == ("alice", secret)
            bob.dm("alice", reply)  # bob answers on the connection alice opened
            assert alice.wait_for("dm")["text"] == reply
            alice.dm("bob", secret + " again")  # reuses it: no second lookup
            assert bob.wait_for("dm")["text"] == secret + " again"
    tapped = bytes(TappedServer.received)
    assert tapped.count(b'"p2p_lookup"') == 1, "the tap sees the lookup, so it sees traffic"
    assert secret.encode() not in tapped and reply.encode() not in tapped
    store = HistoryStore(server_cfg.db_path)
    assert store.page("lobby") == []
    store.close()


def test_lookup_of_an_unknown_or_unreachable_user_fails(connect):
    alice = connect("alice")
    connect("hermit", p2p=False)
    with pytest.raises(ChatError, match="no_such_user"):
        alice.dm("nobody", "hi")
    with pytest.raises(ChatError, match="no_p2p"):
        alice.dm("hermit", "hi")
    with pytest.raises(ChatError, match="no_p2p"):
        alice.dm("alice", "hi")


def test_a_peer_without_the_servers_token_is_turned_away(connect, server):
    bob = connect("bob")
    bob.peer.handshake_timeout = 0.5
    with socket.create_connection(("127.0.0.1", bob.peer._listener.getsockname()[1])) as s:
        s.settimeout(10)
        send_frame(s, {"type": "p2p_hello", "from": "alice", "token": "guessed"})
        assert recv_frame(s)["code"] == "bad_token"
        with contextlib.suppress(OSError):  # bob has hung up on us
            send_frame(s, {"type": "dm", "from": "alice", "text": "spoofed"})
    bob.ping("sync")
    bob.wait_for("pong")
    assert all(m["type"] != "dm" for m in list(bob._skipped))
