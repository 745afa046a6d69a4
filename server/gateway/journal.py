"""The journal: the durable point of every order, cancel and report.

Each loop callback that changes state (a request, or one read of reports from the
hub) ends with :meth:`Journal.commit`: the rows it staged (orders, lists,
executions, events, aliases, FIX resume points) go to the end of the journal in
ONE ``write`` system call, on the loop thread, before the FIX message is written
or the event pushed. Nothing on the order path waits for a later loop pass or
another thread.

The SQLite database is a projection of the journal (``projection.py``): a
projector process follows these files (:class:`JournalReader`), applies the
records in batches behind the journal and records the last journal position it
applied in the same transaction. At start-up, :meth:`JournalFile.records_after`
replays what the projection had not applied yet.

Durability (``sync``): ``"normal"`` hands each record to the operating system
before the answer (survives ``kill -9``); ``"full"`` also waits for the disk
(``fdatasync``) and survives a power loss.

File layout: the directory holds segments ``<first position>.journal``; each is a
magic string, then records ``[length u32][crc32 u32][position u64][payload]``,
the CRC covering position and payload. A record torn at the end of the last
segment (a crash mid-write) is cut off when the journal is opened; damage
anywhere else stops the gateway with an error naming the file and offset, and
the files are left as they are for an operator.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from fastfix.errors import StoreError
from server.gateway.orders import Execution, Order, OrderList

__all__ = ["Journal", "JournalFile", "JournalReader", "Rows", "SYNC_MODES"]

SYNC_MODES = ("normal", "full")
SEGMENT_BYTES = 64 << 20  # a new segment after this many bytes (old ones go once projected)
MAX_RECORD = 256 << 20  # a larger length field is damage, not a record
_MAGIC = b"FFXJRNL\x01"
_HEAD = struct.Struct("<IIQ")
_U64 = struct.Struct("<Q")

# A record's payload: one list of rows per table, as the projection writes them.
ORDERS, LISTS, EXECUTIONS, EVENTS, ALIASES, RESUME = range(6)
Rows = tuple[list[tuple[Any, ...]], ...]

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


def _blob(record: Any) -> bytearray:
    """A record as MessagePack in a bytearray: sqlite3 binds a bytearray as it is, while a
    bytes parameter first goes through its adaptation protocol (about 1 µs per row)."""
    buf = bytearray()
    _enc.encode_into(record, buf)
    return buf


def list_open(ol: OrderList) -> int:
    return 0 if ol.ListOrderStatus in ("6", "7") else 1


class JournalFile:
    """The segment files: append, replay, and removal of segments already projected."""

    def __init__(self, directory: str | Path, sync: str = "normal", segment_bytes: int = SEGMENT_BYTES) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}, got {sync!r}")
        self.directory = Path(directory)
        self.sync = sync
        self.segment_bytes = segment_bytes
        self.last = 0  # position of the last record written
        self.recovered_bytes = 0  # bytes of a torn last record cut off at open
        self._fd = -1
        self._size = 0
        self._segments: list[tuple[int, Path]] = []  # (first position, path) as opened, oldest first

    # opening ----------------------------------------------------------------------
    def open(self) -> None:
        """Scan the segments (checking every record), cut a torn tail, open the last for appends."""
        self.directory.mkdir(parents=True, exist_ok=True)
        found = sorted((int(p.stem), p) for p in self.directory.glob("*.journal") if p.stem.isdigit())
        self._segments = found
        last = 0
        for i, (first, path) in enumerate(found):
            if last and first != last + 1:
                raise StoreError(f"{path}: journal segment starts at {first}, expected {last + 1}")
            _, last_pos = self._scan(path, first, tail=(i == len(found) - 1))
            last = last_pos if last_pos else (first - 1)
        self.last = last
        if not found:
            self._new_segment(1)
        else:
            path = found[-1][1]
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            self._size = os.fstat(self._fd).st_size

    def _scan(self, path: Path, first: int, tail: bool) -> tuple[int, int]:
        """Check every record of a segment: (end offset, last position)."""
        data = path.read_bytes()
        if not data.startswith(_MAGIC):
            if tail and len(data) < len(_MAGIC) and _MAGIC.startswith(data):
                self._truncate(path, 0, len(data))  # created, then the crash: write the magic again
                with open(path, "ab") as f:
                    f.write(_MAGIC)
                return len(_MAGIC), 0
            raise StoreError(f"{path}: not a fastfix journal segment (bad magic)")
        pos = len(_MAGIC)
        size = len(data)
        last = 0
        hsize = _HEAD.size
        while pos < size:
            torn = None
            if size - pos < hsize:
                torn = "record header cut short"
            else:
                length, crc, lsn = _HEAD.unpack_from(data, pos)
                if length > MAX_RECORD:
                    raise StoreError(f"{path}: damaged record at offset {pos} (length {length})")
                end = pos + hsize + length
                if end > size:
                    torn = "record cut short"
                elif zlib.crc32(data[pos + hsize:end], zlib.crc32(data[pos + 8:pos + 16])) != crc:
                    if end == size and tail:
                        torn = "last record fails its CRC"
                    else:
                        raise StoreError(f"{path}: damaged record at offset {pos} (CRC mismatch); the journal "
                                         "is left as it is: restore it or move it aside")
                else:
                    expect = (last + 1) if last else first
                    if lsn != expect:
                        raise StoreError(f"{path}: record at offset {pos} has position {lsn}, expected {expect}")
                    last = lsn
                    pos = end
                    continue
            if not tail:
                raise StoreError(f"{path}: damaged record at offset {pos} ({torn}) in a segment that is not the last")
            self._truncate(path, pos, size)
            break
        return pos, last

    def _truncate(self, path: Path, pos: int, size: int) -> None:
        self.recovered_bytes = size - pos
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, pos)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _new_segment(self, first: int) -> None:
        path = self.directory / f"{first:020d}.journal"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        os.write(fd, _MAGIC)
        if self.sync == "full":
            os.fsync(fd)
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._size = len(_MAGIC)
        self._segments.append((first, path))

    # reading ----------------------------------------------------------------------
    def records_after(self, position: int) -> Iterator[tuple[int, Rows]]:
        """Every record after ``position``, in order (recovery)."""
        segments = list(self._segments)
        for i, (_, path) in enumerate(segments):
            nxt = segments[i + 1][0] if i + 1 < len(segments) else None
            if nxt is not None and nxt <= position + 1:
                continue  # wholly applied already
            data = path.read_bytes()
            pos = len(_MAGIC)
            while pos + _HEAD.size <= len(data):
                length, _, lsn = _HEAD.unpack_from(data, pos)
                start = pos + _HEAD.size
                pos = start + length
                if lsn > position:
                    yield lsn, tuple(_dec.decode(data[start:pos]))

    # writing ----------------------------------------------------------------------
    def append(self, payload: bytes) -> int:
        """Write one record; returns its position. One system call (two with ``full``)."""
        lsn = self.last + 1
        pos_bytes = _U64.pack(lsn)
        rec = _HEAD.pack(len(payload), zlib.crc32(payload, zlib.crc32(pos_bytes)), lsn) + payload
        if self._size + len(rec) > self.segment_bytes and self._size > len(_MAGIC):
            self._new_segment(lsn)
        n = os.write(self._fd, rec)
        if n != len(rec):  # a full disk: never leave a partial record behind a good one
            raise StoreError(f"{self.directory}: short journal write ({n} of {len(rec)} bytes)")
        if self.sync == "full":
            os.fdatasync(self._fd)
        self._size += n
        self.last = lsn
        return lsn

    def segments(self) -> list[Path]:
        """The segment files on disk now, oldest first (the projector removes applied ones)."""
        return [p for _, p in sorted((int(p.stem), p) for p in self.directory.glob("*.journal")
                                     if p.stem.isdigit())]

    def close(self) -> None:
        if self._fd >= 0:
            if self.sync == "full":
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


class JournalReader:
    """Follows the journal from another process (the projector): complete records in order.

    Reads what the writer has appended so far, segment after segment; a record not yet
    complete (being written) is read at a later :meth:`poll`. Never changes the files.
    """

    def __init__(self, directory: str | Path, after: int) -> None:
        self.directory = Path(directory)
        self.last = after  # position of the last record returned
        self._path: Path | None = None
        self._offset = 0
        self._buf = b""

    def _segments(self) -> list[tuple[int, Path]]:
        return sorted((int(p.stem), p) for p in self.directory.glob("*.journal") if p.stem.isdigit())

    def _seek(self) -> bool:
        """Open the segment holding record ``last + 1`` (scanning from its start)."""
        want = self.last + 1
        segments = self._segments()
        holding = [(first, path) for first, path in segments if first <= want]
        if not holding:
            return False
        self._path = holding[-1][1]
        self._offset = len(_MAGIC)
        self._buf = b""
        return True

    def flush(self) -> None:
        """Wait for the disk to hold the segment the last records came from (``fdatasync``).

        With ``sync = "full"`` the projector calls this before it applies them: the writer
        may still be waiting for its own flush, and a projection made durable first would
        hold records a power cut takes from the journal (the gateway would refuse to start).
        """
        if self._path is None:
            return
        fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def poll(self, limit: int) -> list[tuple[int, Rows]]:
        """Up to ``limit`` records after the last one returned (none: nothing new yet)."""
        if self._path is None and not self._seek():
            return []
        assert self._path is not None
        out: list[tuple[int, Rows]] = []
        try:
            with open(self._path, "rb") as f:
                f.seek(self._offset + len(self._buf))
                self._buf += f.read(4 << 20)
        except FileNotFoundError:  # removed once projected: find the next one
            self._path = None
            return out
        buf = self._buf
        pos = 0
        hsize = _HEAD.size
        while len(out) < limit and len(buf) - pos >= hsize:
            length, crc, lsn = _HEAD.unpack_from(buf, pos)
            end = pos + hsize + length
            if length == 0 or length > MAX_RECORD or end > len(buf):
                break  # being written (or past the end): read again later
            if zlib.crc32(buf[pos + hsize:end], zlib.crc32(buf[pos + 8:pos + 16])) != crc:
                break  # a write in progress; a damaged record stops the writer's own open
            if lsn <= self.last:
                pos = end
                continue
            if lsn != self.last + 1:
                raise StoreError(f"{self._path}: record {lsn} follows {self.last}")
            out.append((lsn, tuple(_dec.decode(buf[pos + hsize:end]))))
            self.last = lsn
            pos = end
        self._offset += pos
        self._buf = buf[pos:]
        if not out and not self._buf:
            # Nothing more here: the writer may have moved to the next segment.
            nxt = [p for first, p in self._segments() if first == self.last + 1]
            if nxt:
                self._path, self._offset, self._buf = nxt[0], len(_MAGIC), b""
        return out


class Journal:
    """Rows staged by one loop callback, then committed as one journal record.

    ``put_*`` stage; :meth:`commit` writes them (when anything is staged), returning
    the record's position, and hands them to ``on_commit`` when one is given (the
    projector reads the files instead; a benchmark applies the rows itself).
    ``number`` gives an order its number in the projection when it is first staged.
    """

    def __init__(self, file: JournalFile, number: Callable[[Order], None],
                 on_commit: Callable[[int, Rows], None] | None = None) -> None:
        self.file = file
        self._number = number
        self._on_commit = on_commit
        self._orders: dict[tuple[str, str], Order] = {}  # latest state wins within a record
        self._lists: dict[tuple[str, str], OrderList] = {}
        self._execs: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []
        self._aliases: list[tuple[Any, ...]] = []
        self._resume: dict[str, str] = {}
        self._dirty = False
        self.commits = 0

    @property
    def staged(self) -> bool:
        """Whether anything waits for :meth:`commit`."""
        return self._dirty

    @property
    def position(self) -> int:
        """Position of the last record written."""
        return self.file.last

    def put_order(self, order: Order) -> None:
        if not order.num:
            self._number(order)
        self._orders[(order.client_id, order.ClOrdID)] = order
        self._dirty = True

    def put_execution(self, order: Order, execution: Execution) -> None:
        key = execution.ExecID or f"~{execution.received_ns}"
        self._execs.append((order.num, key, order.client_id, execution.received_ns, _blob(execution)))
        self._dirty = True

    def put_list(self, order_list: OrderList) -> None:
        self._lists[(order_list.client_id, order_list.ListID)] = order_list
        self._dirty = True

    def put_event(self, client_id: str, seq: int, data: bytes, now_ns: int) -> None:
        self._events.append((client_id, seq, now_ns, data))
        self._dirty = True

    def put_alias(self, client_id: str, alias: str, target: str, kind: str) -> None:
        self._aliases.append((client_id, alias, target, kind))
        self._dirty = True

    def put_resume_point(self, session: str, mark: str) -> None:
        self._resume[session] = mark
        self._dirty = True

    def discard(self) -> None:
        """Forget what is staged (a request refused after staging)."""
        self._orders.clear()
        self._lists.clear()
        self._execs = []
        self._events = []
        self._aliases = []
        self._resume.clear()
        self._dirty = False

    def commit(self) -> int:
        """Write what is staged as one record; returns its position (the last one if nothing
        was staged). Raises :class:`StoreError` (or OSError) when the disk refuses it: the
        staged rows are then dropped and the caller answers with an error."""
        if not self._dirty:
            return self.file.last
        rows: Rows = (
            [(o.num, o.client_id, o.ClOrdID, o.OrdStatus, o.Symbol, o.broker, o.created_ns, o.updated_ns,
              _blob(o)) for o in self._orders.values()],
            [(ol.client_id, ol.ListID, list_open(ol), _blob(ol)) for ol in self._lists.values()],
            self._execs,
            self._events,
            self._aliases,
            list(self._resume.items()),
        )
        self.discard()
        lsn = self.file.append(_enc.encode(rows))
        self.commits += 1
        if self._on_commit is not None:
            self._on_commit(lsn, rows)
        return lsn
