"""The query projection: orders, executions, lists and the event log in SQLite.

The journal (``journal.py``) is the durable point; this database is derived from
it, for queries (``GET /v1/orders``), for event cursors older than memory, and to
load open orders at start-up. A projector process (``projector.py``) follows the
journal's files and applies their records in batches (one transaction each, WAL),
recording the last journal position applied (``meta.journal_position``) in the
same transaction; it runs at idle priority, so it takes only CPU the event loop
leaves, and being a process it never holds the gateway's GIL. The gateway reads
with its own connection (WAL lets it see committed data while the projector
works) and learns how far the projector got from a small status file.

At start-up, :meth:`Projection.catch_up` applies the journal records past the
recorded position before anything else reads the database.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import mmap
import os
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from fastfix.errors import StoreError
from server.gateway.journal import (
    ALIASES,
    EVENTS,
    EXECUTIONS,
    LISTS,
    ORDERS,
    RESUME,
    JournalFile,
    Rows,
)
from server.gateway.orders import TERMINAL, Execution, Order, OrderList

__all__ = ["EventRow", "OrderFilter", "Projection", "StatusFile"]

log = logging.getLogger("fastfix.gateway.projection")

CHECKPOINT_INTERVAL = 1.0  # seconds between WAL checkpoints (by the projector)
BATCH_RECORDS = 1024  # journal records applied per transaction at most
RETRY_DELAY = 0.5  # seconds before a failed transaction is tried again
POLL_INTERVAL = 0.001  # seconds between the gateway's looks at the status while a read waits
STATUS_FILE = "projected"  # in the journal's directory: the last position applied (u64)
_U64 = struct.Struct("<Q")


class StatusFile:
    """The last journal position the projector applied, shared through a mapped file."""

    def __init__(self, path: Path, writable: bool = False) -> None:
        self.path = path
        if writable and not path.exists():
            path.write_bytes(bytes(_U64.size))
        fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        try:
            self._mm = mmap.mmap(fd, _U64.size, prot=mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0))
        finally:
            os.close(fd)

    def get(self) -> int:
        return _U64.unpack_from(self._mm, 0)[0]

    def set(self, position: int) -> None:
        _U64.pack_into(self._mm, 0, position)

    def close(self) -> None:
        self._mm.close()

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# Orders are keyed by their number (Order.num, given in intake order), not by ClOrdID:
# client ClOrdIDs are often random (UUIDs), and a b-tree keyed by them takes each new
# order on a random page (11 KB of WAL per order at 10^5 orders); numbered rows are
# appended. The projection finds an order's number from its (client, ClOrdID) in memory.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    num INTEGER PRIMARY KEY, client_id TEXT NOT NULL, cl_ord_id TEXT NOT NULL, status TEXT NOT NULL,
    symbol TEXT NOT NULL, broker TEXT NOT NULL, created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS orders_by_time ON orders (client_id, created_ns, num);
CREATE TABLE IF NOT EXISTS executions (
    num INTEGER NOT NULL, exec_id TEXT NOT NULL, client_id TEXT NOT NULL,
    ns INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (num, exec_id));
CREATE TABLE IF NOT EXISTS order_lists (
    client_id TEXT NOT NULL, list_id TEXT NOT NULL, open INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (client_id, list_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    client_id TEXT NOT NULL, seq INTEGER NOT NULL, ns INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (client_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases (
    client_id TEXT NOT NULL, alias TEXT NOT NULL, target TEXT NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (client_id, alias)) WITHOUT ROWID;
"""

