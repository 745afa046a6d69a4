"""SQLite (WAL) implementation of :class:`GatewayStore` with group commit.

Writes are queued in memory by the event loop; the first write of a batch
schedules a flush for the end of the current loop tick. A flush hands the batch
to one writer thread, which runs it in a single transaction; while it commits,
new writes gather into the next batch. So many concurrent requests share one
commit, and the loop never blocks on disk: SQLite releases the GIL while it
writes. Readers use their own connection on the loop thread; WAL lets them read
committed data while the writer works.

Durability: ``sync="normal"`` (WAL + synchronous=NORMAL) survives a crash or
kill of the process; ``sync="full"`` also survives power loss (fsync per commit).
With ``normal`` a commit does not wait for the disk, so batches are committed
on the loop itself (``inline``, the default for ``normal``), which saves two
thread hand-offs per batch; with ``full`` the writer thread takes the fsyncs.

A busy store waits a little for company: when the last batch held several rows
(requests are arriving together), a flush that comes due waits a few more loop
iterations, each adding what arrived meanwhile, so a loaded gateway commits
fewer, larger transactions. A quiet one commits each write at once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec

from fastfix.errors import StoreError
from server.gateway.orders import TERMINAL, Execution, Order
from server.gateway.store.base import EventRow, GatewayStore, OrderFilter, OrderList

__all__ = ["SQLiteStore"]

log = logging.getLogger("fastfix.gateway.store")

CHECKPOINT_INTERVAL = 1.0  # seconds between WAL checkpoints (run by a thread of their own)
# Group commit under load: a flush waits up to GROUP_WAIT_ITERATIONS more loop iterations
# when the previous batch had at least GROUP_BUSY_ROWS rows. A commit costs about as much
# as ten rows (locks, WAL frame writes), so larger batches free the loop under load; each
# extra iteration only polls for what is ready, so the wait is microseconds, and a quiet
# gateway's batches (an order, a report: 1-3 rows each) never wait.
GROUP_WAIT_ITERATIONS = 8
GROUP_BUSY_ROWS = 8

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# Orders are keyed by their number (Order.num, given in intake order), not by ClOrdID:
# client ClOrdIDs are often random (UUIDs), and a b-tree keyed by them takes each new
# order on a random page, so every order rewrote a page of its own into the WAL (11 KB of
# WAL per order at 10^5 orders); numbered rows are appended. The store finds an order's
# number from its (client, ClOrdID) in memory (see _nums).
# No index on orders.status: open_orders() (NOT IN the terminal states, read once at start)
# scans anyway, and the index cost an entry move on every status change of every order.
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

_UPSERT_ORDER = (
    "INSERT INTO orders (num, client_id, cl_ord_id, status, symbol, broker, created_ns, updated_ns, data)"
    " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (num) DO UPDATE SET"
    " status=excluded.status, updated_ns=excluded.updated_ns, data=excluded.data"
)
_INSERT_EXEC = "INSERT OR IGNORE INTO executions (num, exec_id, client_id, ns, data) VALUES (?,?,?,?,?)"
_UPSERT_LIST = (
    "INSERT INTO order_lists (client_id, list_id, open, data) VALUES (?,?,?,?)"
    " ON CONFLICT (client_id, list_id) DO UPDATE SET open=excluded.open, data=excluded.data"
)
_INSERT_EVENT = "INSERT INTO events (client_id, seq, ns, data) VALUES (?,?,?,?)"
_UPSERT_META = "INSERT INTO meta (key, value) VALUES (?,?) ON CONFLICT (key) DO UPDATE SET value=excluded.value"
_RESUME_PREFIX = "fix_in:"  # meta key of a link session's resume point
_INSERT_ALIAS = "INSERT OR IGNORE INTO aliases (client_id, alias, target, kind) VALUES (?,?,?,?)"

# Format of the tables and records (meta key "format"): 3 = orders keyed by number,
# records as MessagePack arrays (see Order). A database without the key but with orders
# was written in another format: refused at start rather than misread.
_FORMAT = "3"
_DATA_TABLES = ("orders", "order_lists", "executions", "events", "aliases")

_order_enc = msgspec.msgpack.Encoder()
_order_dec = msgspec.msgpack.Decoder(Order)
_exec_dec = msgspec.msgpack.Decoder(Execution)
_list_dec = msgspec.msgpack.Decoder(OrderList)


def _blob(record: Any) -> bytearray:
    """A record as MessagePack, in a bytearray: sqlite3 binds a bytearray as it is, while a
    bytes parameter first goes through its adaptation protocol, which cost more than the
    encoding (about 1 µs per row)."""
    buf = bytearray()
    _order_enc.encode_into(record, buf)
    return buf


class _SharedFuture(asyncio.Future):  # type: ignore[type-arg]
    """A batch's completion, awaited by every request of the batch. Awaited directly (no
    per-waiter ``asyncio.shield``, which costs a future and two callbacks per request), so
    it refuses cancellation: a cancelled request is cancelled when the commit is done,
    and the others keep waiting for it."""

    def cancel(self, msg: Any = None) -> bool:
        return False


class _Batch:
    __slots__ = ("orders", "lists", "resume", "ops", "after", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.orders: dict[tuple[str, str], Order] = {}  # latest state wins within a batch
        self.lists: dict[tuple[str, str], OrderList] = {}
        self.resume: dict[str, str] = {}
        self.ops: list[tuple[str, tuple[Any, ...]]] = []
        self.after: dict[Callable[[list[Any]], None], list[Any]] = {}  # see after_commit()
        self.future: asyncio.Future[None] = _SharedFuture(loop=loop)


def _run_batch(conn: sqlite3.Connection, groups: list[tuple[str, list[tuple[Any, ...]]]]
               ) -> BaseException | None:
    """One transaction; the error (if any) is handed to every waiter of the batch."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        for sql, rows in groups:
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        return exc
    return None


