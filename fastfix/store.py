"""Message stores: sequence numbers and sent messages of a FIX session.

A session keeps the next sequence numbers to send and to expect, and every
message it sent (for ResendRequest). Three stores share one interface,
:class:`MessageStore`:

- :class:`MemoryStore` — nothing survives the process;
- :class:`FileStore` — one append-only journal file per session: CRC-checked,
  length-prefixed records; a last record torn by a crash is cut off when the file
  is reopened; damage anywhere else stops the store with an error naming the file
  and the offset, and leaves the file as it is for an operator;
- :class:`SqliteStore` — one SQLite database (WAL) for any number of sessions.

Durability policy (``sync``, ``FileStoreSync`` in settings):

- ``"N"`` (default): every call hands its bytes to the operating system before it
  returns: the data survives ``kill -9`` of the process, not a power cut;
- ``"Y"``: every call also waits for the disk (``fdatasync``); survives a power cut;
- ``"batch"``: calls only buffer; :meth:`MessageStore.flush` hands the batch to the
  OS (the engine calls it at the end of each event-loop tick, before the socket
  write). A crash loses what was not flushed.
"""

from __future__ import annotations

import abc
import datetime as _dt
import fcntl
import mmap
import os
import sqlite3
import struct
import zlib
from array import array
from pathlib import Path
from typing import TYPE_CHECKING

from fastfix.errors import StoreError

if TYPE_CHECKING:
    from fastfix.settings import SessionID, Settings

__all__ = [
    "MessageStore",
    "MemoryStore",
    "FileStore",
    "SqliteStore",
    "store_from_settings",
    "SYNC_POLICIES",
    "DEFAULT_SYNC",
]

