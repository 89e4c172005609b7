"""A blocking chat client: one socket to the server, a reader thread, an inbox queue.

The terminal UI (`tui.py`), the FAQ bot, the benchmark and the tests all drive the server
through this class. Everything the server sends (and every direct message from a peer) lands
in one queue in arrival order; `recv` takes the next event, `wait_for` the next one of a kind.

    python -m projects.chat.tui --name alice [--room lobby] [host=... port=...]  (the client)
"""

from __future__ import annotations

import collections
import queue
import socket
import threading
import time
from typing import Any

from projects.chat.p2p import PeerNode, hang_up
from projects.chat.protocol import (
    DEFAULT_MAX_FRAME,
    ProtocolError,
    recv_frame,
    send_frame,
)


class ChatError(RuntimeError):
    """The server refused a request (its `error` reply)."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.reply = reply


class ChatClient:
    """A logged-in connection to the chat server (and, with `p2p`, a listener for peers)."""

    def __init__(
        self,
        host: str,
        port: int,
        name: str,
        *,
        p2p: bool = True,
        max_frame: int = DEFAULT_MAX_FRAME,
        timeout: float = 10.0,
        secret: str | None = None,
    ) -> None:
        """Log in as `name`; with `secret`, claim the name (first use) or prove it is ours."""
        self.name = name
        self.max_frame = max_frame
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._skipped: collections.deque[dict[str, Any]] = collections.deque()
        self._send_lock = threading.Lock()
        self._lookup_lock = threading.Lock()
        self._lookup_reply: queue.Queue[dict[str, Any]] = queue.Queue()
        self.closed = threading.Event()
        self.peer = PeerNode(name, self.inbox.put, max_frame=max_frame) if p2p else None
        p2p_port = self.peer.start() if self.peer else None
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            hello: dict[str, Any] = {"type": "hello", "name": name}
            if p2p_port is not None:
                hello["p2p_port"] = p2p_port
            if secret is not None:
                hello["secret"] = secret
            send_frame(self.sock, hello)
            reply = recv_frame(self.sock, max_frame)
            if reply is None or reply.get("type") != "welcome":
                raise ChatError(reply or {"code": "closed", "message": "server hung up"})
        except BaseException:
            if self.peer:
                self.peer.close()
            if hasattr(self, "sock"):
                self.sock.close()
            raise
        self.sock.settimeout(None)
        self.welcome = reply
        self._reader = threading.Thread(target=self._read_loop, name=f"chat-{name}", daemon=True)
        self._reader.start()
        # The server closes a connection that sends nothing for idle_timeout_s: ping well before.
        idle = reply.get("idle_timeout_s")
        self._keepalive = threading.Thread(
            target=self._ping_loop, args=(idle / 3 if idle else None,), name=f"chat-ka-{name}"
        )
        self._keepalive.start()

    def _ping_loop(self, every: float | None) -> None:
        while not self.closed.wait(every):
            try:
                self.ping("keepalive")
            except OSError:
                return

    # ---- requests ------------------------------------------------------------------------
    def send(self, msg: dict[str, Any]) -> None:
        with self._send_lock:
            send_frame(self.sock, msg)

    def join(self, room: str) -> None:
        self.send({"type": "join", "room": room})

    def leave(self, room: str) -> None:
        self.send({"type": "leave", "room": room})

    def say(self, room: str, text: str) -> None:
        self.send({"type": "say", "room": room, "text": text})

    def pm(self, to: str, text: str) -> None:
        self.send({"type": "pm", "to": to, "text": text})

    def list_rooms(self) -> None:
        self.send({"type": "list"})

    def who(self, room: str) -> None:
        self.send({"type": "who", "room": room})

    def history(self, room: str, before: int | None = None, limit: int | None = None) -> None:
        msg: dict[str, Any] = {"type": "history", "room": room}
        if before is not None:
            msg["before"] = before
        if limit is not None:
            msg["limit"] = limit
        self.send(msg)

    def ping(self, token: str = "") -> None:
        self.send({"type": "ping", "token": token})

    def dm(self, user: str, text: str, timeout: float = 5.0) -> None:
        """Send `text` to `user` over a direct connection, asking the server to introduce us
        first if there is none yet. The server sees the lookup, never the text."""
        if self.peer is None:
            raise RuntimeError("this client was made with p2p=False")
        if not self.peer.connected(user):
            with self._lookup_lock:
                while not self._lookup_reply.empty():
                    self._lookup_reply.get_nowait()
                self.send({"type": "p2p_lookup", "user": user})
                try:
                    reply = self._lookup_reply.get(timeout=timeout)
                except queue.Empty:
                    raise TimeoutError(f"no answer to p2p_lookup for {user}") from None
            if reply["type"] == "error":
                raise ChatError(reply)
            self.peer.connect(user, reply["host"], reply["port"], reply["token"])
        self.peer.send(user, text)

    # ---- events --------------------------------------------------------------------------
    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event (server message or direct message), or None after `timeout`."""
        if self._skipped:
            return self._skipped.popleft()
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_for(self, kind: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """The next event of type `kind` whose fields equal `fields`; others stay queued."""
        deadline = time.monotonic() + timeout
        kept: list[dict[str, Any]] = []
        try:
            for msg in list(self._skipped):
                if msg["type"] == kind and all(msg.get(k) == v for k, v in fields.items()):
                    self._skipped.remove(msg)
                    return msg
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no {kind} {fields} within {timeout} s")
                try:
                    msg = self.inbox.get(timeout=left)
                except queue.Empty:
                    continue
                if msg["type"] == kind and all(msg.get(k) == v for k, v in fields.items()):
                    return msg
                kept.append(msg)
        finally:
            self._skipped.extend(kept)

    def _read_loop(self) -> None:
        reason = "server closed the connection"
        try:
            while True:
                msg = recv_frame(self.sock, self.max_frame)
                if msg is None:
                    break
                kind = msg["type"]
                if kind == "pong" and msg.get("token") == "keepalive":
                    continue
                if kind == "p2p_offer" and self.peer is not None:
                    self.peer.expect(msg["user"], msg["token"])
                elif kind == "p2p_peer" or (kind == "error" and msg.get("ref") == "p2p_lookup"):
                    self._lookup_reply.put(msg)
                    if kind == "p2p_peer":
                        continue
                self.inbox.put(msg)
        except (ProtocolError, OSError, ConnectionError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self.closed.set()
            self.inbox.put({"type": "disconnected", "reason": reason})

    def close(self) -> None:
        """Hang up on the server and every peer; joins the reader threads."""
        hang_up(self.sock)
        self._reader.join(timeout=5)
        self.closed.set()
        self._keepalive.join(timeout=5)
        self.sock.close()
        if self.peer is not None:
            self.peer.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
