"""Room history in SQLite: appended by the server's one thread, paged by message id.

Writes are committed once per event-loop round (`commit`), not per message, so a burst of
messages costs one transaction; WAL mode keeps readers (a second process, a test) unblocked.
The store is bounded: every `PRUNE_EVERY` appends, rooms past `max_per_room` messages and the
whole table past `max_total` lose their oldest (a client once stored 37,750 messages in 8 s,
and nothing stopped the file growing until the disk filled).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    room   TEXT NOT NULL,
    sender TEXT NOT NULL,
    text   TEXT NOT NULL,
    ts     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_room_id ON messages (room, id);
"""
PRUNE_EVERY = 200


class HistoryStore:
    """Per-room message log; ids grow with arrival order, so they double as paging cursors."""

    def __init__(
        self, path: str | Path, max_per_room: int | None = None, max_total: int | None = None
    ) -> None:
        self.max_per_room, self.max_total = max_per_room, max_total
        self._touched: set[str] = set()
        self._appends = 0
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.commit()

    def append(self, room: str, sender: str, text: str, ts: float) -> int:
        """Store one message (uncommitted until `commit`) and return its id."""
        cur = self.db.execute(
            "INSERT INTO messages (room, sender, text, ts) VALUES (?, ?, ?, ?)",
            (room, sender, text, ts),
        )
        self._touched.add(room)
        self._appends += 1
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def page(self, room: str, before: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Up to `limit` messages of `room` with id < `before` (None: the newest), oldest first."""
        if limit <= 0:
            return []
        cursor = before if before is not None else 2**63 - 1
        rows = self.db.execute(
            "SELECT id, room, sender, text, ts FROM messages WHERE room = ? AND id < ? "
            "ORDER BY id DESC LIMIT ?",
            (room, cursor, limit),
        ).fetchall()
        return [
            {"id": i, "room": r, "from": s, "text": t, "ts": ts}
            for i, r, s, t, ts in reversed(rows)
        ]

    def has_older(self, room: str, before: int) -> bool:
        """Whether `room` holds messages older than id `before`."""
        row = self.db.execute(
            "SELECT 1 FROM messages WHERE room = ? AND id < ? LIMIT 1", (room, before)
        ).fetchone()
        return row is not None

    def commit(self) -> None:
        if self._appends >= PRUNE_EVERY:
            self.prune()
        if self.db.in_transaction:
            self.db.commit()

    def prune(self) -> None:
        """Delete what is over the per-room and total caps (oldest first)."""
        in_room = (
            "DELETE FROM messages WHERE room = ? AND id <= (SELECT id FROM messages "
            "WHERE room = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
        )
        if self.max_per_room is not None:
            for room in sorted(self._touched):
                self.db.execute(in_room, (room, room, self.max_per_room))
        if self.max_total is not None:
            self.db.execute(
                "DELETE FROM messages WHERE id <= "
                "(SELECT id FROM messages ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (self.max_total,),
            )
        self._touched.clear()
        self._appends = 0

    def count(self, room: str | None = None) -> int:
        """Messages stored (in `room`, or in all)."""
        where, args = ("WHERE room = ?", (room,)) if room is not None else ("", ())
        return int(self.db.execute(f"SELECT COUNT(*) FROM messages {where}", args).fetchone()[0])

    def close(self) -> None:
        self.prune()
        self.commit()
        self.db.close()