# One statement per table, in the order of a journal record's row lists.
_STATEMENTS = {
    ORDERS: "INSERT INTO orders (num, client_id, cl_ord_id, status, symbol, broker, created_ns, updated_ns,"
            " data) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (num) DO UPDATE SET"
            " status=excluded.status, updated_ns=excluded.updated_ns, data=excluded.data",
    LISTS: "INSERT INTO order_lists (client_id, list_id, open, data) VALUES (?,?,?,?)"
           " ON CONFLICT (client_id, list_id) DO UPDATE SET open=excluded.open, data=excluded.data",
    EXECUTIONS: "INSERT OR IGNORE INTO executions (num, exec_id, client_id, ns, data) VALUES (?,?,?,?,?)",
    EVENTS: "INSERT OR IGNORE INTO events (client_id, seq, ns, data) VALUES (?,?,?,?)",
    ALIASES: "INSERT OR IGNORE INTO aliases (client_id, alias, target, kind) VALUES (?,?,?,?)",
}
_UPSERT_META = "INSERT INTO meta (key, value) VALUES (?,?) ON CONFLICT (key) DO UPDATE SET value=excluded.value"
_RESUME_PREFIX = "fix_in:"  # meta key of a link session's resume point
_POSITION_KEY = "journal_position"

# Format of the tables and records (meta key "format"): 3 = orders keyed by number,
# records as MessagePack arrays (see Order). A database without the key but with orders
# was written in another format: refused at start rather than misread.
_FORMAT = "3"
_DATA_TABLES = ("orders", "order_lists", "executions", "events", "aliases")

_order_dec = msgspec.msgpack.Decoder(Order)
_exec_dec = msgspec.msgpack.Decoder(Execution)
_list_dec = msgspec.msgpack.Decoder(OrderList)


class EventRow(msgspec.Struct, array_like=True):
    """One pushed message in a client's event log: sequence number and envelope JSON."""

    seq: int
    data: bytes


class OrderFilter(msgspec.Struct, kw_only=True):
    """GET /v1/orders query; ``after`` is the paging cursor (created_ns, Order.num of the last order seen)."""

    status: str | None = None  # OrdStatus code
    symbol: str | None = None
    broker: str | None = None
    since_ns: int | None = None
    after: tuple[int, int] | None = None
    limit: int = 100


