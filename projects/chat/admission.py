"""Who gets in and who is shown out: the connection cap, back-off when accept runs out of file
descriptors, and the login / idle timeouts (a mixin of ChatServer, on its one thread).

At the descriptor limit the listening socket stays readable while accept fails, so a loop that
just logs and retries spins (93% CPU, 24,830 warnings in 6 s, and new clients timed out). Here
the listener is taken out of the selector for a back-off that doubles from 50 ms to 2 s, and
each kind of warning is logged at most once per 10 s with a count of what it left out.
"""

from __future__ import annotations

import errno
import ipaddress
import selectors
import socket
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from projects.chat.config import ServerConfig
from projects.chat.limits import TokenBucket
from projects.chat.protocol import FrameDecoder, encode
from shared.errors import InputError
from shared.logging import get_logger

if TYPE_CHECKING:
    from projects.chat.server import ChatServer

    _Base = ChatServer
else:
    _Base = object

log = get_logger("projects.chat.server")

ACCEPT_BACKOFF_S = (0.05, 2.0)  # pause of the listener after EMFILE: first, most
WARN_EVERY_S = 10.0  # at most one warning per kind of trouble this often
OUT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
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
    bucket: TokenBucket = field(default_factory=lambda: TokenBucket(0, 1))
    since: float = field(default_factory=time.monotonic)  # connected
    last_frame: float = field(default_factory=time.monotonic)  # last complete frame received


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one ("" and 0.0.0.0 are not)."""
    try:
        infos = socket.getaddrinfo(host or None, 0, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(host) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_host(cfg: ServerConfig) -> None:
    """Refuse a non-loopback host unless `allow_remote`: nothing on the wire is encrypted."""
    if not cfg.allow_remote and not is_loopback(cfg.host):
        raise InputError(
            f"refusing to listen on {cfg.host!r}: the chat has no encryption and only name "
            "secrets, so it listens on loopback only; set allow_remote=true to accept other "
            "hosts anyway"
        )


class Admission(_Base):
    """Accepting (capped, backing off), refusing, and the periodic timeout sweep."""

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        """log.warning, at most once per WARN_EVERY_S per `kind` (with the count suppressed)."""
        now = time.monotonic()
        if now - self._warned.get(kind, -WARN_EVERY_S) < WARN_EVERY_S:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._warned[kind] = now
        more = self._suppressed.pop(kind, 0)
        log.warning(message + (f" ({more} more since the last warning)" if more else ""), *args)

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(self.cfg.backlog):  # bounded, so a flood of connects cannot starve reads
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in OUT_OF_FDS:
                    self._pause_accepting(exc)
                else:  # e.g. ECONNABORTED: that one client is gone, the next may be fine
                    self._warn("accept", "accept failed: %s", exc)
                return
            self._accept_backoff = ACCEPT_BACKOFF_S[0]
            if len(self._conns) >= self.cfg.max_connections:
                self._refuse(sock, addr)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(sock, addr, FrameDecoder(self.cfg.max_frame_bytes))
            conn.bucket = TokenBucket(self.cfg.rate_per_s, self.cfg.rate_burst)
            self._conns.add(conn)
            self._set_mask(conn)

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of descriptors: the listener stays readable, so stop watching it for a while
        (doubling up to ACCEPT_BACKOFF_S[1]) instead of spinning on accept."""
        assert self._listener is not None
        with suppress(KeyError, ValueError):
            self.sel.unregister(self._listener)
        self._accept_paused_until = time.monotonic() + self._accept_backoff
        self._warn(
            "fds",
            "accept failed (%s) with %d connections open: not accepting for %.2f s",
            exc.strerror,
            len(self._conns),
            self._accept_backoff,
        )
        self._accept_backoff = min(self._accept_backoff * 2, ACCEPT_BACKOFF_S[1])

    def _resume_accepting(self) -> None:
        if self._accept_paused_until is not None and time.monotonic() >= self._accept_paused_until:
            self._accept_paused_until = None
            self.sel.register(self._listener, selectors.EVENT_READ, "listen")  # type: ignore[arg-type]

    def _refuse(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        """Over max_connections: one `server_full` error (best effort), then close."""
        with suppress(OSError), sock:
            sock.setblocking(False)
            msg = f"{self.cfg.max_connections} connections already; try again later"
            sock.send(encode({"type": "error", "code": "server_full", "message": msg}))
        self._warn("full", "refused %s:%s: %d connections open", *addr, len(self._conns))

    def _sweep(self, now: float) -> None:
        """Close connections past the login, idle or closing deadline."""
        cfg = self.cfg
        for conn in list(self._conns):
            if conn.closing_since is not None:
                if now - conn.closing_since > CLOSE_GRACE_S:
                    self._drop(conn, "did not hang up")
            elif conn.name is None and now - conn.since > cfg.login_timeout_s:
                self._error(conn, "login_timeout", f"no hello within {cfg.login_timeout_s:g} s")
                self._start_closing(conn)
            elif now - conn.last_frame > cfg.idle_timeout_s:
                self._error(conn, "idle_timeout", f"no request for {cfg.idle_timeout_s:g} s")
                self._start_closing(conn)


def warn_fd_limit(cfg: ServerConfig) -> None:
    """Say so when max_connections cannot all be open under the process's descriptor limit."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and cfg.max_connections + 32 > soft:
        log.warning(
            "max_connections=%d but `ulimit -n` is %d: past ~%d connections accept will pause",
            cfg.max_connections,
            soft,
            soft - 32,
        )
