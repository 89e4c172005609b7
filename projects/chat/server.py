"""The chat server: one thread, one `selectors` loop, non-blocking sockets.

Each round of the loop reads whatever arrived, decodes complete frames, handles them in
arrival order (which is what keeps every sender's messages in order for every receiver),
appends replies to per-connection output buffers, commits the round's history writes in one
SQLite transaction, and then flushes the buffers. A connection that breaks the protocol gets an
error reply; one whose length prefix is over the limit is answered and closed; one that vanishes
(even mid-frame) is dropped and its rooms are told, without touching anyone else.

    python -m projects.chat.server [port=5050 db_path=... key=value ...]

One module past ~400 lines on purpose: the loop, the connection state and the handlers share
each round's buffers and history batch; split, they would pass that state between modules.
"""

from __future__ import annotations

import re
import secrets
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from projects.chat.config import ServerConfig, load, repo_path
from projects.chat.history import HistoryStore
from projects.chat.protocol import FrameDecoder, ProtocolError, encode, validate
from shared.cli import expected_errors
from shared.errors import InputError
from shared.logging import get_logger

log = get_logger(__name__)

CLOSE_GRACE_S = 5.0  # how long a closing connection may take to hang up after our FIN


@dataclass(eq=False)
class Conn:
    """One client connection and what the server knows about it."""

    sock: socket.socket
    addr: tuple[str, int]
    decoder: FrameDecoder
    outbuf: bytearray = field(default_factory=bytearray)
    name: str | None = None
    rooms: set[str] = field(default_factory=set)
    p2p_port: int | None = None
    closing_since: float | None = None  # set once we decided to hang up
    fin_sent: bool = False
    mask: int = 0