def _apply(conn: sqlite3.Connection, records: list[tuple[int, Rows]]) -> None:
    """One transaction for ``records``, the last position recorded with them."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, sql in _STATEMENTS.items():
            rows = [row for _, rec in records for row in rec[table]]
            if rows:
                conn.executemany(sql, rows)
        resume = [(_RESUME_PREFIX + k, v) for _, rec in records for k, v in rec[RESUME]]
        resume.append((_POSITION_KEY, str(records[-1][0])))
        conn.executemany(_UPSERT_META, resume)
        conn.execute("COMMIT")
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise


class Projection:
    """The SQLite projection of the journal: catch-up, the projector process, the reads."""

    def __init__(self, path: str | Path, sync: str = "normal") -> None:
        self.path = Path(path)
        self.sync = sync
        self._applied = 0  # last journal position applied, as read at open (then: the status file)
        self._rconn: sqlite3.Connection | None = None
        self._status: StatusFile | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._journal: JournalFile | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._poller: asyncio.TimerHandle | None = None
        self.restarts = 0  # projector processes started again after they died
        self._local = threading.local()  # the reader thread's own connection (see in_thread)
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None
        # (client_id, ClOrdID) -> order number, for every stored order: hash(key) -> number,
        # and the exact key for the rare key whose hash another key took first. A lookup
        # through the hash is confirmed against the row it finds (see _find), or, for an
        # order journaled but not yet projected, against _recent.
        self._nums: dict[int, int] = {}
        self._clash: dict[tuple[str, str], int] = {}
        self._recent: dict[tuple[str, str], int] = {}
        self._recent_order: collections.deque[tuple[int, tuple[str, str]]] = collections.deque()
        self._next_num = 1
        self.position = lambda: 0  # the journal's last position (set by attach)

    # lifecycle ------------------------------------------------------------------------
    def _connect(self, writer: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=" + ("FULL" if self.sync == "full" else "NORMAL"))
        conn.execute("PRAGMA busy_timeout=30000")
        if writer:
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the writer checkpoints on its own clock
        return conn

    def open(self) -> None:
        """Open the database (creating it), check its format, load the order numbers."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_format()
        conn = self._connect()
        self._stamp_format(conn)
        conn.executescript(_SCHEMA)
        self._applied = self.recorded_position(conn)
        self._rconn = conn

    @staticmethod
    def recorded_position(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (_POSITION_KEY,)).fetchone()
        return int(row[0]) if row else 0

    @property
    def applied(self) -> int:
        """The last journal position the projection holds."""
        status = self._status
        return self._applied if status is None else max(self._applied, status.get())

    def catch_up(self, journal: JournalFile) -> int:
        """Apply the journal records past the recorded position (start-up, before any read);
        returns how many were applied."""
        conn = self._connect(writer=True)
        n = 0
        try:
            batch: list[tuple[int, Rows]] = []
            for lsn, rows in journal.records_after(self.applied):
                batch.append((lsn, rows))
                if len(batch) >= BATCH_RECORDS:
                    _apply(conn, batch)
                    n += len(batch)
                    batch = []
            if batch:
                _apply(conn, batch)
                n += len(batch)
            if n:
                self._applied = lsn
        finally:
            conn.close()
        if self.applied > journal.last:
            raise StoreError(f"{self.path}: the database has journal records up to {self.applied}, but the "
                             f"journal in {journal.directory} ends at {journal.last}: it was replaced or cut")
        self._load_numbers()
        return n

    def start(self, journal: JournalFile) -> None:
        """Start the projector process (on the event loop that will await :meth:`wait_applied`)."""
        self._loop = asyncio.get_running_loop()
        self._journal = journal
        self.position = lambda: journal.last
        status_path = journal.directory / STATUS_FILE
        StatusFile(status_path, writable=True).close()  # exists before the projector maps it
        self._status = StatusFile(status_path)
        self._spawn()

    def _spawn(self) -> None:
        assert self._journal is not None
        cmd = [sys.executable, "-m", "server.gateway.projector", "--database", str(self.path),
               "--journal", str(self._journal.directory), "--sync", self.sync, "--parent", str(os.getpid())]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)

    def check_projector(self) -> None:
        """Start the projector again if it died (housekeeping calls this)."""
        if self._proc is not None and self._proc.poll() is not None:
            log.error("the projector exited with %s; starting it again", self._proc.returncode)
            self.restarts += 1
            self._spawn()

    @property
    def projector_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def close(self) -> None:
        """Let the projector apply what is written, then stop it (the journal is closed first)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            from server._service import stop_process

            await asyncio.get_running_loop().run_in_executor(None, stop_process, proc)
        if self._poller is not None:
            self._poller.cancel()
        if self._reader is not None:
            self._reader.submit(self._close_reader)
            self._reader.shutdown(wait=False)
            self._reader = None
        if self._status is not None:
            self._applied = self.applied
            self._status.close()
            self._status = None
        if self._rconn is not None:
            self._rconn.close()
            self._rconn = None

    def _check_format(self) -> None:
        """Refuse a database in another format before anything writes to it."""
        if not self.path.exists():
            return
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() if "meta" in tables else None
            if row is None and not any(conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
                                       for t in _DATA_TABLES if t in tables):
                return  # nothing stored yet: _stamp_format adopts it
            found = "unknown" if row is None else row[0]
        finally:
            conn.close()
        if found != _FORMAT:
            raise StoreError(f"{self.path}: order records in format {found}, this gateway reads format "
                             f"{_FORMAT}; start it with a new database file")

    @staticmethod
    def _stamp_format(conn: sqlite3.Connection) -> None:
        conn.execute(_META)
        if conn.execute("SELECT 1 FROM meta WHERE key = 'format'").fetchone() is None:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for t in _DATA_TABLES:
                if t in tables:
                    conn.execute(f"DROP TABLE {t}")
            conn.execute(_UPSERT_META, ("format", _FORMAT))

    # waiting for the projector ---------------------------------------------------------
    def _poll(self) -> None:
        self._poller = None
        applied = self.applied
        keep = []
        for lsn, fut in self._waiters:
            if lsn <= applied:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((lsn, fut))
        self._waiters = keep
        if keep and self._loop is not None:
            self.check_projector()
            self._poller = self._loop.call_later(POLL_INTERVAL, self._poll)

    def wait_applied(self, lsn: int | None = None) -> asyncio.Future[None]:
        """A future done once the journal up to ``lsn`` (default: everything written so far)
        is in the database: reads that must see the latest writes await it."""
        assert self._loop is not None, "projection not started"
        fut = self._loop.create_future()
        target = self.position() if lsn is None else lsn
        if target <= self.applied:
            fut.set_result(None)
        else:
            self._waiters.append((target, fut))
            if self._poller is None:
                self._poller = self._loop.call_later(POLL_INTERVAL, self._poll)
        return fut

    @property
    def lag(self) -> int:
        """Journal records written but not yet in the database."""
        return self.position() - self.applied

    # order numbers --------------------------------------------------------------------
    def _load_numbers(self) -> None:
        self._nums.clear()
        self._clash.clear()
        top = 0
        for client_id, cl_ord_id, num in self._r.execute("SELECT client_id, cl_ord_id, num FROM orders"):
            self._note(client_id, cl_ord_id, num)
            top = max(top, num)
        self._next_num = top + 1

    def _note(self, client_id: str, cl_ord_id: str, num: int) -> None:
        h = hash((client_id, cl_ord_id))
        if h in self._nums:
            self._clash[(client_id, cl_ord_id)] = num
        else:
            self._nums[h] = num

    def number(self, order: Order) -> None:
        """Give ``order`` its number: a new one, unless the same order is stored already."""
        key = (order.client_id, order.ClOrdID)
        h = hash(key)
        if h not in self._nums:  # the usual new order: no number under its hash yet
            num = self._nums[h] = self._next_num
            self._next_num = num + 1
        else:
            num = self._stored_number(key)
            if num is None:
                num = self._next_num
                self._next_num = num + 1
                self._note(*key, num)
        order.num = num
        self._remember_recent(key, num)

    def _remember_recent(self, key: tuple[str, str], num: int) -> None:
        """Orders numbered since the last projected record: their rows may not be in the
        database yet, so a second object for one of them must find its number here."""
        recent = self._recent_order
        applied = self.applied
        while recent and recent[0][0] <= applied:
            self._recent.pop(recent.popleft()[1], None)
        pos = self.position() + 1  # the record that will hold the row
        self._recent[key] = num
        recent.append((pos, key))

    def _stored_number(self, key: tuple[str, str]) -> int | None:
        num = self._recent.get(key)
        if num is not None:
            return num
        num = self._clash.get(key)
        if num is not None:
            return num
        found = self._find(*key)
        return found[0] if found else None

    def _number_of(self, client_id: str, cl_ord_id: str) -> int | None:
        if self._clash:
            num = self._clash.get((client_id, cl_ord_id))
            if num is not None:
                return num
        return self._nums.get(hash((client_id, cl_ord_id)))

    def _find(self, client_id: str, cl_ord_id: str) -> tuple[int, bytes] | None:
        """(number, record) of a projected order."""
        num = self._number_of(client_id, cl_ord_id)
        if num is None:
            return None
        row = self._r.execute("SELECT cl_ord_id, data FROM orders WHERE num=? AND client_id=?",
                              (num, client_id)).fetchone()
        if row is None or row[0] != cl_ord_id:  # not projected, or the hash of another order
            return None
        return num, row[1]

    # reads ----------------------------------------------------------------------------
    @property
    def _r(self) -> sqlite3.Connection:
        assert self._rconn is not None, "projection not open"
        return self._rconn

    def get_order(self, client_id: str, cl_ord_id: str) -> Order | None:
        found = self._find(client_id, cl_ord_id)  # a ClOrdID never stored costs no database read
        return _order_dec.decode(found[1]) if found else None

    def list_orders(self, client_id: str, flt: OrderFilter, conn: sqlite3.Connection | None = None) -> list[Order]:
        """Orders of a client matching ``flt`` (on ``conn``: a reader thread's own connection)."""
        sql = ["SELECT data FROM orders WHERE client_id=?"]
        args: list[Any] = [client_id]
        if flt.status is not None:
            sql.append("AND status=?")
            args.append(flt.status)
        if flt.symbol is not None:
            sql.append("AND symbol=?")
            args.append(flt.symbol)
        if flt.broker is not None:
            sql.append("AND broker=?")
            args.append(flt.broker)
        if flt.since_ns is not None:
            sql.append("AND created_ns>=?")
            args.append(flt.since_ns)
        if flt.after is not None:
            sql.append("AND (created_ns, num) > (?, ?)")
            args.extend(flt.after)
        sql.append("ORDER BY created_ns, num LIMIT ?")
        args.append(flt.limit)
        return [_order_dec.decode(r[0]) for r in (conn or self._r).execute(" ".join(sql), args)]

    def executions(self, client_id: str, cl_ord_id: str) -> list[Execution]:
        found = self._find(client_id, cl_ord_id)
        if found is None:
            return []
        rows = self._r.execute("SELECT data FROM executions WHERE num=? ORDER BY ns, rowid", (found[0],))
        return [_exec_dec.decode(r[0]) for r in rows]

    def get_list(self, client_id: str, list_id: str) -> OrderList | None:
        row = self._r.execute(
            "SELECT data FROM order_lists WHERE client_id=? AND list_id=?", (client_id, list_id)
        ).fetchone()
        return _list_dec.decode(row[0]) if row else None

    async def in_thread(self, read: Any) -> Any:
        """``read(conn)`` in a reader thread with a connection of its own: large reads keep the
        event loop free (WAL lets them read while the projector writes)."""
        if self._reader is None:  # one thread: reads queue up rather than take more connections
            self._reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gateway-reader")
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._with_reader, read)

    def _close_reader(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    def _with_reader(self, read: Any) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        return read(conn)

    def events_since(self, client_id: str, seq: int, limit: int,
                     conn: sqlite3.Connection | None = None) -> list[EventRow]:
        rows = (conn or self._r).execute(
            "SELECT seq, data FROM events WHERE client_id=? AND seq>? ORDER BY seq LIMIT ?",
            (client_id, seq, limit),
        )
        return [EventRow(s, d) for s, d in rows]

    def resume_points(self) -> dict[str, str]:
        rows = self._r.execute("SELECT key, value FROM meta WHERE key LIKE ?", (_RESUME_PREFIX + "%",))
        return {k[len(_RESUME_PREFIX):]: v for k, v in rows}

    def last_seqs(self) -> dict[str, int]:
        rows = self._r.execute("SELECT client_id, MAX(seq) FROM events GROUP BY client_id")
        return {c: s for c, s in rows}

    def open_orders(self) -> Iterable[Order]:
        marks = ",".join("?" * len(TERMINAL))
        rows = self._r.execute(f"SELECT data FROM orders WHERE status NOT IN ({marks})", tuple(TERMINAL))
        return [_order_dec.decode(r[0]) for r in rows]

    def open_lists(self) -> Iterable[OrderList]:
        return [_list_dec.decode(r[0]) for r in self._r.execute("SELECT data FROM order_lists WHERE open=1")]

    def get_alias(self, client_id: str, alias: str) -> tuple[str, str] | None:
        row = self._r.execute(
            "SELECT target, kind FROM aliases WHERE client_id=? AND alias=?", (client_id, alias)
        ).fetchone()
        return (row[0], row[1]) if row else None

