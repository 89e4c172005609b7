"""Room history in SQLite: appended by the server's one thread, paged by message id.

Writes are committed once per event-loop round (`commit`), not per message, so a burst of
messages costs one transaction; WAL mode keeps readers (a second process, a test) unblocked.
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


class HistoryStore:
    """Per-room message log; ids grow with arrival order, so they double as paging cursors."""

    def __init__(self, path: str | Path) -> None:
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
        if self.db.in_transaction:
            self.db.commit()

    def close(self) -> None:
        self.commit()
        self.db.close()
