"""Direct messages between two clients over their own TCP connection.

Each client listens on loopback and tells the server its port at login. To message bob
directly, alice asks the server (`p2p_lookup`); the server sends bob a `p2p_offer` (alice's name
and a fresh random token) and then alice a `p2p_peer` (bob's address, the same token). Alice
connects to bob and opens with `p2p_hello {from, token}`; bob accepts only a token the server
gave him for that name, so a third party cannot pose as alice. From then on both sides send
`dm` frames on that connection, in either direction; the server never carries the text.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from projects.chat.protocol import (
    DEFAULT_MAX_FRAME,
    PEER_SCHEMA,
    ProtocolError,
    recv_frame,
    send_frame,
    validate,
)

HANDSHAKE_TIMEOUT_S = 5.0
OFFER_TTL_S = 30.0  # an offer nobody used by then is forgotten
MAX_OFFERS = 64  # and at most this many wait at once (the oldest go first)


class PeerNode:
    """A client's listening socket and its direct connections, one reader thread each.

    `on_event` receives `{"type": "dm", "from", "text", "ts"}` for every direct message,
    `{"type": "p2p_opened", "user"}` when a peer connects to us with a good token, and
    `{"type": "p2p_closed", "user"}` when a peer connection ends; it runs on reader threads.
    Offers expire (`OFFER_TTL_S`, `MAX_OFFERS`): 5,000 unused lookups once grew a client by 4 MB.
    """

    def __init__(
        self,
        name: str,
        on_event: Callable[[dict[str, Any]], None],
        host: str = "127.0.0.1",
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.name = name
        self.on_event = on_event
        self.host = host
        self.max_frame = max_frame
        self.handshake_timeout = HANDSHAKE_TIMEOUT_S
        self._peers: dict[str, socket.socket] = {}
        self._send_locks: dict[str, threading.Lock] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (user it admits, expiry)
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._listener: socket.socket | None = None

    def start(self) -> int:
        """Listen on `host`, any free port; returns the port to register with the server."""
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind((self.host, 0))
        lsock.listen(16)
        lsock.settimeout(0.25)
        self._listener = lsock
        self._spawn(self._accept_loop, "p2p-accept")
        return lsock.getsockname()[1]

    def expect(self, user: str, token: str) -> None:
        """Admit one connection from `user` presenting `token` (from the server's p2p_offer)."""
        now = time.monotonic()
        with self._cond:
            for old in [t for t, (_, exp) in self._tokens.items() if exp < now]:
                del self._tokens[old]
            while len(self._tokens) >= MAX_OFFERS:  # dicts keep insertion order: oldest first
                del self._tokens[next(iter(self._tokens))]
            self._tokens[token] = (user, now + OFFER_TTL_S)
            self._cond.notify_all()

    def pending_offers(self) -> int:
        with self._cond:
            return len(self._tokens)

    def connected(self, user: str) -> bool:
        with self._cond:
            return user in self._peers

    def connect(self, user: str, host: str, port: int, token: str) -> None:
        """Open the direct connection to `user` (after the server's p2p_peer reply)."""
        sock = socket.create_connection((host, port), timeout=self.handshake_timeout)
        sock.settimeout(None)
        send_frame(sock, {"type": "p2p_hello", "from": self.name, "token": token})
        self._add_peer(user, sock)

    def send(self, user: str, text: str) -> None:
        """Send `text` to a connected peer; KeyError if there is no direct connection."""
        with self._cond:
            sock, lock = self._peers[user], self._send_locks[user]
        with lock:
            send_frame(sock, {"type": "dm", "from": self.name, "text": text, "ts": time.time()})

    def close(self) -> None:
        """Close the listener and every peer connection, and join the threads."""
        self._stopping = True
        with self._cond:
            socks = list(self._peers.values())
            self._cond.notify_all()
        for sock in socks:
            hang_up(sock)
        for _ in range(2):  # the accept loop may spawn one last handshake while we join
            for t in list(self._threads):
                if t is not threading.current_thread():
                    t.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    # ---- threads -------------------------------------------------------------------------
    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._handshake, "p2p-handshake", sock)

    def _handshake(self, sock: socket.socket) -> None:
        """Check an incoming connection's token, then read its messages."""
        sock.settimeout(self.handshake_timeout)
        try:
            hello = validate(recv_frame(sock, self.max_frame) or {}, PEER_SCHEMA)
            if hello["type"] != "p2p_hello":
                raise ProtocolError("expected p2p_hello", "bad_handshake")
            deadline = time.monotonic() + self.handshake_timeout
            with self._cond:  # the server's offer may still be on its way to us
                while self._tokens.get(hello["token"], ("", 0.0))[0] != hello["from"]:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._stopping:
                        raise ProtocolError("unknown token", "bad_token")
                    self._cond.wait(left)
                del self._tokens[hello["token"]]
        except (ProtocolError, OSError, ConnectionError) as exc:
            code = getattr(exc, "code", "bad_handshake")
            with contextlib.suppress(OSError):
                send_frame(sock, {"type": "error", "code": code, "message": str(exc)})
            sock.close()
            return
        sock.settimeout(None)
        self._add_peer(hello["from"], sock, spawn=False)
        self.on_event({"type": "p2p_opened", "user": hello["from"]})
        self._read_loop(hello["from"], sock)

    def _add_peer(self, user: str, sock: socket.socket, spawn: bool = True) -> None:
        with self._cond:
            old = self._peers.get(user)
            self._peers[user] = sock
            self._send_locks[user] = threading.Lock()
        if old is not None:
            hang_up(old)
        if spawn:
            self._spawn(self._read_loop, f"p2p-{user}", user, sock)

    def _read_loop(self, user: str, sock: socket.socket) -> None:
        try:
            while True:
                msg = recv_frame(sock, self.max_frame)
                if msg is None:
                    break
                if msg.get("type") == "dm" and isinstance(msg.get("text"), str):
                    # The sender's name is the one its token proved, whatever the frame says.
                    event = {"type": "dm", "from": user, "text": msg["text"]}
                    self.on_event({**event, "ts": msg.get("ts")})
        except (ProtocolError, OSError, ConnectionError):
            pass
        finally:
            with self._cond:
                if self._peers.get(user) is sock:
                    del self._peers[user]
            sock.close()
            if not self._stopping:
                self.on_event({"type": "p2p_closed", "user": user})


def hang_up(sock: socket.socket) -> None:
    """Wake a thread blocked reading `sock` (close alone does not on Linux)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