class SQLiteStore(GatewayStore):
    """Gateway state in one SQLite file (WAL mode)."""

    def __init__(self, path: str | Path, sync: str = "normal", inline: bool | None = None) -> None:
        self.path = Path(path)
        self.sync = sync
        self.inline = (sync != "full") if inline is None else inline
        self._wconn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rconn: sqlite3.Connection | None = None
        self._batch: _Batch | None = None
        self._inflight: _Batch | None = None
        self._flush_scheduled = False
        self._waited = 0  # loop iterations the pending flush has waited (see GROUP_WAIT_ITERATIONS)
        self._last_rows = 0  # rows of the last batch dispatched
        self._done: asyncio.Future[None] | None = None  # resolved: commit() with nothing pending
        self._ckpt_thread: threading.Thread | None = None
        self._ckpt_stop = threading.Event()
        self._queue: queue.SimpleQueue[tuple[list[tuple[str, list[tuple[Any, ...]]]], _Batch] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self.commits = 0  # number of transactions (for metrics and tests)
        # (client_id, ClOrdID) -> order number, for every stored order: hash(key) -> number,
        # and the exact key for the rare key whose hash another key took first. A lookup
        # through the hash is confirmed against the row it finds (see _find).
        self._nums: dict[int, int] = {}
        self._clash: dict[tuple[str, str], int] = {}
        self._next_num = 1

    # lifecycle ------------------------------------------------------------------------
    def _connect(self, writer: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=" + ("FULL" if self.sync == "full" else "NORMAL"))
        conn.execute("PRAGMA busy_timeout=30000")
        if writer:
            # No checkpoint inside a commit: copying the WAL back (and its fsync) took
            # milliseconds on the event loop every 1000 pages; _checkpointer does it aside.
            conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def _checkpointer(self) -> None:
        """Copy the WAL into the database about once a second, off the event loop (PASSIVE:
        never blocks the writer; the WAL is rewound by the next commit once it is all copied)."""
        try:
            conn = self._connect()
        except sqlite3.Error:
            log.exception("checkpoint connection failed; the WAL grows until restart")
            return
        try:
            while not self._ckpt_stop.wait(CHECKPOINT_INTERVAL):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.exception("WAL checkpoint failed")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        finally:
            conn.close()

    def start(self) -> None:
        self._loop = asyncio.get_event_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_format()
        conn = self._connect()
        self._stamp_format(conn)
        conn.executescript(_SCHEMA)
        self._load_numbers(conn)
        self._rconn = conn
        self._ckpt_stop.clear()
        self._ckpt_thread = threading.Thread(target=self._checkpointer, name="gateway-store-checkpoint",
                                             daemon=True)
        self._ckpt_thread.start()
        if self.inline:
            self._wconn = self._connect(writer=True)
            return
        self._thread = threading.Thread(target=self._writer, name="gateway-store", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._open_error is not None:
            raise self._open_error

    def _check_format(self) -> None:
        """Refuse a database whose tables and records are in another format, before anything
        writes to it (the file is left as it was)."""
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
        """A database with nothing stored: empty tables of another layout go (_SCHEMA makes
        them again), and the format is recorded."""
        conn.execute(_META)
        if conn.execute("SELECT 1 FROM meta WHERE key = 'format'").fetchone() is None:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for t in _DATA_TABLES:
                if t in tables:
                    conn.execute(f"DROP TABLE {t}")
            conn.execute(_UPSERT_META, ("format", _FORMAT))

    def _load_numbers(self, conn: sqlite3.Connection) -> None:
        self._nums.clear()
        self._clash.clear()
        top = 0
        for client_id, cl_ord_id, num in conn.execute("SELECT client_id, cl_ord_id, num FROM orders"):
            self._note(client_id, cl_ord_id, num)
            top = max(top, num)
        self._next_num = top + 1

    def _note(self, client_id: str, cl_ord_id: str, num: int) -> None:
        h = hash((client_id, cl_ord_id))
        if h in self._nums:
            self._clash[(client_id, cl_ord_id)] = num
        else:
            self._nums[h] = num

    def _number(self, client_id: str, cl_ord_id: str) -> int | None:
        """The number of a stored (or queued) order, or of another order whose key has the
        same hash (callers confirm with the row); None: never stored."""
        if self._clash:
            num = self._clash.get((client_id, cl_ord_id))
            if num is not None:
                return num
        return self._nums.get(hash((client_id, cl_ord_id)))

    def _stored_number(self, client_id: str, cl_ord_id: str) -> int | None:
        """The number of this very order if it is stored or queued (a hash match is confirmed)."""
        num = self._number(client_id, cl_ord_id)
        if num is None:
            return None  # the usual case of a new order: nothing read
        key = (client_id, cl_ord_id)
        if key in self._clash:
            return num
        for b in (self._batch, self._inflight):
            if b is not None and key in b.orders:
                return b.orders[key].num
        found = self._find(client_id, cl_ord_id)
        return found[0] if found else None

    def _find(self, client_id: str, cl_ord_id: str) -> tuple[int, bytes] | None:
        """(number, record) of a committed order."""
        num = self._number(client_id, cl_ord_id)
        if num is None:
            return None
        row = self._r.execute("SELECT cl_ord_id, data FROM orders WHERE num=? AND client_id=?",
                              (num, client_id)).fetchone()
        if row is None or row[0] != cl_ord_id:  # not committed, or the hash of another order
            return None
        return num, row[1]

    async def close(self) -> None:
        if self._batch is not None:
            await self.commit()
        if self._inflight is not None:
            await asyncio.shield(self._inflight.future)
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 30)
            self._thread = None
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None
        if self._ckpt_thread is not None:
            self._ckpt_stop.set()
            await asyncio.get_running_loop().run_in_executor(None, self._ckpt_thread.join, 30)
            self._ckpt_thread = None
        if self._rconn is not None:
            self._rconn.close()
            self._rconn = None

    # writer thread --------------------------------------------------------------------
    def _writer(self) -> None:
        try:
            conn = self._connect(writer=True)
        except BaseException as exc:  # reported to start()
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        loop = self._loop
        assert loop is not None
        while True:
            item = self._queue.get()
            if item is None:
                break
            groups, batch = item
            loop.call_soon_threadsafe(self._batch_done, batch, _run_batch(conn, groups))
        conn.close()

    def _batch_done(self, batch: _Batch, err: BaseException | None) -> None:
        self.commits += 1
        self._inflight = None
        if err is None:
            for fn, items in batch.after.items():
                try:
                    fn(items)
                except Exception:  # a failing callback must not keep the waiters hanging
                    log.exception("after-commit callback failed")
            batch.future.set_result(None)
        else:
            batch.future.set_exception(err)
        if self._batch is not None:
            self._dispatch()

    # group commit ---------------------------------------------------------------------
    def _current(self) -> _Batch:
        b = self._batch
        if b is None:
            assert self._loop is not None, "store not started"
            b = self._batch = _Batch(self._loop)
            if self._inflight is None and not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush_soon)
        return b

    def _flush_soon(self) -> None:
        if self._last_rows >= GROUP_BUSY_ROWS and self._waited < GROUP_WAIT_ITERATIONS and self._batch is not None:
            self._waited += 1
            assert self._loop is not None
            self._loop.call_soon(self._flush_soon)
            return
        self._waited = 0
        self._flush_scheduled = False
        if self._inflight is None and self._batch is not None:
            self._dispatch()

    def _dispatch(self) -> None:
        batch = self._batch
        assert batch is not None
        self._batch = None
        self._inflight = batch
        order_rows = [
            (o.num, o.client_id, o.ClOrdID, o.OrdStatus, o.Symbol, o.broker, o.created_ns, o.updated_ns,
             _blob(o))
            for o in batch.orders.values()
        ]
        list_rows = [
            (ol.client_id, ol.ListID, 0 if ol.ListOrderStatus in ("6", "7") else 1, _blob(ol))
            for ol in batch.lists.values()
        ]
        groups: list[tuple[str, list[tuple[Any, ...]]]] = []
        if order_rows:
            groups.append((_UPSERT_ORDER, order_rows))
        if list_rows:
            groups.append((_UPSERT_LIST, list_rows))
        if batch.resume:
            groups.append((_UPSERT_META, [(_RESUME_PREFIX + k, v) for k, v in batch.resume.items()]))
        # One executemany per statement, rows in arrival order: the tables of these inserts
        # (executions, events, aliases) do not depend on each other, and a report adds to two
        # of them, so grouping only consecutive rows meant two calls per report.
        by_sql: dict[str, list[tuple[Any, ...]]] = {}
        for sql, params in batch.ops:
            rows = by_sql.get(sql)
            if rows is None:
                by_sql[sql] = [params]
            else:
                rows.append(params)
        groups.extend(by_sql.items())
        self._last_rows = len(order_rows) + len(list_rows) + len(batch.ops)
        if self._wconn is not None:
            self._batch_done(batch, _run_batch(self._wconn, groups))
        else:
            self._queue.put((groups, batch))

    def commit(self) -> Awaitable[None]:  # type: ignore[override]
        """An awaitable for the batch being built (or the one committing): await it."""
        b = self._batch or self._inflight
        if b is not None:
            return b.future
        done = self._done
        if done is None:
            assert self._loop is not None, "store not started"
            done = self._done = self._loop.create_future()
            done.set_result(None)
        return done

    def after_commit(self, fn: Callable[[list[Any]], None], item: Any) -> None:
        """Call ``fn(items)`` right after the batch being built commits, before :meth:`commit`
        waiters wake; ``items`` are all the items given with the same ``fn`` for that batch
        (not called if the commit fails)."""
        after = self._current().after
        items = after.get(fn)
        if items is None:
            after[fn] = [item]
        else:
            items.append(item)

    # writes ---------------------------------------------------------------------------
    def put_order(self, order: Order) -> None:
        key = (order.client_id, order.ClOrdID)
        if not order.num:  # not read from the store: numbered, in intake order, unless stored already
            h = hash(key)
            if h not in self._nums:  # the usual new order: no number under its hash yet (see _note)
                num = self._nums[h] = self._next_num
                self._next_num = num + 1
            else:
                num = self._stored_number(*key)
                if num is None:
                    num = self._next_num
                    self._next_num = num + 1
                    self._note(*key, num)
            order.num = num
        self._current().orders[key] = order

    def put_execution(self, order: Order, execution: Execution) -> None:
        key = execution.ExecID or f"~{execution.received_ns}"
        self._current().ops.append(
            (_INSERT_EXEC, (order.num, key, order.client_id, execution.received_ns, _blob(execution)))
        )

    def put_list(self, order_list: OrderList) -> None:
        self._current().lists[(order_list.client_id, order_list.ListID)] = order_list

    def put_event(self, client_id: str, seq: int, data: bytes, now_ns: int) -> None:
        self._current().ops.append((_INSERT_EVENT, (client_id, seq, now_ns, bytearray(data))))  # see _blob

    def put_alias(self, client_id: str, alias: str, target: str, kind: str) -> None:
        self._current().ops.append((_INSERT_ALIAS, (client_id, alias, target, kind)))

    def put_resume_point(self, session: str, mark: str) -> None:
        self._current().resume[session] = mark

    # reads ----------------------------------------------------------------------------
    @property
    def _r(self) -> sqlite3.Connection:
        assert self._rconn is not None, "store not started"
        return self._rconn

    def get_order(self, client_id: str, cl_ord_id: str) -> Order | None:
        found = self._find(client_id, cl_ord_id)  # a ClOrdID never stored costs no database read
        return _order_dec.decode(found[1]) if found else None

    def list_orders(self, client_id: str, flt: OrderFilter) -> list[Order]:
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
        return [_order_dec.decode(r[0]) for r in self._r.execute(" ".join(sql), args)]

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

    def events_since(self, client_id: str, seq: int, limit: int) -> list[EventRow]:
        rows = self._r.execute(
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
