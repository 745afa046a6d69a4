"""The query projection of cluster mode: PostgreSQL behind the JetStream journal.

Any number of instances may run it against one database. Each reads the stream in
order (an ordered consumer, from the position the database has recorded) and applies
what it read in batches: one transaction per batch, ``executemany`` per table, and the
stream position of the batch's last message written in the same transaction. The
position row is locked (``FOR UPDATE``) first, so concurrent projectors queue up and
each applies only messages past the position it finds: every message is applied once.
Nothing on the order path waits for this.

A lost connection (PostgreSQL restarted, the backend terminated) rolls the batch
back; the projector reconnects and goes on from the recorded position.

Records that carry rows (see :func:`rows_of`) hold them in the local journal's layout
(``server.gateway.journal.Rows``): orders, lists, executions, events, aliases, FIX
resume points.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import msgspec

from server.gateway.journal import ALIASES, EVENTS, EXECUTIONS, LISTS, ORDERS, RESUME, Rows

__all__ = ["PgProjection", "SCHEMA", "rows_of"]

log = logging.getLogger("fastfix.gateway.cluster.projection")

_dec = msgspec.msgpack.Decoder()
BATCH = 1000  # stream messages per transaction at most
RETRY_DELAY = 0.2  # seconds before reconnecting after a failure

SCHEMA = """
CREATE TABLE IF NOT EXISTS ff_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO ff_meta (key, value) VALUES ('stream_position', 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS ff_orders (
    client_id TEXT NOT NULL, cl_ord_id TEXT NOT NULL, num BIGINT NOT NULL, status TEXT NOT NULL,
    symbol TEXT NOT NULL, broker TEXT NOT NULL, created_ns BIGINT NOT NULL, updated_ns BIGINT NOT NULL,
    data BYTEA NOT NULL, PRIMARY KEY (client_id, cl_ord_id));
CREATE INDEX IF NOT EXISTS ff_orders_by_time ON ff_orders (client_id, created_ns, num);
CREATE TABLE IF NOT EXISTS ff_executions (
    client_id TEXT NOT NULL, num BIGINT NOT NULL, exec_id TEXT NOT NULL, ns BIGINT NOT NULL,
    data BYTEA NOT NULL, PRIMARY KEY (client_id, num, exec_id));
CREATE TABLE IF NOT EXISTS ff_order_lists (
    client_id TEXT NOT NULL, list_id TEXT NOT NULL, open SMALLINT NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (client_id, list_id));
CREATE TABLE IF NOT EXISTS ff_events (
    client_id TEXT NOT NULL, seq BIGINT NOT NULL, ns BIGINT NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (client_id, seq));
CREATE TABLE IF NOT EXISTS ff_aliases (
    client_id TEXT NOT NULL, alias TEXT NOT NULL, target TEXT NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (client_id, alias));
CREATE TABLE IF NOT EXISTS ff_resume (session TEXT PRIMARY KEY, mark TEXT NOT NULL);
"""

# Per table of a Rows record: the statement and how a journal row becomes its parameters.
_STATEMENTS: dict[int, str] = {
    ORDERS: "INSERT INTO ff_orders (num, client_id, cl_ord_id, status, symbol, broker, created_ns,"
            " updated_ns, data) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (client_id, cl_ord_id)"
            " DO UPDATE SET status=excluded.status, updated_ns=excluded.updated_ns, data=excluded.data",
    LISTS: "INSERT INTO ff_order_lists (client_id, list_id, open, data) VALUES ($1,$2,$3,$4)"
           " ON CONFLICT (client_id, list_id) DO UPDATE SET open=excluded.open, data=excluded.data",
    EXECUTIONS: "INSERT INTO ff_executions (num, exec_id, client_id, ns, data) VALUES ($1,$2,$3,$4,$5)"
                " ON CONFLICT DO NOTHING",
    EVENTS: "INSERT INTO ff_events (client_id, seq, ns, data) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
    ALIASES: "INSERT INTO ff_aliases (client_id, alias, target, kind) VALUES ($1,$2,$3,$4)"
             " ON CONFLICT DO NOTHING",
    RESUME: "INSERT INTO ff_resume (session, mark) VALUES ($1,$2)"
            " ON CONFLICT (session) DO UPDATE SET mark=excluded.mark",
}
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionError, asyncio.TimeoutError)


def rows_of(record: Sequence[Any]) -> Rows | None:
    """The rows a journal record carries: ``("R", rows)`` (state changes of the owner) and
    ``("I", seq, raw, rows)`` (a report in, with what it changed); None for the others."""
    if record and record[0] in ("R", "I"):
        return tuple(record[-1])
    return None


class PgProjection:
    """Applies the journal stream to PostgreSQL in batches; reads for GET and old cursors."""

    def __init__(self, dsn: str, js: Any, stream: str, prefix: str, batch: int = BATCH) -> None:
        self.dsn = dsn
        self.js = js
        self.stream = stream
        self.prefix = prefix
        self.batch = batch
        self.position = 0  # stream position applied (as last seen in the database)
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._advanced = asyncio.Event()

    async def start(self) -> None:
        """Create the tables when missing and start applying in the background."""
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(7270101)")  # one schema creator at a time
                await conn.execute(SCHEMA)
            self.position = await conn.fetchval("SELECT value FROM ff_meta WHERE key='stream_position'")
        finally:
            await conn.close()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def wait_for(self, position: int, timeout: float) -> None:
        """Until the database holds everything up to stream ``position``."""
        async with asyncio.timeout(timeout):
            while self.position < position:
                self._advanced.clear()
                await self._advanced.wait()

    # -------------------------------------------------------------------------------- applying
    async def _run(self) -> None:
        import asyncpg
        from nats.js import api

        while True:
            conn = sub = None
            try:
                conn = await asyncpg.connect(self.dsn)
                start = await conn.fetchval("SELECT value FROM ff_meta WHERE key='stream_position'")
                self._set_position(start)
                sub = await self.js.subscribe(
                    f"{self.prefix}.>", stream=self.stream, ordered_consumer=True, idle_heartbeat=1.0,
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                    config=api.ConsumerConfig(opt_start_seq=start + 1))
                while True:
                    msgs = [await sub.next_msg(timeout=None)]
                    while len(msgs) < self.batch and sub.pending_msgs:
                        msgs.append(await sub.next_msg(timeout=None))
                    await self._apply(conn, [(m.metadata.sequence.stream, m.data) for m in msgs])
            except asyncio.CancelledError:
                raise
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.PostgresError,
                    *_CONNECTION_ERRORS) as exc:
                self.reconnects += 1
                log.warning("projection: %s; reconnecting", exc)
            except Exception:
                self.reconnects += 1
                log.exception("projection failed; starting again from the recorded position")
            finally:
                if sub is not None:
                    try:
                        await sub.unsubscribe()
                    except Exception:  # noqa: BLE001 - the connection may be gone already
                        pass
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(RETRY_DELAY)

    def _set_position(self, position: int) -> None:
        if position > self.position:
            self.position = position
        self._advanced.set()

    async def _apply(self, conn: Any, msgs: list[tuple[int, bytes]]) -> None:
        """One transaction: the messages past the recorded position, then the new position."""
        async with conn.transaction():
            recorded = await conn.fetchval(
                "SELECT value FROM ff_meta WHERE key='stream_position' FOR UPDATE")
            tables: dict[int, list[tuple[Any, ...]]] = {t: [] for t in _STATEMENTS}
            last = recorded
            for seq, data in msgs:
                if seq <= recorded:
                    continue  # another projector applied it already
                last = seq
                rows = rows_of(_dec.decode(data))
                if rows is None:
                    continue
                for t in _STATEMENTS:
                    tables[t].extend(tuple(r) for r in rows[t])
            for t, sql in _STATEMENTS.items():
                if tables[t]:
                    await conn.executemany(sql, tables[t])
            if last > recorded:
                await conn.execute("UPDATE ff_meta SET value=$1 WHERE key='stream_position'", last)
        self._set_position(last)

    # -------------------------------------------------------------------------------- reads
    async def events_since(self, conn: Any, client_id: str, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """A client's events after ``seq`` (cursors older than memory), oldest first."""
        rows = await conn.fetch("SELECT seq, data FROM ff_events WHERE client_id=$1 AND seq>$2"
                                " ORDER BY seq LIMIT $3", client_id, seq, limit)
        return [(r["seq"], bytes(r["data"])) for r in rows]

    async def order_data(self, conn: Any, client_id: str, cl_ord_id: str) -> bytes | None:
        """An order's record (MessagePack of ``orders.Order``) as last projected."""
        data = await conn.fetchval("SELECT data FROM ff_orders WHERE client_id=$1 AND cl_ord_id=$2",
                                   client_id, cl_ord_id)
        return None if data is None else bytes(data)
