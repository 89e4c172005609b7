"""Claimed names: a name logged in with a secret once belongs to whoever knows that secret.

Without a claim a name is first come, first served while its owner is online, and free again
the moment they disconnect (so anyone could log in as "bob" or as the bot between sessions).
A `hello` carrying a `secret` for an unclaimed name claims it; from then on the name logs in
only with that secret. Only a salted scrypt hash is kept, in the history database's `claims`
table (committed with the server's round, on the same SQLite connection, so the two never
lock each other). Reserved names (the bot's) are claimed by the server itself at start-up with a
random secret written to `secrets_dir/<name>.secret` (mode 0600), which the bot reads.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from pathlib import Path

# scrypt cost: ~0.1 s and 16 MiB per check on this VM; it runs on the server's loop, so a wrong
# secret also closes the connection (one guess per TCP handshake, under the rate limit).
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
MAX_SECRET_CHARS = 256

SCHEMA = "CREATE TABLE IF NOT EXISTS claims (name TEXT PRIMARY KEY, salt BLOB, hash BLOB)"


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, **SCRYPT)


class NameClaims:
    """The `claims` table on an open SQLite connection (the history store's)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.db.execute(SCHEMA)

    def is_claimed(self, name: str) -> bool:
        row = self.db.execute("SELECT 1 FROM claims WHERE name = ?", (name,)).fetchone()
        return row is not None

    def claim(self, name: str, secret: str) -> None:
        """Tie `name` to `secret` (the caller checked it is unclaimed)."""
        salt = os.urandom(16)
        self.db.execute(
            "INSERT INTO claims (name, salt, hash) VALUES (?, ?, ?)",
            (name, salt, _hash(secret, salt)),
        )

    def verify(self, name: str, secret: str) -> bool:
        row = self.db.execute("SELECT salt, hash FROM claims WHERE name = ?", (name,)).fetchone()
        return row is not None and hmac.compare_digest(_hash(secret, row[0]), row[1])

    def reserve(self, name: str, secrets_dir: Path) -> Path:
        """Make sure `name` is claimed with the secret in `secrets_dir/<name>.secret`, writing a
        fresh one (0600) the first time; returns the file's path."""
        path = secrets_dir / f"{name}.secret"
        fresh = not path.exists()
        if fresh:  # a new secret replaces any old claim: the server owns reserved names
            secrets_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
            self.db.execute("DELETE FROM claims WHERE name = ?", (name,))
        if not self.is_claimed(name):
            self.claim(name, read_secret(path))
        self.db.commit()
        return path


def read_secret(path: str | Path) -> str:
    """A secret file's text without the trailing newline."""
    return Path(path).read_text(encoding="utf-8").strip()
