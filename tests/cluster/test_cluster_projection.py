"""PostgreSQL behind the JetStream journal: batches with the stream position, exactly once,
two projectors on one database, and recovery when the projection's connections are killed."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from _nats_cluster import NatsCluster, PgDatabase
from helpers import run

from server.gateway.cluster.journal import SessionLog, connect, ensure_stream
from server.gateway.cluster.projection import PgProjection


def _rows(client: str, seq: int) -> list:
    """A journal Rows record: one order, one execution, one event."""
    order = (seq, client, f"o{seq}", "0", "005930", "BRKA", seq, seq, b"order")
    execution = (seq, f"x{seq}", client, seq, b"exec")
    event = (client, seq, seq, f'{{"seq":{seq}}}'.encode())
    return [[order], [], [execution], [event], [], [("S1", f"1:{seq}")]]


async def _append(log: SessionLog, client: str, first: int, n: int) -> int:
    last = 0
    for seq in range(first, first + n):
        if seq % 2:
            last = await log.append(("R", _rows(client, seq)))
        else:
            last = await log.append(("I", seq, b"8=FIX.4.4\x01", _rows(client, seq)))
        if seq % 10 == 0:
            last = await log.append(("O", seq, b"out"))  # no rows: only moves the position
    return last


async def _counts(dsn: str) -> tuple[int, int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return (await conn.fetchval("SELECT count(*) FROM ff_orders"),
                await conn.fetchval("SELECT count(*) FROM ff_executions"),
                await conn.fetchval("SELECT count(*) FROM ff_events"),
                await conn.fetchval("SELECT value FROM ff_meta WHERE key='stream_position'"))
    finally:
        await conn.close()


async def _setup(cluster: NatsCluster) -> tuple[object, object, str, str, SessionLog]:
    nc = await connect(cluster.urls, "test")
    js = nc.jetstream()
    stream = "P" + uuid.uuid4().hex[:10].upper()
    prefix = await ensure_stream(js, stream, 3)
    log = SessionLog(js, stream, prefix, "S1")
    await log.open()
    return nc, js, stream, prefix, log


def test_rows_applied_once_with_position(nats_cluster: NatsCluster, pg_db: PgDatabase) -> None:
    async def main() -> None:
        nc, js, stream, prefix, log = await _setup(nats_cluster)
        last = await _append(log, "acme", 1, 50)
        a = PgProjection(pg_db.dsn, js, stream, prefix, batch=16)
        b = PgProjection(pg_db.dsn, js, stream, prefix, batch=7)  # a second instance, same database
        await a.start()
        await b.start()
        await a.wait_for(last, 30)
        last = await _append(log, "acme", 51, 30)
        await asyncio.gather(a.wait_for(last, 30), b.wait_for(last, 30))
        assert await _counts(pg_db.dsn) == (80, 80, 80, last)
        conn = await asyncpg.connect(pg_db.dsn)
        try:
            assert [s for s, _ in await a.events_since(conn, "acme", 75, 100)] == [76, 77, 78, 79, 80]
            assert await a.order_data(conn, "acme", "o3") == b"order"
            assert await conn.fetchval("SELECT mark FROM ff_resume WHERE session='S1'") == "1:80"
        finally:
            await conn.close()
        await a.close()
        await b.close()
        await nc.close()

    run(main(), 90)


def test_terminated_connections_recover_without_loss(nats_cluster: NatsCluster, pg_db: PgDatabase) -> None:
    async def main() -> None:
        nc, js, stream, prefix, log = await _setup(nats_cluster)
        proj = PgProjection(pg_db.dsn, js, stream, prefix, batch=5)
        await proj.start()
        writer = asyncio.create_task(_append(log, "acme", 1, 200))
        killed = 0
        for _ in range(5):  # under load: kill the projection's backend several times
            await proj.wait_for(proj.position + 1, 30)
            killed += await pg_db.terminate_backends()
        last = await writer
        await proj.wait_for(last, 60)
        assert killed >= 1 and proj.reconnects >= 1
        assert await _counts(pg_db.dsn) == (200, 200, 200, last)
        await proj.close()
        await nc.close()

    run(main(), 120)