class ChatServer:
    """Rooms, private messages, history and P2P introductions over one selectors loop."""

    def __init__(self, cfg: ServerConfig, history: HistoryStore) -> None:
        self.cfg = cfg
        self.history = history
        self.sel = selectors.DefaultSelector()
        self.users: dict[str, Conn] = {}
        self.rooms: dict[str, set[Conn]] = {}
        self._name_re = re.compile(rf"^[A-Za-z0-9_.\-]{{1,{cfg.max_name_len}}}$")
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._running = False
        self._dirty: set[Conn] = set()
        self._doomed: set[Conn] = set()
        self._conns: set[Conn] = set()

    # ---- lifecycle -----------------------------------------------------------------------
    def bind(self) -> tuple[str, int]:
        """Open the listening socket; returns the (host, port) actually bound (port 0 = any)."""
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self.cfg.host, self.cfg.port))
        lsock.listen(self.cfg.backlog)
        lsock.setblocking(False)
        self._listener = lsock
        self.sel.register(lsock, selectors.EVENT_READ, "listen")
        self._wake_r.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "bind() first"
        return self._listener.getsockname()[:2]

    def stop(self) -> None:
        """Ask the loop to end (safe from any thread or a signal handler)."""
        self._running = False
        with suppress(OSError):
            self._wake_w.send(b"x")

    def serve_forever(self) -> None:
        if self._listener is None:
            self.bind()
        self._running = True
        try:
            while self._running:
                for key, events in self.sel.select(timeout=1.0):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        with suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                    else:
                        conn: Conn = key.data
                        if events & selectors.EVENT_READ and conn in self._conns:
                            self._on_readable(conn)
                        if events & selectors.EVENT_WRITE and conn in self._conns:
                            self._dirty.add(conn)
                self._end_round()
        finally:
            self.close()

    def close(self) -> None:
        for conn in list(self._conns):
            self._drop(conn, "server stopping", announce=False)
        if self._listener is not None:
            with suppress(KeyError, ValueError):
                self.sel.unregister(self._listener)
            self._listener.close()
        for s in (self._wake_r, self._wake_w):
            s.close()
        self.sel.close()
        self.history.close()

    # ---- I/O -----------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                log.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(sock, addr, FrameDecoder(self.cfg.max_frame_bytes))
            self._conns.add(conn)
            self._set_mask(conn)

    def _recv(self, conn: Conn) -> bytes:
        """One read from a client (a method so a test can tap every byte the server receives)."""
        return conn.sock.recv(65536)

    def _on_readable(self, conn: Conn) -> None:
        try:
            data = self._recv(conn)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(conn, f"read error: {exc}")
            return
        if not data:
            reason = "hung up mid-frame" if conn.decoder.pending else "hung up"
            self._drop(conn, reason)
            return
        if conn.closing_since is not None:
            return  # draining what the client still sends until it hangs up
        for item in conn.decoder.feed(data):
            if isinstance(item, ProtocolError):
                self._error(conn, item.code, str(item))
                if item.fatal:
                    self._start_closing(conn)
                    return
                continue
            try:
                self._handle(conn, validate(item))
            except ProtocolError as exc:
                self._error(conn, exc.code, str(exc), ref=item.get("type"))
            except Exception as exc:  # a bug in one handler must not take the server down
                log.exception("handling %s from %s failed", item.get("type"), conn.name)
                self._error(conn, "internal", f"{type(exc).__name__}", ref=item.get("type"))

    def _send(self, conn: Conn, msg: dict[str, Any]) -> None:
        self._send_frame(conn, encode(msg))

    def _send_frame(self, conn: Conn, frame: bytes) -> None:
        if conn in self._doomed or conn not in self._conns:
            return
        conn.outbuf += frame
        if len(conn.outbuf) > self.cfg.max_outbuf_bytes:
            self._doomed.add(conn)  # it stopped reading: drop it rather than grow without end
        self._dirty.add(conn)

    def _flush(self, conn: Conn) -> None:
        if conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._drop(conn, f"write error: {exc}")
                return
            del conn.outbuf[:sent]
        if conn.closing_since is not None and not conn.outbuf and not conn.fin_sent:
            try:  # FIN after the error reply, then wait for theirs
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._drop(conn, "closed", announce=True)
                return
            conn.fin_sent = True
        self._set_mask(conn)

    def _set_mask(self, conn: Conn) -> None:
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        if mask == conn.mask:
            return
        if conn.mask == 0:
            self.sel.register(conn.sock, mask, conn)
        else:
            self.sel.modify(conn.sock, mask, conn)
        conn.mask = mask

    def _end_round(self) -> None:
        self.history.commit()
        for conn in list(self._doomed):
            self._drop(conn, f"output buffer over {self.cfg.max_outbuf_bytes} bytes")
        self._doomed.clear()
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            if conn in self._conns:
                self._flush(conn)
        now = time.monotonic()
        for conn in list(self._conns):
            if conn.closing_since is not None and now - conn.closing_since > CLOSE_GRACE_S:
                self._drop(conn, "did not hang up")

    def _start_closing(self, conn: Conn) -> None:
        """Stop serving `conn`: it leaves its rooms now; the socket closes after the reply."""
        conn.closing_since = time.monotonic()
        self._forget(conn, announce=True)
        self._dirty.add(conn)

    def _drop(self, conn: Conn, reason: str, announce: bool = True) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        self._dirty.discard(conn)
        if conn.mask:
            with suppress(KeyError, ValueError):
                self.sel.unregister(conn.sock)
        conn.sock.close()
        log.info("%s (%s:%s) disconnected: %s", conn.name or "-", *conn.addr, reason)
        self._forget(conn, announce)

    def _forget(self, conn: Conn, announce: bool) -> None:
        """Remove `conn`'s user from the user table and its rooms, telling those rooms."""
        for room in sorted(conn.rooms):
            members = self.rooms.get(room, set())
            members.discard(conn)
            if not members:
                self.rooms.pop(room, None)
            elif announce:
                leave = {"type": "presence", "room": room, "user": conn.name, "event": "leave"}
                self._broadcast(room, leave)
        conn.rooms.clear()
        if conn.name is not None and self.users.get(conn.name) is conn:
            del self.users[conn.name]

    # ---- protocol ------------------------------------------------------------------------
    def _error(self, conn: Conn, code: str, message: str, ref: str | None = None) -> None:
        self._send(conn, {"type": "error", "code": code, "message": message, "ref": ref})

    def _broadcast(self, room: str, msg: dict[str, Any], skip: Conn | None = None) -> None:
        frame = encode(msg)  # once, however many members
        for member in list(self.rooms.get(room, ())):
            if member is not skip:
                self._send_frame(member, frame)

    def _members(self, room: str) -> list[str]:
        return sorted(c.name for c in self.rooms.get(room, ()) if c.name)

    def _check_name(self, value: str, what: str) -> str:
        if not self._name_re.match(value):
            raise ProtocolError(
                f"bad {what} name {value!r}: 1-{self.cfg.max_name_len} of A-Z a-z 0-9 _ . -",
                "bad_name",
            )
        return value

    def _handle(self, conn: Conn, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "ping":
            self._send(conn, {"type": "pong", "token": msg.get("token")})
            return
        if kind == "hello":
            self._hello(conn, msg)
            return
        if conn.name is None:
            raise ProtocolError("say hello first", "not_logged_in")
        getattr(self, f"_on_{kind}")(conn, msg)

    def _hello(self, conn: Conn, msg: dict[str, Any]) -> None:
        if conn.name is not None:
            raise ProtocolError(f"already logged in as {conn.name}", "already_logged_in")
        name = self._check_name(msg["name"], "user")
        if name in self.users:
            raise ProtocolError(f"name {name!r} is taken", "name_taken")
        port = msg.get("p2p_port")
        if port is not None and not 0 < port < 65536:
            raise ProtocolError(f"p2p_port {port} out of range", "bad_field")
        conn.name, conn.p2p_port = name, port
        self.users[name] = conn
        log.info("%s logged in from %s:%s", name, *conn.addr)
        self._send(
            conn,
            {
                "type": "welcome",
                "name": name,
                "default_room": self.cfg.default_room,
                "rooms": sorted(self.rooms),
                "max_frame_bytes": self.cfg.max_frame_bytes,
            },
        )

    def _on_join(self, conn: Conn, msg: dict[str, Any]) -> None:
        room = self._check_name(msg["room"], "room")
        fresh = room not in conn.rooms
        conn.rooms.add(room)
        self.rooms.setdefault(room, set()).add(conn)
        replay = self.history.page(room, None, self.cfg.replay_last)
        more = bool(replay) and self.history.has_older(room, replay[0]["id"])
        self._send(
            conn,
            {
                "type": "joined",
                "room": room,
                "users": self._members(room),
                "history": replay,
                "more": more,
            },
        )
        if fresh:
            self._broadcast(
                room, {"type": "presence", "room": room, "user": conn.name, "event": "join"}, conn
            )

    def _on_leave(self, conn: Conn, msg: dict[str, Any]) -> None:
        room = msg["room"]
        if room not in conn.rooms:
            raise ProtocolError(f"not in room {room!r}", "not_in_room")
        conn.rooms.discard(room)
        members = self.rooms[room]
        members.discard(conn)
        if not members:
            del self.rooms[room]
        self._send(conn, {"type": "left", "room": room})
        self._broadcast(
            room, {"type": "presence", "room": room, "user": conn.name, "event": "leave"}
        )

    def _on_list(self, conn: Conn, msg: dict[str, Any]) -> None:
        rooms = [{"room": r, "users": len(m)} for r, m in sorted(self.rooms.items())]
        self._send(conn, {"type": "room_list", "rooms": rooms})

    def _on_who(self, conn: Conn, msg: dict[str, Any]) -> None:
        self._send(
            conn, {"type": "user_list", "room": msg["room"], "users": self._members(msg["room"])}
        )

    def _on_say(self, conn: Conn, msg: dict[str, Any]) -> None:
        room = msg["room"]
        if room not in conn.rooms:
            raise ProtocolError(f"join {room!r} before speaking in it", "not_in_room")
        ts = time.time()
        assert conn.name is not None
        msg_id = self.history.append(room, conn.name, msg["text"], ts)
        out = {"type": "message", "id": msg_id, "room": room, "from": conn.name}
        self._broadcast(room, {**out, "text": msg["text"], "ts": ts})

    def _on_pm(self, conn: Conn, msg: dict[str, Any]) -> None:
        target = self.users.get(msg["to"])
        if target is None:
            raise ProtocolError(f"no user {msg['to']!r}", "no_such_user")
        out = {"type": "private", "from": conn.name, "to": msg["to"]}
        out.update(text=msg["text"], ts=time.time())
        self._send(target, out)
        if target is not conn:
            self._send(conn, out)

    def _on_history(self, conn: Conn, msg: dict[str, Any]) -> None:
        limit = max(1, min(msg.get("limit", self.cfg.history_page_max), self.cfg.history_page_max))
        messages = self.history.page(msg["room"], msg.get("before"), limit)
        more = bool(messages) and self.history.has_older(msg["room"], messages[0]["id"])
        self._send(
            conn, {"type": "history", "room": msg["room"], "messages": messages, "more": more}
        )

    def _on_p2p_lookup(self, conn: Conn, msg: dict[str, Any]) -> None:
        target = self.users.get(msg["user"])
        if target is None:
            raise ProtocolError(f"no user {msg['user']!r}", "no_such_user")
        if target is conn:
            raise ProtocolError("that is you", "no_p2p")
        if target.p2p_port is None:
            raise ProtocolError(f"{target.name} does not accept direct connections", "no_p2p")
        token = secrets.token_hex(16)
        # The target hears first, so it knows the token before the caller can connect.
        offer = {"type": "p2p_offer", "user": conn.name, "host": conn.addr[0]}
        self._send(target, {**offer, "port": conn.p2p_port, "token": token})
        peer = {"type": "p2p_peer", "user": target.name, "host": target.addr[0]}
        self._send(conn, {**peer, "port": target.p2p_port, "token": token})


@contextmanager
def serve_in_thread(
    cfg: ServerConfig,
    history: HistoryStore | None = None,
    server_cls: type[ChatServer] = ChatServer,
) -> Iterator[ChatServer]:
    """A running server on a background thread (tests, benchmark); stopped and joined on exit."""
    server = server_cls(cfg, history or HistoryStore(repo_path(cfg.db_path)))
    server.bind()
    thread = threading.Thread(target=server.serve_forever, name="chat-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    """A bad override or an address in use: one `error:` line, exit status 2."""
    with expected_errors():
        cfg = load("server", ServerConfig, sys.argv[1:] if argv is None else argv)
        db = repo_path(cfg.db_path)
        server = ChatServer(cfg, HistoryStore(db))
        try:
            host, port = server.bind()
        except OSError as exc:
            raise InputError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}") from None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop())
    print(f"chat server listening on {host}:{port} (history: {db})", flush=True)
    server.serve_forever()
    print("chat server stopped", flush=True)


if __name__ == "__main__":
    main()
