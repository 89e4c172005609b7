"""The server's request handlers: one method per client message type (a mixin of ChatServer).

They run on the server's one thread, between reading a round's frames and flushing replies,
and only append to output buffers and to the round's history batch. Each bound that keeps a
frame under `max_frame_bytes` is applied here: a text over `max_text_bytes` is refused
(`too_long`), and replays, pages and lists are cut by bytes (`limits.py`).
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from projects.chat.accounts import MAX_SECRET_CHARS
from projects.chat.limits import fit_list, fit_messages, json_size
from projects.chat.protocol import ProtocolError
from shared.logging import get_logger

if TYPE_CHECKING:
    from projects.chat.server import ChatServer, Conn

    _Base = ChatServer
else:
    _Base = object

log = get_logger("projects.chat.server")


class Handlers(_Base):
    """`_hello` and `_on_<type>` for every client message type."""

    def _check_name(self, value: str, what: str) -> str:
        if not self._name_re.fullmatch(value):
            raise ProtocolError(
                f"bad {what} name {value!r}: 1-{self.cfg.max_name_len} of A-Z a-z 0-9 _ . -",
                "bad_name",
            )
        return value

    def _check_text(self, text: str) -> None:
        size = json_size(text)
        if size > self.cfg.max_text_bytes:
            raise ProtocolError(
                f"text of {size} bytes over the {self.cfg.max_text_bytes} limit", "too_long"
            )

    def _hello(self, conn: Conn, msg: dict[str, Any]) -> None:
        if conn.name is not None:
            raise ProtocolError(f"already logged in as {conn.name}", "already_logged_in")
        name = self._check_name(msg["name"], "user")
        secret = msg.get("secret")
        if secret is not None and not 0 < len(secret) <= MAX_SECRET_CHARS:
            raise ProtocolError(f"secret: 1-{MAX_SECRET_CHARS} characters", "bad_field")
        port = msg.get("p2p_port")
        if port is not None and not 0 < port < 65536:
            raise ProtocolError(f"p2p_port {port} out of range", "bad_field")
        claimed = self.claims.is_claimed(name)
        if claimed:
            if secret is None:
                raise ProtocolError(f"name {name!r} is claimed: log in with its secret", "claimed")
            if not self.claims.verify(name, secret):
                self._error(conn, "bad_secret", f"wrong secret for {name!r}", ref="hello")
                self._start_closing(conn)  # one guess per connection
                return
            old = self.users.get(name)
            if old is not None:  # the owner is back (e.g. after a network drop): replace it
                self._error(old, "replaced", f"{name} logged in elsewhere")
                self._start_closing(old)
        elif name in self.users:
            raise ProtocolError(f"name {name!r} is taken", "name_taken")
        elif secret is not None:
            self.claims.claim(name, secret)
            claimed = True
            log.info("%s claimed its name", name)
        conn.name, conn.p2p_port = name, port
        self.users[name] = conn
        log.info("%s logged in from %s:%s", name, *conn.addr)
        welcome = {"type": "welcome", "name": name, "default_room": self.cfg.default_room}
        rooms, _ = fit_list(sorted(self.rooms), self.cfg.replay_max_bytes)
        self._send(
            conn,
            {
                **welcome,
                "rooms": rooms,
                "claimed": claimed,
                "max_frame_bytes": self.cfg.max_frame_bytes,
                "max_text_bytes": self.cfg.max_text_bytes,
                "idle_timeout_s": self.cfg.idle_timeout_s,
            },
        )

    def _page(self, room: str, before: int | None, limit: int) -> tuple[list[dict], bool]:
        """Up to `limit` messages before `before`, cut to `replay_max_bytes`; and `more`."""
        rows = self.history.page(room, before, limit)
        rows, cut = fit_messages(rows, self.cfg.replay_max_bytes, self.cfg.max_text_bytes)
        return rows, cut or (bool(rows) and self.history.has_older(room, rows[0]["id"]))

    def _on_join(self, conn: Conn, msg: dict[str, Any]) -> None:
        room = self._check_name(msg["room"], "room")
        fresh = room not in conn.rooms
        conn.rooms.add(room)
        self.rooms.setdefault(room, set()).add(conn)
        replay, more = self._page(room, None, self.cfg.replay_last)
        reply = {"type": "joined", "room": room, "users": self._members(room)}
        self._send(conn, {**reply, "history": replay, "more": more})
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
        rooms, more = fit_list(rooms, self.cfg.replay_max_bytes)
        self._send(conn, {"type": "room_list", "rooms": rooms, "more": more})

    def _on_who(self, conn: Conn, msg: dict[str, Any]) -> None:
        self._send(
            conn, {"type": "user_list", "room": msg["room"], "users": self._members(msg["room"])}
        )

    def _on_say(self, conn: Conn, msg: dict[str, Any]) -> None:
        room = msg["room"]
        if room not in conn.rooms:
            raise ProtocolError(f"join {room!r} before speaking in it", "not_in_room")
        self._check_text(msg["text"])
        ts = time.time()
        assert conn.name is not None
        msg_id = self.history.append(room, conn.name, msg["text"], ts)
        out = {"type": "message", "id": msg_id, "room": room, "from": conn.name}
        self._broadcast(room, {**out, "text": msg["text"], "ts": ts})

    def _on_pm(self, conn: Conn, msg: dict[str, Any]) -> None:
        target = self.users.get(msg["to"])
        if target is None:
            raise ProtocolError(f"no user {msg['to']!r}", "no_such_user")
        self._check_text(msg["text"])
        out = {"type": "private", "from": conn.name, "to": msg["to"]}
        out.update(text=msg["text"], ts=time.time())
        self._send(target, out)
        if target is not conn:
            self._send(conn, out)

    def _on_history(self, conn: Conn, msg: dict[str, Any]) -> None:
        limit = max(1, min(msg.get("limit", self.cfg.history_page_max), self.cfg.history_page_max))
        messages, more = self._page(msg["room"], msg.get("before"), limit)
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
