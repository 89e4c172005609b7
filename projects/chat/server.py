"""The chat server: one thread, one `selectors` loop, non-blocking sockets.

Each round of the loop reads whatever arrived, decodes complete frames, handles them in
arrival order (which is what keeps every sender's messages in order for every receiver),
appends replies to per-connection output buffers, commits the round's history writes in one
SQLite transaction, and then flushes the buffers. A connection that breaks the protocol gets an
error reply; one whose length prefix is over the limit is answered and closed; one that vanishes
(even mid-frame) is dropped and its rooms are told, without touching anyone else.

    python -m projects.chat.server [port=5050 db_path=... key=value ...]

Bounds (all in `configs/chat/server.yaml`): `max_connections` (one more is answered
`server_full` and closed), `login_timeout_s` and `idle_timeout_s` (a connection that sends no
hello, or no complete frame, for that long is closed: a half-sent frame is not held forever),
a token bucket per connection (`rate_per_s`, `rate_burst`: over it, `rate_limited`), and when
accept fails for want of file descriptors the listener is paused with back-off instead of
being retried in a busy loop (which once burned 93% CPU on 24,830 warnings in 6 s).
The request handlers are in `handlers.py`; accepting, refusing and the timeouts in
`admission.py`.
"""

from __future__ import annotations

import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from projects.chat.accounts import NameClaims
from projects.chat.admission import (
    ACCEPT_BACKOFF_S,
    Admission,
    Conn,
    check_host,
    warn_fd_limit,
)
from projects.chat.config import ServerConfig, load, repo_path
from projects.chat.handlers import Handlers
from projects.chat.history import HistoryStore
from projects.chat.limits import name_pattern
from projects.chat.logqueue import nonblocking_logging
from projects.chat.protocol import ProtocolError, encode, validate
from shared.cli import expected_errors
from shared.errors import InputError
from shared.logging import get_logger

log = get_logger(__name__)

SWEEP_EVERY_S = 0.5  # how often the login / idle / close timeouts are checked


class ChatServer(Admission, Handlers):
    """Rooms, private messages, history and P2P introductions over one selectors loop."""

    def __init__(self, cfg: ServerConfig, history: HistoryStore) -> None:
        self.cfg = cfg
        self.history = history
        self.claims = NameClaims(history.db)
        for name in cfg.reserved_names:
            self.claims.reserve(name, repo_path(cfg.secrets_dir))
        self.sel = selectors.DefaultSelector()
        self.users: dict[str, Conn] = {}
        self.rooms: dict[str, set[Conn]] = {}
        self._name_re = name_pattern(cfg.max_name_len)
        self._listener: socket.socket | None = None
        self._accept_paused_until: float | None = None
        self._accept_backoff = ACCEPT_BACKOFF_S[0]
        self._last_sweep = 0.0
        self._warned: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._running = False
        self._dirty: set[Conn] = set()
        self._doomed: set[Conn] = set()
        self._conns: set[Conn] = set()

    # ---- lifecycle -----------------------------------------------------------------------
    def bind(self) -> tuple[str, int]:
        """Open the listening socket; returns the (host, port) actually bound (port 0 = any).
        A non-loopback host is refused unless `allow_remote`: nothing is encrypted."""
        check_host(self.cfg)
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
                timeout = 1.0
                if self._accept_paused_until is not None:
                    timeout = max(0.0, min(timeout, self._accept_paused_until - time.monotonic()))
                for key, events in self.sel.select(timeout=timeout):
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
            conn.last_frame = time.monotonic()
            if not conn.bucket.take():
                kind = item.get("type") if isinstance(item, dict) else None
                self._error(conn, "rate_limited", "too many requests: slow down", ref=kind)
                continue
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

    def _fits(self, frame: bytes, what: Any) -> bool:
        """Whether a frame we built is within max_frame_bytes (else every receiver would be
        disconnected by it: a bug in a bound, logged, and the frame is not sent)."""
        if len(frame) - 4 <= self.cfg.max_frame_bytes:
            return True
        log.error(
            "not sending a %d-byte %s frame (limit %d)", len(frame), what, self.cfg.max_frame_bytes
        )
        return False

    def _send(self, conn: Conn, msg: dict[str, Any]) -> None:
        frame = encode(msg)
        if not self._fits(frame, msg.get("type")):
            frame = encode({"type": "error", "code": "internal", "message": "reply too large"})
        self._send_frame(conn, frame)

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
        self._resume_accepting()
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_EVERY_S:
            self._last_sweep = now
            self._sweep(now)
        for conn in list(self._doomed):
            self._drop(conn, f"output buffer over {self.cfg.max_outbuf_bytes} bytes")
        self._doomed.clear()
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            if conn in self._conns:
                self._flush(conn)

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
        if not self._fits(frame, msg.get("type")):
            return
        for member in list(self.rooms.get(room, ())):
            if member is not skip:
                self._send_frame(member, frame)

    def _members(self, room: str) -> list[str]:
        return sorted(c.name for c in self.rooms.get(room, ()) if c.name)

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


def open_history(cfg: ServerConfig) -> HistoryStore:
    """The configured history file, with its size caps."""
    return HistoryStore(repo_path(cfg.db_path), cfg.history_max_per_room, cfg.history_max_total)


@contextmanager
def serve_in_thread(
    cfg: ServerConfig,
    history: HistoryStore | None = None,
    server_cls: type[ChatServer] = ChatServer,
) -> Iterator[ChatServer]:
    """A running server on a background thread (tests, benchmark); stopped and joined on exit."""
    server = server_cls(cfg, history or open_history(cfg))
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
        check_host(cfg)  # before any file is created
        db = repo_path(cfg.db_path)
        server = ChatServer(cfg, open_history(cfg))
        try:
            host, port = server.bind()
        except OSError as exc:
            raise InputError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}") from None
    warn_fd_limit(cfg)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop())
    print(f"chat server listening on {host}:{port} (history: {db})", flush=True)
    pump, handler = nonblocking_logging()  # from here on a stuck stdout cannot stop the loop
    try:
        server.serve_forever()
    finally:
        log.info("chat server stopped (%d log records dropped)", handler.dropped)
        pump.stop()


if __name__ == "__main__":
    main()
