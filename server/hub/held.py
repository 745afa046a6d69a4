"""Messages the hub holds for a party that is not logged on, kept in SQLite.

A held message is the raw inbound message as the hub received it; it is
forwarded (and only then deleted) when its destination logs on, so a crash in
between delivers it again rather than losing it. Each forwarding attempt is
counted (committed before the send), so a message forwarded again after such a
crash goes out marked PossResend=Y and the destination can recognise it.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HeldMessage", "HeldStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    origin TEXT NOT NULL,
    received REAL NOT NULL,
    raw BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS held_destination ON held (destination, id);
"""
_COLUMNS = "id, destination, origin, received, raw, attempts"


@dataclass(slots=True, frozen=True)
class HeldMessage:
    id: int
    destination: str
    origin: str
    received: float
    raw: bytes
    attempts: int = 0  # forwarding attempts already made (> 0: it may have reached the destination)


class HeldStore:
    """Held messages per destination CompID, oldest first (``":memory:"`` for tests)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if "attempts" not in {r[1] for r in self._db.execute("PRAGMA table_info(held)")}:
            self._db.execute("ALTER TABLE held ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")

    def add(self, destination: str, origin: str, raw: bytes, received: float | None = None) -> int:
        cur = self._db.execute(
            "INSERT INTO held (destination, origin, received, raw) VALUES (?, ?, ?, ?)",
            (destination, origin, time.time() if received is None else received, raw),
        )
        return int(cur.lastrowid or 0)

    def pending(self, destination: str | None = None) -> list[HeldMessage]:
        """Held messages (for one destination, or all), in arrival order."""
        if destination is None:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM held ORDER BY id")
        else:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM held WHERE destination = ? ORDER BY id",
                (destination,),
            )
        return [HeldMessage(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    def older_than(self, when: float) -> list[HeldMessage]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM held WHERE received < ? ORDER BY id", (when,)
        )
        return [HeldMessage(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    def attempt(self, msg_id: int) -> None:
        """Count a forwarding attempt (committed at once: call it before sending)."""
        self._db.execute("UPDATE held SET attempts = attempts + 1 WHERE id = ?", (msg_id,))

    def delete(self, msg_id: int) -> None:
        self._db.execute("DELETE FROM held WHERE id = ?", (msg_id,))

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM held").fetchone()[0])

    def close(self) -> None:
        self._db.close()