#: Accepted values of ``sync`` / ``FileStoreSync``.
SYNC_POLICIES = ("Y", "N", "batch")
#: Chosen from bench/test_store_bench.py: see README, "Message stores and logs".
DEFAULT_SYNC = "N"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _from_ns(ns: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ns // 1_000_000_000, _dt.UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


def _to_ns(t: _dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def _check_sync(sync: str) -> str:
    for p in SYNC_POLICIES:
        if sync.lower() == p.lower():
            return p
    raise ValueError(f"sync policy must be one of {SYNC_POLICIES}, got {sync!r}")


class MessageStore(abc.ABC):
    """Sequence numbers and sent messages of one session."""

    @property
    @abc.abstractmethod
    def next_sender_seq(self) -> int:
        """MsgSeqNum of the next message we send."""

    @property
    @abc.abstractmethod
    def next_target_seq(self) -> int:
        """MsgSeqNum we expect on the next message we receive."""

    @property
    @abc.abstractmethod
    def creation_time(self) -> _dt.datetime:
        """When the store was created or last reset (aware, UTC)."""

    @abc.abstractmethod
    def set_next_sender_seq(self, n: int) -> None: ...

    @abc.abstractmethod
    def set_next_target_seq(self, n: int) -> None: ...

    def incr_next_sender_seq(self) -> None:
        self.set_next_sender_seq(self.next_sender_seq + 1)

    def incr_next_target_seq(self) -> None:
        self.set_next_target_seq(self.next_target_seq + 1)

    @abc.abstractmethod
    def save(self, seq: int, raw: bytes) -> None:
        """Keep the message sent with MsgSeqNum ``seq`` (replaces an earlier one)."""

    def save_sent(self, seq: int, raw: bytes) -> None:
        """``save(seq, raw)`` then ``set_next_sender_seq(seq + 1)``, as one write where
        the store can (one record, one fsync): the usual step after sending a message."""
        self.save(seq, raw)
        self.set_next_sender_seq(seq + 1)

    @abc.abstractmethod
    def get_range(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        """Stored messages with ``begin <= seq <= end`` (``end == 0``: no upper bound), by seq."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Both sequence numbers back to 1, messages dropped, new creation time."""

    def refresh(self) -> None:
        """Reload from durable storage (no-op for the memory store)."""
        return None

    def flush(self) -> None:
        """Hand buffered writes to the OS (``batch``) — call at the end of a loop tick."""
        return None

    def close(self) -> None:
        """Flush and release files; the store is unusable afterwards."""
        return None

    def __enter__(self) -> MessageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _CachedSeqNums(MessageStore):
    """Sequence numbers and creation time held in the object; a durable store writes
    them through in :meth:`_write_seqnums` whenever they change."""

    _sender: int
    _target: int
    _created: _dt.datetime

    @property
    def next_sender_seq(self) -> int:
        return self._sender

    @property
    def next_target_seq(self) -> int:
        return self._target

    @property
    def creation_time(self) -> _dt.datetime:
        return self._created

    def _write_seqnums(self) -> None:
        """Make the current sequence numbers durable."""

    def set_next_sender_seq(self, n: int) -> None:
        self._sender = n
        self._write_seqnums()

    def set_next_target_seq(self, n: int) -> None:
        self._target = n
        self._write_seqnums()

    def incr_next_sender_seq(self) -> None:
        self._sender += 1
        self._write_seqnums()

    def incr_next_target_seq(self) -> None:
        self._target += 1
        self._write_seqnums()


# --------------------------------------------------------------------------- memory


class MemoryStore(_CachedSeqNums):
    """In-process store: fast, forgets everything when the process ends."""

    def __init__(self) -> None:
        self._sender = 1
        self._target = 1
        self._messages: dict[int, bytes] = {}
        self._created = _now()

    # Nothing to write through: these skip the base class's _write_seqnums() call,
    # which is on the per-message path.
    def set_next_sender_seq(self, n: int) -> None:
        self._sender = n

    def set_next_target_seq(self, n: int) -> None:
        self._target = n

    def incr_next_sender_seq(self) -> None:
        self._sender += 1

    def incr_next_target_seq(self) -> None:
        self._target += 1

    def save(self, seq: int, raw: bytes) -> None:
        self._messages[seq] = bytes(raw)

    def save_sent(self, seq: int, raw: bytes) -> None:
        self._messages[seq] = bytes(raw)
        self._sender = seq + 1

    def get_range(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        return _range_from(self._messages, begin, end, lambda v: v)

    def reset(self) -> None:
        self._sender = self._target = 1
        self._messages.clear()
        self._created = _now()


def _range_from(index: dict, begin: int, end: int, load) -> list[tuple[int, bytes]]:
    if not index:
        return []
    top = max(index) if end == 0 else end
    begin = max(begin, 1)
    if top - begin > 4 * len(index):
        seqs = sorted(s for s in index if begin <= s <= top)
    else:
        seqs = [s for s in range(begin, top + 1) if s in index]
    return [(s, load(index[s])) for s in seqs]


# --------------------------------------------------------------------------- file


class _Locations:
    """Where each stored message is: MsgSeqNum -> (offset, length).

    Sequence numbers come in runs, so they index two arrays from ``base`` (16 bytes a
    message, where a dict of tuples took about 160: a FIX session keeps this for every
    message of its day); a gap is filled with -1. A number below ``base`` or far past the
    end (a reset of the numbers) goes to a dict.
    """

    __slots__ = ("base", "offs", "lens", "other")
    MAX_GAP = 1 << 16  # a longer jump goes to the dict rather than into the arrays

    def __init__(self) -> None:
        self.base = 0
        self.offs = array("q")
        self.lens = array("q")
        self.other: dict[int, tuple[int, int]] = {}

    def put(self, seq: int, offset: int, length: int) -> None:
        offs = self.offs
        n = len(offs)
        i = seq - self.base
        if i == n and n:  # the usual case: the next number
            offs.append(offset)
            self.lens.append(length)
        elif not n and not self.other:
            self.base = seq
            offs.append(offset)
            self.lens.append(length)
        elif 0 <= i < n:
            offs[i] = offset
            self.lens[i] = length
        elif n and n < i <= n + self.MAX_GAP:
            pad = i - n
            offs.extend(array("q", [-1]) * pad)
            self.lens.extend(array("q", [0]) * pad)
            offs.append(offset)
            self.lens.append(length)
        else:
            self.other[seq] = (offset, length)
            return
        if self.other:
            self.other.pop(seq, None)

    def get(self, seq: int) -> tuple[int, int] | None:
        i = seq - self.base
        if 0 <= i < len(self.offs) and self.offs[i] >= 0:
            return self.offs[i], self.lens[i]
        return self.other.get(seq)

    def between(self, begin: int, end: int) -> list[tuple[int, int, int]]:
        """(seq, offset, length) of the messages from ``begin`` to ``end`` (0: the last), in order."""
        offs, lens, base, n = self.offs, self.lens, self.base, len(self.offs)
        top = end if end else max(base + n - 1 if n else 0, max(self.other, default=0))
        begin = max(begin, 1)
        out = [(base + i, offs[i], lens[i])
               for i in range(max(begin - base, 0), min(top - base + 1, n)) if offs[i] >= 0]
        if self.other:
            out += [(s, loc[0], loc[1]) for s, loc in self.other.items() if begin <= s <= top]
            out.sort()
        return out

# File layout: MAGIC, then records [type u8][length u32][crc32 u32][payload].
# The crc covers type and payload, so a torn or half-written tail never parses.
_MAGIC = b"FFXSTORE\x01\x00\x00\x00"
_REC = struct.Struct("<BII")
_T_CREATED = 0x43  # 'C' payload: creation time, u64 ns since epoch
_T_SEQNUMS = 0x53  # 'S' payload: next sender u64, next target u64
_T_MESSAGE = 0x4D  # 'M' payload: seq u64 + raw message
_T_SENT = 0x50  # 'P' payload: seq u64 + raw message; also sets next sender = seq + 1
_TYPES = frozenset({_T_CREATED, _T_SEQNUMS, _T_MESSAGE, _T_SENT})
_U64 = struct.Struct("<Q")
_U64x2 = struct.Struct("<QQ")


def _record(rtype: int, payload: bytes) -> bytes:
    return _REC.pack(rtype, len(payload), zlib.crc32(payload, rtype)) + payload


class FileStore(_CachedSeqNums):
    """Durable store in ``<directory>/<session>.store``: an append-only journal.

    The file holds a creation record, then message records and sequence-number
    records in the order they were made; on open the journal is replayed (the
    last sequence-number record wins). Only the LAST record may be torn (a crash
    mid-write: cut short, failing its CRC, or a zero-filled tail): it is truncated
    away and ``recovered_bytes`` tells how much was cut. A damaged record with
    anything after it is not a crash but damage (disk, copy, another writer):
    opening raises :class:`~fastfix.errors.StoreError` naming the file and the
    offset, and the file is left untouched. The file is locked (``flock``) while open, so two
    processes cannot write the same session.
    """

    def __init__(self, directory: str | os.PathLike[str], name: str, sync: str = DEFAULT_SYNC):
        self._sync = _check_sync(sync)
        self.directory = Path(directory)
        self.path = self.directory / f"{name}.store"
        self.recovered_bytes = 0
        self._fd = -1
        self._buf = bytearray()
        self._seqnums_due = False  # batch: a sequence-number record owed at the next flush
        self._index = _Locations()  # seq -> (offset, length) of raw
        self._sender = self._target = 1
        self._created = _now()
        self._end = 0  # file offset where the next record goes (excluding _buf)
        self._open()

    @classmethod
    def for_session(
        cls, directory: str | os.PathLike[str], session_id: SessionID, sync: str = DEFAULT_SYNC
    ) -> FileStore:
        return cls(directory, session_id.file_prefix, sync)

    # ---- opening and recovery

    def _open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                self._create_file(_now())
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise StoreError(f"{self.path}: cannot open store: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(f"{self.path}: store is in use by another process") from None
        self._fd = fd
        try:
            self._replay()
        except BaseException:
            os.close(fd)
            self._fd = -1
            raise

    def _create_file(self, created: _dt.datetime) -> None:
        """Write a fresh journal beside the old one and rename it over (atomic)."""
        tmp = self.path.with_suffix(".store.tmp")
        data = (
            _MAGIC
            + _record(_T_CREATED, _U64.pack(_to_ns(created)))
            + _record(_T_SEQNUMS, _U64x2.pack(1, 1))
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _replay(self) -> None:
        size = os.fstat(self._fd).st_size
        if size < len(_MAGIC):
            raise StoreError(f"{self.path}: not a fastfix store (file too short)")
        index = _Locations()
        sender = target = 1
        created: _dt.datetime | None = None
        with mmap.mmap(self._fd, size, prot=mmap.PROT_READ) as mm:
            if mm[: len(_MAGIC)] != _MAGIC:
                raise StoreError(f"{self.path}: not a fastfix store (bad magic)")
            pos = len(_MAGIC)
            hsize = _REC.size
            while pos < size:
                bad = self._bad_record(mm, pos, size)
                if bad:
                    self._check_torn_tail(mm, pos, size, bad)
                    break
                rtype, length, _ = _REC.unpack_from(mm, pos)
                start = pos + hsize
                payload = mm[start : start + length]
                if rtype == _T_MESSAGE or rtype == _T_SENT:
                    (seq,) = _U64.unpack_from(payload)
                    index.put(seq, start + 8, length - 8)
                    if rtype == _T_SENT:
                        sender = seq + 1
                elif rtype == _T_SEQNUMS:
                    sender, target = _U64x2.unpack(payload)
                elif rtype == _T_CREATED:
                    created = _from_ns(_U64.unpack(payload)[0])
                else:
                    raise StoreError(f"{self.path}: unknown record type {rtype} at offset {pos}")
                pos = start + length
        if created is None:
            raise StoreError(f"{self.path}: creation record missing or damaged")
        if pos < size:
            # The last record, torn by a crash: cut it off so later appends follow good data.
            self.recovered_bytes = size - pos
            os.ftruncate(self._fd, pos)
            os.fsync(self._fd)
        self._index, self._sender, self._target, self._created = index, sender, target, created
        self._end = pos

    @staticmethod
    def _bad_record(mm: mmap.mmap, pos: int, size: int) -> str:
        """Why the record at ``pos`` does not parse ("" if it does)."""
        if size - pos < _REC.size:
            return "header cut short"
        rtype, length, crc = _REC.unpack_from(mm, pos)
        start = pos + _REC.size
        if size - start < length:
            return "record cut short"
        if zlib.crc32(mm[start : start + length], rtype) != crc:
            return "CRC mismatch"
        if rtype not in _TYPES:
            return f"unknown record type {rtype}"
        return ""

    def _check_torn_tail(self, mm: mmap.mmap, pos: int, size: int, why: str) -> None:
        """Raise unless the bad record at ``pos`` is the last thing in the file.

        A crash leaves at most one record unfinished, at the very end: a short one, one
        whose bytes never all reached the disk (CRC), or a zero-filled tail. Any record
        after the bad one means the damage is in the middle: dropping everything from
        ``pos`` would silently lose sent messages and sequence numbers.
        """
        if not any(mm[pos:size].translate(None, b"\x00")):
            return  # the file system extended the file but the data never came
        if why.startswith("unknown record type"):
            raise StoreError(f"{self.path}: {why} at offset {pos}; the file is left untouched for inspection")
        if why == "CRC mismatch":
            _, length, _ = _REC.unpack_from(mm, pos)
            if pos + _REC.size + length == size:
                return  # the last record, its payload only partly written
            raise StoreError(
                f"{self.path}: damaged record at offset {pos} ({why}) with "
                f"{size - pos - _REC.size - length} byte(s) after it: not a torn tail; "
                "the file is left untouched for inspection"
            )
        # Cut short: a torn last record, unless its length field is what is damaged and
        # valid records follow (then the length points past the end of the file).
        nxt = self._next_valid_record(mm, pos + 1, size)
        if nxt is not None:
            raise StoreError(
                f"{self.path}: damaged record at offset {pos} ({why}) but a valid record "
                f"follows at offset {nxt}: not a torn tail; the file is left untouched for inspection"
            )

    @staticmethod
    def _next_valid_record(mm: mmap.mmap, start: int, size: int) -> int | None:
        """The offset of the first complete, CRC-valid record at or after ``start``."""
        for pos in range(start, size - _REC.size + 1):
            rtype, length, crc = _REC.unpack_from(mm, pos)
            if rtype not in _TYPES:
                continue
            end = pos + _REC.size + length
            if end <= size and zlib.crc32(mm[pos + _REC.size : end], rtype) == crc:
                return pos
        return None

    # ---- writing

    def _append(self, rec: bytes) -> int:
        """Append one record; returns the file offset of its payload."""
        off = self._end + len(self._buf) + _REC.size
        if self._sync == "batch":
            self._buf += rec
            return off
        os.write(self._fd, rec)
        self._end += len(rec)
        if self._sync == "Y":
            os.fdatasync(self._fd)
        return off

    def _write_seqnums(self) -> None:
        if self._sync == "batch":
            # Buffered until the flush anyway, and only the last numbers count: one record
            # per flush instead of one per received message.
            self._seqnums_due = True
            return
        self._append(_record(_T_SEQNUMS, _U64x2.pack(self._sender, self._target)))

    def save(self, seq: int, raw: bytes) -> None:
        off = self._append(_record(_T_MESSAGE, _U64.pack(seq) + raw))
        self._index.put(seq, off + 8, len(raw))

    def save_sent(self, seq: int, raw: bytes) -> None:
        off = self._append(_record(_T_SENT, _U64.pack(seq) + raw))
        self._index.put(seq, off + 8, len(raw))
        self._sender = seq + 1

    def get_range(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        self.flush()
        fd = self._fd
        return [(s, os.pread(fd, length, off)) for s, off, length in self._index.between(begin, end)]

    def flush(self) -> None:
        if self._seqnums_due:
            self._seqnums_due = False
            self._buf += _record(_T_SEQNUMS, _U64x2.pack(self._sender, self._target))
        if self._buf:
            os.write(self._fd, self._buf)
            self._end += len(self._buf)
            self._buf.clear()

    def reset(self) -> None:
        self.flush()
        self._create_file(_now())
        self._reopen()

    def refresh(self) -> None:
        self.flush()
        self._reopen()

    def _reopen(self) -> None:
        os.close(self._fd)
        self._fd = -1
        self.recovered_bytes = 0
        self._open()

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.flush()
                if self._sync != "N":
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()


# --------------------------------------------------------------------------- sqlite


class SqliteStore(_CachedSeqNums):
    """Durable store in an SQLite database (WAL journal); many sessions per file.

    ``sync``: ``"Y"`` commits every call with ``synchronous=FULL``; ``"N"`` commits
    every call with ``synchronous=NORMAL`` (in WAL mode a committed transaction
    survives a process crash, not a power cut); ``"batch"`` commits at :meth:`flush`.
    """

    def __init__(self, path: str | os.PathLike[str], session: str, sync: str = DEFAULT_SYNC):
        self._sync = _check_sync(sync)
        self.path = Path(path)
        self._sid = session
        self._in_tx = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if self._sync == 'Y' else 'NORMAL'}")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS fix_sessions (session TEXT PRIMARY KEY,"
                " next_sender INTEGER NOT NULL, next_target INTEGER NOT NULL,"
                " creation_ns INTEGER NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS fix_messages (session TEXT NOT NULL,"
                " seq INTEGER NOT NULL, raw BLOB NOT NULL, PRIMARY KEY (session, seq))"
                " WITHOUT ROWID"
            )
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open store: {e}") from None
        self._load()

    @classmethod
    def for_session(
        cls, path: str | os.PathLike[str], session_id: SessionID, sync: str = DEFAULT_SYNC
    ) -> SqliteStore:
        return cls(path, str(session_id), sync)

    def _load(self) -> None:
        row = self._db.execute(
            "SELECT next_sender, next_target, creation_ns FROM fix_sessions WHERE session=?",
            (self._sid,),
        ).fetchone()
        if row is None:
            created = _now()
            self._db.execute(
                "INSERT INTO fix_sessions VALUES (?, 1, 1, ?)", (self._sid, _to_ns(created))
            )
            row = (1, 1, _to_ns(created))
        self._sender, self._target, self._created = row[0], row[1], _from_ns(row[2])

    def _exec(self, sql: str, args: tuple) -> None:
        if self._sync == "batch" and not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True
        self._db.execute(sql, args)

    def _write_seqnums(self) -> None:
        self._exec(
            "UPDATE fix_sessions SET next_sender=?, next_target=? WHERE session=?",
            (self._sender, self._target, self._sid),
        )

    def save(self, seq: int, raw: bytes) -> None:
        self._exec(
            "INSERT OR REPLACE INTO fix_messages VALUES (?, ?, ?)", (self._sid, seq, bytes(raw))
        )

    def save_sent(self, seq: int, raw: bytes) -> None:
        own_tx = not self._in_tx
        if own_tx:  # one commit for both statements
            self._db.execute("BEGIN")
            self._in_tx = True
        self.save(seq, raw)
        self._sender = seq + 1
        self._write_seqnums()
        if own_tx and self._sync != "batch":
            self._db.execute("COMMIT")
            self._in_tx = False

    def get_range(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        if end == 0:
            end = (1 << 63) - 1
        return [
            (s, bytes(r))
            for s, r in self._db.execute(
                "SELECT seq, raw FROM fix_messages WHERE session=? AND seq BETWEEN ? AND ?"
                " ORDER BY seq",
                (self._sid, begin, end),
            )
        ]

    def flush(self) -> None:
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False

    def reset(self) -> None:
        self.flush()
        created = _now()
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM fix_messages WHERE session=?", (self._sid,))
        self._db.execute(
            "UPDATE fix_sessions SET next_sender=1, next_target=1, creation_ns=? WHERE session=?",
            (_to_ns(created), self._sid),
        )
        self._db.execute("COMMIT")
        self._sender = self._target = 1
        self._created = created

    def refresh(self) -> None:
        self.flush()
        self._load()

    def close(self) -> None:
        if self._db is not None:
            try:
                self.flush()
            finally:
                self._db.close()
                self._db = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- factory


def store_from_settings(session_id: SessionID, settings: Settings, sync: str | None = None) -> MessageStore:
    """The store a session's settings ask for.

    ``MessageStore=file|sqlite|memory``; without it: ``file`` if ``FileStorePath``
    is set, else ``sqlite`` if ``SQLiteStorePath`` is set, else ``memory``.
    ``FileStoreSync`` (Y / N / batch) applies to both durable stores; ``sync``, when
    given, overrides it (an application whose own durability policy covers the store).
    """
    kind = settings.get_str("MessageStore", "")
    if not kind:
        kind = (
            "file" if "FileStorePath" in settings
            else "sqlite" if "SQLiteStorePath" in settings
            else "memory"
        )  # fmt: skip
    if sync is None:
        sync = settings.get_str("FileStoreSync", DEFAULT_SYNC)
    if kind == "file":
        return FileStore.for_session(settings.get_path("FileStorePath"), session_id, sync)
    if kind == "sqlite":
        return SqliteStore.for_session(settings.get_path("SQLiteStorePath"), session_id, sync)
    return MemoryStore()

